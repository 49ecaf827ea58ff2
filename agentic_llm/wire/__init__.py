"""The wire format shared by the gRPC server and the SDK: generated protos, Struct helpers.

Both ``agentic_llm.server`` and ``agentic_llm.client`` import it; neither imports the
other.
"""

from agentic_llm.wire.protos import (
           PROTO_PACKAGE,
           SERVICE_NAME,
           ProtoModules,
           generate,
           load,
           source_dir,
)
from agentic_llm.wire.structs import struct_to_dict

__all__ = ["PROTO_PACKAGE", "SERVICE_NAME", "ProtoModules", "generate", "load", "source_dir",
           "struct_to_dict"]
