"""The interface every subgraph-cache store implements, and its configuration.

A store maps string keys to opaque byte records. It knows nothing about subgraphs:
the subgraph cache builds keys, encodes records and decides what to evict. Stores
that persist or share records (LMDB, Redis) wrap each record in an authenticated
frame (:mod:`agentic_llm.cache.stores.record`, an HMAC under a server-held key over
the store key, expiry and payload) so a torn, corrupted, forged or moved record is
dropped, never served; a key that is not UTF-8 is skipped and counted.
"""

from __future__ import annotations

import os
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["CacheStore", "StoreConfig", "StoreKind", "decode_key", "key_file", "default_key_file"]

StoreKind = Literal["memory", "lmdb", "redis"]

def default_key_file() -> Path:
    """Where a store without a configured key keeps one: shared by the processes
    of one user on one machine (``$XDG_CACHE_HOME/agentic-llm/cache-hmac.key``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "agentic-llm" / "cache-hmac.key"


def decode_key(raw: bytes) -> str | None:
    """A store key as text, or None when it is not UTF-8 (skipped, never fatal)."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return None


@dataclass(frozen=True)
class StoreConfig:
    """Which store backs the subgraph cache, and its settings.

    Attributes:
        kind: a registered ``cache_store`` provider: ``memory`` (one process, lost
            on exit), ``lmdb`` (persistent, one machine, several processes),
            ``redis`` (shared by several machines), or a plugin's.
        options: the provider's own options, checked against its ``config_schema``.
        path: LMDB directory (required for ``lmdb``).
        map_size: LMDB's maximum database size in bytes (sparse on disk).
        url: Redis URL, e.g. ``redis://127.0.0.1:6379/0`` (required for ``redis``).
        namespace: prefix of every Redis key, so several caches share one server.
        socket_timeout_s: Redis socket timeout; an outage costs at most about this
            long per request before the local fallback answers.
        retry_s: while Redis is down, how often to try reconnecting.
        sync: LMDB fsyncs every commit (safe against power loss, not only kill -9).
        hmac_key: the secret records are authenticated with; None: LMDB keeps one in
            ``<path>/hmac.key`` (made on first use, mode 0600), Redis the one in
            :func:`default_key_file` (so servers on other machines sharing a Redis
            need the same configured key).
    """

    kind: str = "memory"
    path: Path | None = None
    map_size: int = 1 << 30
    url: str | None = None
    namespace: str = "agentic:sg:"
    socket_timeout_s: float = 0.25
    retry_s: float = 2.0
    sync: bool = True
    hmac_key: bytes | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from agentic_llm import registry

        if self.kind not in registry.names("cache_store"):
            raise ValueError(f"cache store kind must be one of {registry.names('cache_store')}, "
                             f"got {self.kind!r}")
        if self.kind == "lmdb" and self.path is None:
            raise ValueError("the lmdb cache store needs a directory: set path")
        if self.kind == "redis" and not self.url:
            raise ValueError("the redis cache store needs a url such as redis://127.0.0.1:6379/0")
        if self.map_size < 1 << 20:
            raise ValueError(f"map_size must be at least 1 MiB, got {self.map_size}")
        if self.socket_timeout_s <= 0 or self.retry_s <= 0:
            raise ValueError("socket_timeout_s and retry_s must be positive")
        if self.hmac_key is not None and len(self.hmac_key) < 16:
            raise ValueError("hmac_key must be at least 16 bytes")


class CacheStore(ABC):
    """Byte records under string keys.

    Attributes:
        shared: True when other processes may write the same records (the cache then
            asks the store, not its own index, for fuzzy candidates).
    """

    shared: bool = False

    @abstractmethod
    def get(self, key: str) -> bytes | None:
        """The record under ``key``; None when absent, expired or failing its checksum."""

    @abstractmethod
    def put(self, key: str, value: bytes, *, expires_at: float | None = None) -> None:
        """Store ``value`` under ``key``; ``expires_at`` is a wall-clock time (``time.time()``)."""

    @abstractmethod
    def delete(self, keys: Iterable[str]) -> int:
        """Remove ``keys``; return how many existed."""

    @abstractmethod
    def keys(self, prefix: str = "") -> list[str]:
        """Every key starting with ``prefix``."""

    @abstractmethod
    def close(self) -> None:
        """Release files, sockets and locks."""

    def strict_keys(self, prefix: str = "") -> list[str]:
        """:meth:`keys` from the authoritative store; a store with a fallback raises
        ERR_UNAVAILABLE instead of answering from it (invalidation uses this)."""
        return self.keys(prefix)

    def strict_delete(self, keys: Iterable[str]) -> int:
        """:meth:`delete` on the authoritative store, or ERR_UNAVAILABLE."""
        return self.delete(keys)

    def integrity(self) -> dict[str, int]:
        """Counters of records and keys skipped: corrupt, forged, undecodable keys."""
        return {}

    def __enter__(self) -> CacheStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def key_file(path: Path) -> bytes:
    """The record key in ``path``: read, or made (mode 0600) once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    data = b""
    for _ in range(100):  # another process may be writing the file it just made
        try:
            data = path.read_bytes().strip()
        except OSError as exc:
            raise AgenticError(ErrorCode.CACHE_STORE,
                               f"cannot read the cache key {path}: {exc}") from exc
        if len(data) >= 16:
            break
        time.sleep(0.01)
    if len(data) < 16:
        raise AgenticError(ErrorCode.CACHE_STORE, f"the cache key {path} is shorter than 16 bytes")
    return data
