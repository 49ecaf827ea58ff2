"""The generated protos, for SDK users: re-exported from :mod:`agentic_llm.wire.protos`."""

from agentic_llm.wire.protos import *  # noqa: F403 - the same public names
from agentic_llm.wire.protos import __all__ as __all__
