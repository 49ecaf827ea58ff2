"""What the sync, asyncio and in-process clients share: request coercion, retries,
channel options and credentials."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.planner import GenerateRequest

__all__ = ["RetryPolicy", "as_request", "channel_options", "credentials", "auth_metadata", "open_channel"]


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
