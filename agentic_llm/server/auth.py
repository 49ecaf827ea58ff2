"""Bearer-token check on every call, as a server interceptor."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

import grpc

from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.server.errors import abort_with

__all__ = ["BearerTokenInterceptor"]

_HEALTH_PREFIX = "/grpc.health.v1.Health/"


class BearerTokenInterceptor(grpc.ServerInterceptor):
    """Refuses calls without ``authorization: Bearer <token>`` (UNAUTHENTICATED).

    Args:
        token: the secret every call must present.
        exempt_health: let ``grpc.health.v1`` checks through without a token.
    """

    def __init__(self, token: str, *, exempt_health: bool = True) -> None:
        if not token:
            raise ValueError("an empty token would let every call through; leave auth off instead")
        self._expected = f"Bearer {token}".encode()
        self._exempt_health = exempt_health

    def _allowed(self, details: grpc.HandlerCallDetails) -> bool:
        if self._exempt_health and details.method.startswith(_HEALTH_PREFIX):
            return True
        for key, value in details.invocation_metadata or ():
            if key == "authorization":
                got = value.encode() if isinstance(value, str) else value
                return hmac.compare_digest(got, self._expected)
        return False

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Any], handler_call_details: grpc.HandlerCallDetails
    ) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or self._allowed(handler_call_details):
            return handler
        err = AgenticError(ErrorCode.UNAUTHENTICATED,
                           "missing or wrong bearer token (metadata 'authorization: Bearer <token>')")

        def deny(request: Any, context: Any) -> Any:
            abort_with(context, err)

        def deny_stream(request: Any, context: Any) -> Any:
            abort_with(context, err)
            yield  # pragma: no cover - makes this a generator like the real handler

        kw = {"request_deserializer": handler.request_deserializer,
              "response_serializer": handler.response_serializer}
        if handler.request_streaming and handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(deny_stream, **kw)
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(deny, **kw)
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(deny_stream, **kw)
        return grpc.unary_unary_rpc_method_handler(deny, **kw)
