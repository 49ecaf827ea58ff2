"""What the sync, asyncio and in-process clients share: request coercion, retries,
channel options and credentials, and the gRPC clients' common base."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2_grpc

from agentic_llm.client.errors import from_rpc_error
from agentic_llm.client.protos import load
from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.planner import GenerateRequest

__all__ = [
    "RetryPolicy",
    "GrpcClientBase",
    "as_request",
    "channel_options",
    "credentials",
    "auth_metadata",
    "open_channel",
]


@dataclass(frozen=True)
class RetryPolicy:
    """Retries with exponential backoff and jitter, for UNAVAILABLE only.

    Only UNAVAILABLE (server draining or unreachable) is retried: every other status
    is an answer about the request itself, and retrying it would repeat the refusal
    or, for a timeout, double the load.
    """

    max_attempts: int = 4
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 2.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.initial_backoff_s < 0 or self.max_backoff_s < 0 or self.multiplier < 1:
            raise ValueError("backoffs must be >= 0 and multiplier >= 1")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based), with full jitter."""
        cap = min(self.max_backoff_s, self.initial_backoff_s * self.multiplier ** (attempt - 1))
        return random.uniform(0, cap)

    def should_retry(self, exc: AgenticError, attempt: int) -> bool:
        status = getattr(exc, "status", None)
        return status == grpc.StatusCode.UNAVAILABLE and attempt < self.max_attempts


def as_request(request: GenerateRequest | Mapping[str, Any] | str | None, fields: Mapping[str, Any]) -> GenerateRequest:
    """A :class:`GenerateRequest` from a request, a request-JSON dict or text, or keywords.

    Raises:
        AgenticError: ERR_INVALID_REQUEST naming the bad field.
    """
    if request is None:
        return GenerateRequest.from_json(dict(fields))
    if fields:
        raise AgenticError(ErrorCode.INVALID_REQUEST,
                           "pass a request or keyword fields, not both")
    if isinstance(request, GenerateRequest):
        return request
    return GenerateRequest.from_json(request)


def channel_options(max_message_bytes: int) -> list[tuple[str, Any]]:
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]


def credentials(root_certificates: bytes | str | Path | None) -> grpc.ChannelCredentials | None:
    """TLS channel credentials from a PEM (bytes) or a PEM file path; None: plaintext."""
    if root_certificates is None:
        return None
    if isinstance(root_certificates, str | Path):
        root_certificates = Path(root_certificates).read_bytes()
    return grpc.ssl_channel_credentials(root_certificates=root_certificates)


def auth_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


def open_channel(
    grpc_module: Any,
    address: str,
    *,
    root_certificates: bytes | str | Path | None,
    max_message_bytes: int,
    server_name: str | None,
) -> Any:
    """A channel to ``address`` from ``grpc`` or ``grpc.aio`` (the only difference
    between the sync and asyncio clients): TLS when root certificates are given."""
    opts = channel_options(max_message_bytes)
    if server_name:
        opts.append(("grpc.ssl_target_name_override", server_name))
    creds = credentials(root_certificates)
    if creds is not None:
        return grpc_module.secure_channel(address, creds, options=opts)
    return grpc_module.insecure_channel(address, options=opts)


class GrpcClientBase:
    """Channel, stubs, call options and retry decisions of the gRPC clients.

    ``Client`` and ``AsyncClient`` differ only in the ``grpc`` module that opens the
    channel (``GRPC``) and in whether their calls block or are awaited; everything
    else lives here.

    Args:
        address: ``host:port``.
        token: bearer token, sent on every call.
        root_certificates: PEM bytes or a file path: use TLS and trust this CA.
        timeout: default per-call deadline in seconds (None: none).
        retry: retry policy for UNAVAILABLE.
        max_message_bytes: largest message sent or received.
        server_name: TLS name to check the server's certificate against, when it
            differs from the host in ``address``.
    """

    GRPC: Any = grpc

    def __init__(
        self,
        address: str,
        *,
        token: str | None = None,
        root_certificates: bytes | str | Path | None = None,
        timeout: float | None = 120.0,
        retry: RetryPolicy | None = None,
        max_message_bytes: int = 64 * 1024 * 1024,
        server_name: str | None = None,
    ) -> None:
        self._channel = open_channel(self.GRPC, address, root_certificates=root_certificates,
                                     max_message_bytes=max_message_bytes, server_name=server_name)
        self._stub = load().pb2_grpc.AgenticLLMStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._metadata = auth_metadata(token)
        self.timeout = timeout
        self.retry = retry or RetryPolicy()

    def _options(self, timeout: float | None) -> dict[str, Any]:
        """Keyword arguments of one call: its deadline (else the default) and metadata."""
        return {"timeout": timeout or self.timeout, "metadata": self._metadata}

    def _backoff(self, exc: grpc.RpcError, attempt: int, *, received: bool = False) -> float:
        """Seconds to wait before retrying a failed call; raises the call's
        ``AgenticError`` instead when it is not to be retried.

        A stream (``received``: it has yielded a message) is retried only before its
        first message: after that the caller has acted on part of the answer.
        """
        err = from_rpc_error(exc)
        if received or not self.retry.should_retry(err, attempt):
            raise err from None
        return self.retry.delay(attempt)
