"""ERR_* codes -> gRPC status codes, with the code and details in rich error details.

Every refusal leaves the server as a ``google.rpc.Status`` whose details hold a
``google.rpc.ErrorInfo`` (``reason`` = the ERR_* code, ``domain`` = ``agentic-llm``,
``metadata`` = the error's details as strings) and, when the error names a request
field, a ``google.rpc.BadRequest`` field violation. Unexpected exceptions become
INTERNAL with ERR_INTERNAL and a one-line message; the traceback stays in the
server's log.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["DOMAIN", "grpc_code_for", "to_rpc_status", "abort_with"]

DOMAIN = "agentic-llm"

_RESOURCE_EXHAUSTED = {ErrorCode.BUDGET_EXCEEDED, ErrorCode.OVERLOADED, ErrorCode.INPUT_TOO_LARGE,
                       ErrorCode.CONTEXT_TOO_LONG}
_FAILED_PRECONDITION = {ErrorCode.MODEL_NOT_FOUND, ErrorCode.UNSUPPORTED_MODEL,
                        ErrorCode.INVALID_CONFIG, ErrorCode.RESOURCE_UNAVAILABLE}
_SPECIAL: dict[ErrorCode, grpc.StatusCode] = {
    ErrorCode.TIMEOUT: grpc.StatusCode.DEADLINE_EXCEEDED,
    ErrorCode.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorCode.CACHE_STORE: grpc.StatusCode.UNAVAILABLE,
    ErrorCode.CANCELLED: grpc.StatusCode.CANCELLED,
    ErrorCode.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    ErrorCode.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    ErrorCode.INTERNAL: grpc.StatusCode.INTERNAL,
    ErrorCode.NUMERIC: grpc.StatusCode.INTERNAL,
    ErrorCode.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
}


def grpc_code_for(code: ErrorCode) -> grpc.StatusCode:
    """The gRPC status for an ERR_* code.

    Bad requests, plans and documents: INVALID_ARGUMENT. Budgets, sizes and
    overload: RESOURCE_EXHAUSTED. ERR_TIMEOUT: DEADLINE_EXCEEDED. ERR_UNAVAILABLE
    (draining) and cache-store outages: UNAVAILABLE. A missing model or part:
    FAILED_PRECONDITION. Engine faults: INTERNAL.
    """
    if code in _SPECIAL:
        return _SPECIAL[code]
    if code in _RESOURCE_EXHAUSTED:
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    if code in _FAILED_PRECONDITION:
        return grpc.StatusCode.FAILED_PRECONDITION
    return grpc.StatusCode.INVALID_ARGUMENT


def to_rpc_status(exc: AgenticError) -> status_pb2.Status:
    """The ``google.rpc.Status`` for an error, with ErrorInfo (and BadRequest)."""
    code = grpc_code_for(exc.code)
    info = error_details_pb2.ErrorInfo(
        reason=exc.code.value, domain=DOMAIN,
        metadata={str(k): str(v) for k, v in exc.details.items()},
    )
    details = [info]
    field = exc.details.get("field")
    if field:
        details.append(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=str(field), description=exc.message)
        ]))
    packed = []
    for d in details:
        a = any_pb2.Any()
        a.Pack(d)
        packed.append(a)
    return status_pb2.Status(
        code=getattr(code_pb2, code.name), message=f"{exc.code.value}: {exc.message}",
        details=packed,
    )


def abort_with(context: Any, exc: AgenticError) -> None:
    """End the RPC with ``exc``'s status (raises, as ``context.abort`` does)."""
    context.abort_with_status(rpc_status.to_status(to_rpc_status(exc)))
