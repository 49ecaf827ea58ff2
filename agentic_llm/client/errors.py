"""gRPC errors -> ``AgenticError`` with the server's ERR_* code and details."""

from __future__ import annotations

from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["ServiceError", "from_rpc_error"]

# Statuses gRPC itself produces (no ERR_* details), mapped to the closest code.
_FALLBACK: dict[grpc.StatusCode, ErrorCode] = {
    grpc.StatusCode.UNAVAILABLE: ErrorCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: ErrorCode.TIMEOUT,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ErrorCode.INPUT_TOO_LARGE,
    grpc.StatusCode.UNAUTHENTICATED: ErrorCode.UNAUTHENTICATED,
    grpc.StatusCode.CANCELLED: ErrorCode.CANCELLED,
    grpc.StatusCode.INVALID_ARGUMENT: ErrorCode.INVALID_REQUEST,
}


class ServiceError(AgenticError):
    """A refusal from the server: ``code`` (ERR_*), ``message``, ``details`` and the
    gRPC ``status`` it came with."""

    def __init__(self, code: ErrorCode, message: str, status: grpc.StatusCode, **details: Any) -> None:
        super().__init__(code, message, **details)
        self.status = status


def from_rpc_error(exc: grpc.RpcError) -> ServiceError:
    """Decode the rich status of a failed call (ErrorInfo reason -> ERR_* code)."""
    status_code = exc.code() if callable(getattr(exc, "code", None)) else grpc.StatusCode.UNKNOWN
    message = exc.details() if callable(getattr(exc, "details", None)) else str(exc)
    code: ErrorCode | None = None
    details: dict[str, Any] = {}
    try:
        status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    except (ValueError, AttributeError, TypeError):
        status = None
    if status is not None:
        message = status.message
        for d in status.details:
            if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                d.Unpack(info)
                try:
                    code = ErrorCode(info.reason)
                except ValueError:
                    code = None
                details.update(info.metadata)
    if code is None:
        code = _FALLBACK.get(status_code, ErrorCode.INTERNAL)
    prefix = f"{code.value}: "
    if message and message.startswith(prefix):
        message = message[len(prefix):]
    return ServiceError(code, message or status_code.name, status_code, **details)
