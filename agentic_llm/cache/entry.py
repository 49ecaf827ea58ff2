"""A cached subgraph: the stored record and the result of a lookup."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from agentic_llm.cache.key import SubgraphKey

if TYPE_CHECKING:
    from agentic_llm.dsl import Document

__all__ = ["CacheEntry", "Lookup", "KvHint", "LookupKind", "same_values"]

LookupKind = Literal["exact", "fuzzy", "miss"]


@dataclass
class CacheEntry:
    """One generated subgraph and what it was generated from.

    Attributes:
        key: the key it was registered under.
        text: canonical subgraph text (``dsl.dumps`` of its AST).
        values: the context values it was generated with (for fuzzy rebinding).
        prompt_hash: digest of the exact prompt the model saw ("" when unknown); an
            exact hit also requires the current prompt to hash the same.
        created_at: wall-clock registration time.
        expires_at: wall-clock expiry.
        kv_tokens: prompt plus output tokens of the generation (the KV prefix a
            follow-up request may find resident in the radix cache).
        hits: times it was served (counted by the process serving it).
    """

    key: SubgraphKey
    text: str
    values: dict[str, Any]
    prompt_hash: str
    created_at: float
    expires_at: float
    kv_tokens: int = 0
    hits: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "key": self.key.to_json(), "text": self.text, "values": self.values,
                "prompt_hash": self.prompt_hash, "created_at": self.created_at,
                "expires_at": self.expires_at, "kv_tokens": self.kv_tokens,
                "hits": self.hits, "extra": self.extra,
            },
            ensure_ascii=False, separators=(",", ":"),
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> CacheEntry:
        """Decode a record (ValueError / KeyError / TypeError on a malformed one)."""
        obj = json.loads(data)
        return cls(
            key=SubgraphKey.from_json(obj["key"]), text=str(obj["text"]),
            values=dict(obj["values"]), prompt_hash=str(obj["prompt_hash"]),
            created_at=float(obj["created_at"]), expires_at=float(obj["expires_at"]),
            kv_tokens=int(obj.get("kv_tokens", 0)), hits=int(obj.get("hits", 0)),
            extra=dict(obj.get("extra", {})),
        )


class KvHint(NamedTuple):
    """Where the KV pages of an earlier generation may still be.

    Attributes:
        kv_tokens: tokens (prompt plus output) the earlier generation covered.
        handle: a pinned radix-cache handle registered with the entry in this
            process, when one was given and the entry is still cached; else None.
    """

    kv_tokens: int
    handle: object | None


class Lookup(NamedTuple):
    """Result of :meth:`SubgraphCache.lookup`.

    Attributes:
        kind: ``exact`` (stored answer, re-validated), ``fuzzy`` (values rebound,
            re-validated) or ``miss``.
        text: canonical subgraph text to return (None on a miss).
        document: its parsed AST (None on a miss).
        entry: the entry it came from; on a miss, the nearest candidate if any.
        kv_hint: where a reusable KV prefix may be (kept on an ambiguous fuzzy miss).
        reason: why a miss was a miss, or how a hit was made.
    """

    kind: LookupKind
    text: str | None
    document: Document | None
    entry: CacheEntry | None
    kv_hint: KvHint | None
    reason: str

    @property
    def hit(self) -> bool:
        return self.kind != "miss"


def same_values(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """JSON equality of two value mappings (1 and True differ)."""
    return json.dumps(dict(a), sort_keys=True) == json.dumps(dict(b), sort_keys=True)
