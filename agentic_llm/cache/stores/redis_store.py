"""Redis store: one cache shared by several server processes and machines.

Redis is an accelerator, never a dependency of a request: when a command fails
(connection refused, timeout, server gone) the store logs one warning, switches to a
local :class:`MemoryStore` and keeps answering from it. Every ``retry_s`` it tries the
server again; once back, the records written locally meanwhile are copied to Redis
and Redis serves again. Records are checksummed frames, as in LMDB.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

import redis

from agentic_llm.cache.stores.base import CacheStore, StoreConfig
from agentic_llm.cache.stores.memory import MemoryStore
from agentic_llm.cache.stores.record import CorruptRecord, frame, unframe
from agentic_llm.registry import register

__all__ = ["RedisStore"]

log = logging.getLogger(__name__)
T = TypeVar("T")

_OUTAGE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


@register("cache_store", "redis")
class RedisStore(CacheStore):
    """Checksummed records in Redis under ``namespace``, with a local fallback.

    Args:
        url: ``redis://host:port/db``.
        namespace: prefix of every key this store writes.
        socket_timeout_s: per-command timeout.
        retry_s: while degraded, seconds between reconnection attempts.

    Attributes:
        degraded: True while requests are served by the local fallback.
        outages: how many times the store fell back.
    """

    shared = True

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "agentic:sg:",
        socket_timeout_s: float = 0.25,
        retry_s: float = 2.0,
    ) -> None:
        self.url = url
        self.namespace = namespace
        self.retry_s = retry_s
        self._client = redis.Redis.from_url(
            url, socket_timeout=socket_timeout_s, socket_connect_timeout=socket_timeout_s,
            retry_on_timeout=False,
        )
        self._local = MemoryStore()
        self._lock = threading.Lock()
        self.degraded = False
        self.outages = 0
        self.corrupt_dropped = 0
        self._retry_at = 0.0

    @classmethod
    def from_config(cls, config: StoreConfig) -> RedisStore:
        assert config.url is not None  # StoreConfig checked it
        return cls(config.url, namespace=config.namespace,
                   socket_timeout_s=config.socket_timeout_s, retry_s=config.retry_s)

    # -- outage handling ---------------------------------------------------

    def _call(self, remote: Callable[[], T], local: Callable[[], T]) -> T:
        if self.degraded and not self._try_reconnect():
            return local()
        try:
            return remote()
        except _OUTAGE as exc:
            self._fall_back(exc)
            return local()

    def _fall_back(self, exc: BaseException) -> None:
        with self._lock:
            if not self.degraded:
                self.degraded = True
                self.outages += 1
                log.warning(
                    "subgraph cache: Redis at %s unavailable (%s); serving from a local "
                    "in-memory cache until it is back", self.url, exc,
                )
            self._retry_at = time.monotonic() + self.retry_s

    def _try_reconnect(self) -> bool:
        if time.monotonic() < self._retry_at:
            return False
        try:
            self._client.ping()
            for key in self._local.keys(""):
                value = self._local.get(key)
                if value is not None:
                    self._client.set(self.namespace + key, value)
        except _OUTAGE as exc:
            self._fall_back(exc)
            return False
        with self._lock:
            self.degraded = False
            self._local = MemoryStore()
        log.warning("subgraph cache: Redis at %s is back; using it again", self.url)
        return True

    # -- store interface ----------------------------------------------------

    def get(self, key: str) -> bytes | None:
        def remote() -> bytes | None:
            raw = self._client.get(self.namespace + key)
            if raw is None:
                return None
            try:
                rec = unframe(bytes(raw))  # type: ignore[arg-type]
            except CorruptRecord as exc:
                self.corrupt_dropped += 1
                log.warning("dropping corrupt subgraph-cache record %r: %s", key, exc)
                self._client.delete(self.namespace + key)
                return None
            if rec.expires_at is not None and rec.expires_at <= time.time():
                return None
            return rec.payload

        def local() -> bytes | None:
            raw = self._local.get(key)
            return None if raw is None else unframe(raw).payload

        return self._call(remote, local)

    def put(self, key: str, value: bytes, *, expires_at: float | None = None) -> None:
        data = frame(value, expires_at)

        def remote() -> None:
            if expires_at is None:
                self._client.set(self.namespace + key, data)
            else:
                ms = max(1, int((expires_at - time.time()) * 1000))
                self._client.set(self.namespace + key, data, px=ms)

        def local() -> None:
            self._local.put(key, data, expires_at=expires_at)

        self._call(remote, local)

    def delete(self, keys: Iterable[str]) -> int:
        ks = list(keys)
        if not ks:
            return 0

        def remote() -> int:
            return int(self._client.delete(*(self.namespace + k for k in ks)))

        return self._call(remote, lambda: self._local.delete(ks))

    def keys(self, prefix: str = "") -> list[str]:
        n = len(self.namespace)
        pattern = _glob_escape(self.namespace + prefix) + "*"

        def remote() -> list[str]:
            return [k.decode()[n:] for k in self._client.scan_iter(match=pattern, count=1000)]

        return self._call(remote, lambda: self._local.keys(prefix))

    def close(self) -> None:
        self._client.close()


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
