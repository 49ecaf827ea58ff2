"""The grammar key a request carries to SGLang: ``"#agentic-dsl/v1\\n" + payload``.

SGLang hands grammar backends an ``("ebnf", text)`` key and caches one compiled
object per key. The payload is either the request JSON (self-contained: every
tensor-parallel rank and data-parallel worker plans it the same way) or a plan
handle, ``plan:<hex digest>``, naming a request this process planned before.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["BACKEND_NAME", "KEY_PREFIX", "SUPPORTED_SGLANG", "GrammarKey", "grammar_key",
           "handle_key", "parse_key", "request_digest"]

BACKEND_NAME = "agentic-dsl"
KEY_PREFIX = "#agentic-dsl/v1\n"
# The SGLang releases the contract tests run against (pyproject's `sglang` extra).
SUPPORTED_SGLANG = ">=0.5.23,<0.5.24"
_HANDLE = "plan:"


@dataclass(frozen=True)
class GrammarKey:
    """A decoded key: exactly one of ``request_json`` and ``handle`` is set."""

    request_json: str = ""
    handle: str = ""


def _canonical(request: Mapping[str, Any] | str) -> str:
    if isinstance(request, str):
        try:
            request = json.loads(request)
        except json.JSONDecodeError as exc:
            raise AgenticError(ErrorCode.INVALID_REQUEST, f"request is not valid JSON: {exc}") from None
    return json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_digest(request: Mapping[str, Any] | str) -> str:
    """The handle digest of a request: SHA-256 of its canonical JSON."""
    return hashlib.sha256(_canonical(request).encode()).hexdigest()


def grammar_key(request: Mapping[str, Any] | str) -> str:
    """The ``ebnf`` value that asks the ``agentic-dsl`` backend to plan ``request``.

    The JSON is canonicalised (sorted keys, no spaces), so equal requests share
    SGLang's grammar cache entry."""
    return KEY_PREFIX + _canonical(request)


def handle_key(request: Mapping[str, Any] | str) -> str:
    """The short key naming ``request`` by digest; valid in a process whose backend
    has planned the request before (``AgenticGrammarBackend.plan_handle``)."""
    return KEY_PREFIX + _HANDLE + request_digest(request)


def parse_key(key_string: str) -> GrammarKey | None:
    """Decode ``key_string``; None when it is not an ``agentic-dsl`` key.

    Raises:
        AgenticError: ERR_INVALID_REQUEST for an ``agentic-dsl`` key with an empty
            or malformed payload.
    """
    if not key_string.startswith(KEY_PREFIX):
        return None
    payload = key_string[len(KEY_PREFIX):].strip()
    if payload.startswith(_HANDLE):
        digest = payload[len(_HANDLE):]
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise AgenticError(ErrorCode.INVALID_REQUEST,
                               f"malformed plan handle {payload[:80]!r}: expected plan:<sha256 hex>")
        return GrammarKey(handle=digest)
    if not payload.startswith("{"):
        raise AgenticError(ErrorCode.INVALID_REQUEST,
                           "an agentic-dsl grammar key carries a request JSON object or a plan handle")
    return GrammarKey(request_json=payload)
