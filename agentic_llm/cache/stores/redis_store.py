"""Redis store: one cache shared by several server processes and machines.

Redis is an accelerator, never a dependency of a request: when a command fails
(connection refused, timeout, server gone) the store logs one warning, switches to a
local :class:`MemoryStore` and keeps answering from it. Every ``retry_s`` it tries the
server again; once back, the records written locally meanwhile are copied to Redis
(with their remaining TTL) and Redis serves again. Records are authenticated frames,
as in LMDB. Invalidation never uses the fallback: while Redis is down it fails with
ERR_UNAVAILABLE (:meth:`RedisStore.strict_delete`), so a removal answered "OK" is
never undone when Redis comes back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

import redis

from agentic_llm.cache.stores.base import (
    CacheStore,
    StoreConfig,
    decode_key,
    default_key_file,
    key_file,
)
from agentic_llm.cache.stores.memory import MemoryStore
from agentic_llm.cache.stores.record import (
    CorruptRecord,
    ForgedRecord,
    frame,
    peek_expiry,
    unframe,
)
from agentic_llm.errors import AgenticError, ErrorCode
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
        hmac_key: bytes | None = None,
    ) -> None:
        if hmac_key is None:
            log.info("subgraph cache: Redis records are authenticated with the key in %s; "
                     "servers on other machines need cache.hmac_key_env", default_key_file())
        self._secret = hmac_key if hmac_key is not None else key_file(default_key_file())
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
        self.forged_dropped = 0
        self.bad_keys = 0
        self._retry_at = 0.0

    @classmethod
    def from_config(cls, config: StoreConfig) -> RedisStore:
        assert config.url is not None  # StoreConfig checked it
        return cls(config.url, namespace=config.namespace,
                   socket_timeout_s=config.socket_timeout_s, retry_s=config.retry_s,
                   hmac_key=config.hmac_key)

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
                if value is None:
                    continue
                # copied back with the expiry it was written with: no record lives forever
                exp = peek_expiry(value)
                if exp is None:
                    self._client.set(self.namespace + key, value)
                    continue
                ms = int((exp - time.time()) * 1000)
                if ms > 0:
                    self._client.set(self.namespace + key, value, px=ms)
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
                rec = unframe(bytes(raw), key=key, secret=self._secret)  # type: ignore[arg-type]
            except ForgedRecord as exc:
                # not ours (forged, moved, or another server's key): skip, keep counting
                self.corrupt_dropped += 1
                self.forged_dropped += 1
                log.warning("skipping unauthenticated subgraph-cache record %r: %s", key, exc)
                return None
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
            return None if raw is None else unframe(raw, key=key, secret=self._secret).payload

        return self._call(remote, local)

    def put(self, key: str, value: bytes, *, expires_at: float | None = None) -> None:
        data = frame(value, expires_at, key=key, secret=self._secret)

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

        return self._call(lambda: self._remote_keys(pattern, n), lambda: self._local.keys(prefix))

    def _remote_keys(self, pattern: str, n: int) -> list[str]:
        out = []
        for raw in self._client.scan_iter(match=pattern, count=1000):
            text = decode_key(bytes(raw))  # type: ignore[arg-type]
            if text is None:
                self.bad_keys += 1
                log.warning("skipping a subgraph-cache key that is not UTF-8: %r", raw)
                continue
            out.append(text[n:])
        return out

    def _strict(self, remote: Callable[[], T]) -> T:
        """Run ``remote`` on Redis itself, never the fallback: ERR_UNAVAILABLE when
        Redis is down, so an invalidation is never answered "OK" and later undone."""
        if self.degraded and not self._try_reconnect():
            raise _unavailable(self.url)
        try:
            return remote()
        except _OUTAGE as exc:
            self._fall_back(exc)
            raise _unavailable(self.url) from exc

    def strict_keys(self, prefix: str = "") -> list[str]:
        n = len(self.namespace)
        pattern = _glob_escape(self.namespace + prefix) + "*"
        return self._strict(lambda: self._remote_keys(pattern, n))

    def strict_delete(self, keys: Iterable[str]) -> int:
        ks = list(keys)
        if not ks:
            return 0

        def remote() -> int:
            n = int(self._client.delete(*(self.namespace + k for k in ks)))
            # the fallback may hold copies written during an outage: drop those too
            self._local.delete(ks)
            return n

        return self._strict(remote)

    def integrity(self) -> dict[str, int]:
        return {"corrupt_dropped": self.corrupt_dropped, "forged_dropped": self.forged_dropped,
                "bad_keys": self.bad_keys}

    def close(self) -> None:
        self._client.close()


def _unavailable(url: str) -> AgenticError:
    return AgenticError(ErrorCode.UNAVAILABLE,
                        f"the subgraph-cache store (Redis at {url}) is unreachable; the "
                        "invalidation was not applied: retry when it is back")


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
