"""Error codes and the exception type shared by every layer.

Codes named in the AgenticDSL spec keep their spec spelling; codes the spec does not
define are project codes with the same ``ERR_`` prefix. Every refusal a user can see
carries one of these codes, so the gRPC layer, the CLI and the SDK can map them
without parsing messages.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

__all__ = ["ErrorCode", "AgenticError", "SPEC_CODES", "config_error"]


class ErrorCode(StrEnum):
    """Every ``ERR_*`` code the project emits."""

    # -- codes defined by the AgenticDSL spec --
    MISSING_ENTRY_POINT = "ERR_MISSING_ENTRY_POINT"
    NAMESPACE_VIOLATION = "ERR_NAMESPACE_VIOLATION"
    CTX_MERGE_CONFLICT = "ERR_CTX_MERGE_CONFLICT"
    RESOURCE_UNAVAILABLE = "ERR_RESOURCE_UNAVAILABLE"
    UNSUPPORTED_CAPABILITY = "ERR_UNSUPPORTED_CAPABILITY"
    SIGNATURE_VIOLATION = "ERR_SIGNATURE_VIOLATION"
    BUDGET_EXCEEDED = "ERR_BUDGET_EXCEEDED"
    SIGNATURE_REQUIRED = "ERR_SIGNATURE_REQUIRED"

    # -- project codes: documents --
    INPUT_TOO_LARGE = "ERR_INPUT_TOO_LARGE"
    NESTING_TOO_DEEP = "ERR_NESTING_TOO_DEEP"
    SYNTAX = "ERR_SYNTAX"
    YAML = "ERR_YAML"
    INVALID_PATH = "ERR_INVALID_PATH"
    UNKNOWN_NODE_TYPE = "ERR_UNKNOWN_NODE_TYPE"
    MISSING_FIELD = "ERR_MISSING_FIELD"
    INVALID_FIELD = "ERR_INVALID_FIELD"
    DUPLICATE_ID = "ERR_DUPLICATE_ID"
    DUPLICATE_PATH = "ERR_DUPLICATE_PATH"
    UNRESOLVED_REFERENCE = "ERR_UNRESOLVED_REFERENCE"
    CYCLE = "ERR_CYCLE"
    UNREACHABLE_NODE = "ERR_UNREACHABLE_NODE"
    TOOL_NOT_GRANTED = "ERR_TOOL_NOT_GRANTED"
    TOOL_ARGUMENTS = "ERR_TOOL_ARGUMENTS"
    UNKNOWN_VARIABLE = "ERR_UNKNOWN_VARIABLE"
    TEMPLATE_SYNTAX = "ERR_TEMPLATE_SYNTAX"
    SIGNATURE_SYNTAX = "ERR_SIGNATURE_SYNTAX"
    NODE_TYPE_NOT_ALLOWED = "ERR_NODE_TYPE_NOT_ALLOWED"
    # -- the reference runtime (dsl.conformance) --
    RUNTIME_REJECTED = "ERR_RUNTIME_REJECTED"
    RUNTIME_DROPPED = "ERR_RUNTIME_DROPPED"
    RUNTIME_CRASH = "ERR_RUNTIME_CRASH"
    RUNTIME_DIVERGENCE = "ERR_RUNTIME_DIVERGENCE"

    # -- project codes: requests, planning, serving --
    INVALID_REQUEST = "ERR_INVALID_REQUEST"
    INVALID_CONFIG = "ERR_INVALID_CONFIG"
    MODEL_NOT_FOUND = "ERR_MODEL_NOT_FOUND"
    UNSUPPORTED_MODEL = "ERR_UNSUPPORTED_MODEL"
    CONTEXT_TOO_LONG = "ERR_CONTEXT_TOO_LONG"
    NUMERIC = "ERR_NUMERIC"
    TIMEOUT = "ERR_TIMEOUT"
    CANCELLED = "ERR_CANCELLED"
    OVERLOADED = "ERR_OVERLOADED"
    UNAVAILABLE = "ERR_UNAVAILABLE"
    UNAUTHENTICATED = "ERR_UNAUTHENTICATED"
    PERMISSION_DENIED = "ERR_PERMISSION_DENIED"
    GRAMMAR = "ERR_GRAMMAR"
    CACHE_STORE = "ERR_CACHE_STORE"
    INTERNAL = "ERR_INTERNAL"
    NOT_FOUND = "ERR_NOT_FOUND"

    def __str__(self) -> str:
        return self.value


SPEC_CODES = frozenset(
    {
        ErrorCode.MISSING_ENTRY_POINT,
        ErrorCode.NAMESPACE_VIOLATION,
        ErrorCode.CTX_MERGE_CONFLICT,
        ErrorCode.RESOURCE_UNAVAILABLE,
        ErrorCode.UNSUPPORTED_CAPABILITY,
        ErrorCode.SIGNATURE_VIOLATION,
        ErrorCode.BUDGET_EXCEEDED,
        ErrorCode.SIGNATURE_REQUIRED,
    }
)


class AgenticError(Exception):
    """A refusal with an ``ERR_*`` code, a message a person can act on, and details.

    Args:
        code: the error code.
        message: what went wrong and, where possible, what to do about it.
        details: machine-readable extras (the offending path, a limit, ...).
    """

    def __init__(self, code: ErrorCode, message: str, **details: Any) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code.value, "message": self.message, "details": self.details}


def config_error(key: str, message: str) -> AgenticError:
    """ERR_INVALID_CONFIG for the configuration key ``key`` (dotted: ``cache.ttl_s``)."""
    return AgenticError(ErrorCode.INVALID_CONFIG, f"{key}: {message}", key=key)
