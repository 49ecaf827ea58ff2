"""Bearer-token check on every call, as a server interceptor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from agentic_llm.config import AuthConfig
from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.server.errors import abort_with
from agentic_llm.server.identity import IdentityMap
from agentic_llm.wire import SERVICE_NAME

__all__ = ["BearerTokenInterceptor"]

_HEALTH_PREFIX = "/grpc.health.v1.Health/"
_SERVICE_PREFIX = f"/{SERVICE_NAME}/"


class BearerTokenInterceptor(grpc.ServerInterceptor):
    """Refuses calls without a known ``authorization: Bearer <token>`` (UNAUTHENTICATED).

    Args:
        token: the one secret every call must present, or the server's credentials.
        exempt_health: let ``grpc.health.v1`` checks through without a token.
    """

    def __init__(self, token: str | IdentityMap, *, exempt_health: bool = True) -> None:
        if isinstance(token, str):
            if not token:
                raise ValueError("an empty token would let every call through; leave auth off instead")
            token = IdentityMap(AuthConfig(token=token))
        if not token.enabled:
            raise ValueError("auth is off: no credential to check")
        self._identity = token
        self._exempt_health = exempt_health

    def _allowed(self, details: grpc.HandlerCallDetails) -> bool:
        if self._exempt_health and details.method.startswith(_HEALTH_PREFIX):
            return True
        if self._identity.token_principal(details.invocation_metadata) is not None:
            return True
        # a client certificate may identify the caller: the servicer checks it (the
        # interceptor cannot see the TLS session); other services need a token
        return self._identity.has_client_identities and details.method.startswith(_SERVICE_PREFIX)

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
