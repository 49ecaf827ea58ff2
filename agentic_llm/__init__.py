"""agentic-llm: a grammar-constrained serving engine for AgenticDSL agent programs."""

from agentic_llm.errors import AgenticError, ErrorCode

__version__ = "0.1.0"

__all__ = ["AgenticError", "ErrorCode", "__version__"]
