"""The generated protos, for SDK users: re-exported from :mod:`agentic_llm.wire.protos`."""

from agentic_llm.wire.protos import (
    PROTO_PACKAGE,
    SERVICE_NAME,
    ProtoModules,
    generate,
    load,
    source_dir,
)

__all__ = ["PROTO_PACKAGE", "SERVICE_NAME", "ProtoModules", "generate", "load", "source_dir"]
