"""The subgraph semantic cache: whole generated subgraphs served without the model.

    cache = SubgraphCache(open_store(StoreConfig()), engine_version=plan.engine_version)
    found = cache.lookup_plan(plan)
    if found.hit:
        return found.text                     # exact or fuzzy, re-validated
    text = generate(plan)                     # the model
    cache.register_plan(plan, text)

Rules (the contract):

* An **exact** hit has the same key, the same values and the same prompt hash; it is
  served only if it still validates against the *current* plan's policy (a plan that
  no longer grants a tool the subgraph uses gets a miss, never a stale answer).
* A **fuzzy** hit has the same group (tenant, engine version, path, structure,
  signatures, generation settings) but other values: the old values are rebound
  (:mod:`agentic_llm.cache.rebind`) and the result must parse and validate. When the
  rebinding is ambiguous the lookup is a miss that still carries the KV hint.
* Entries expire after their TTL; past ``max_entries`` or ``max_bytes`` the entry with
  the lowest score goes first: last use, plus ``frequency_weight_s`` per doubling of
  its hits, plus ``lib_bonus_s`` for ``/lib/**`` paths.
* :meth:`set_engine_version` drops every entry of another engine version; entries of
  other versions are also dropped when the cache opens.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from agentic_llm.cache.checker import Checker
from agentic_llm.cache.config import SubgraphCacheConfig, SubgraphCacheStats
from agentic_llm.cache.entry import CacheEntry, KvHint, Lookup, same_values
from agentic_llm.cache.index import EntryIndex
from agentic_llm.cache.key import KEY_PREFIX, SubgraphKey, digest
from agentic_llm.cache.rebind import rebind
from agentic_llm.cache.stores import CacheStore
from agentic_llm.cache.stores.memory import MemoryStore
from agentic_llm.dsl import (
    Document,
    ValidationPolicy,
    dumps,
)

if TYPE_CHECKING:
    from agentic_llm.planner import ExecutionPlan

__all__ = ["SubgraphCache", "SubgraphCacheConfig", "SubgraphCacheStats", "prompt_digest"]

log = logging.getLogger(__name__)


def prompt_digest(prompt: str) -> str:
    """The prompt hash stored with an entry."""
    return digest(prompt)


def _without_values(prompt: str) -> str:
    """The prompt minus the lines that carry context values (``VALUES: ...``)."""
    if not prompt:
        return ""
    return "\n".join(line for line in prompt.splitlines() if not line.startswith("VALUES:"))


def _same_group(stored: SubgraphKey, wanted: SubgraphKey) -> bool:
    """A fuzzy candidate must be of the wanted tenant, path and group, not only tenant."""
    return (stored.tenant == wanted.tenant and stored.path == wanted.path
            and stored.engine_version == wanted.engine_version
            and stored.group_prefix() == wanted.group_prefix())


def _same_request(entry: CacheEntry, key: SubgraphKey, values: Mapping[str, Any], prompt_hash: str) -> bool:
    """An exact hit needs the same key, the same values and (when both are known) the same prompt."""
    if entry.key != key or not same_values(entry.values, values):
        return False
    return not prompt_hash or not entry.prompt_hash or entry.prompt_hash == prompt_hash


class SubgraphCache:
    """Exact and fuzzy reuse of generated subgraphs over a :class:`CacheStore`.

    Args:
        store: where records live (default: a fresh in-memory store).
        config: limits and switches.
        engine_version: the current model/tokenizer/grammar version.
        clock: seconds for recency ranking (expiry always uses wall time, which the
            records carry and every process shares).
        release_kv: called with a registered KV handle when its entry leaves the cache.
    """

    def __init__(
        self,
        store: CacheStore | None = None,
        config: SubgraphCacheConfig | None = None,
        *,
        engine_version: str,
        clock: Callable[[], float] = time.time,
        release_kv: Callable[[object], None] | None = None,
    ) -> None:
        if not engine_version:
            raise ValueError("engine_version must be non-empty")
        self.store = store if store is not None else MemoryStore()
        self.config = config or SubgraphCacheConfig()
        self.engine_version = engine_version
        self._clock = clock
        self._release_kv = release_kv
        self._lock = threading.RLock()
        self._index = EntryIndex(frequency_weight_s=self.config.frequency_weight_s,
                                 lib_bonus_s=self.config.lib_bonus_s)
        self._kv: dict[str, object] = {}
        self._checker = Checker()
        self.exact_hits = self.fuzzy_hits = self.misses = 0
        self.stale = self.ambiguous = self.evictions = self.invalidations = 0
        self.malformed = self.foreign = 0
        self._tenant_quota: dict[str, int] = {}
        self._load()

    # ------------------------------------------------------------------ lookup

    def lookup_plan(self, plan: ExecutionPlan) -> Lookup:
        """:meth:`lookup` with the key, policy, values and prompt of ``plan``."""
        prompt = plan.render_prompt()
        return self.lookup(
            SubgraphKey.from_plan(plan),
            values=plan.request.context.values,
            policy=plan.validation_policy(),
            prompt_hash=prompt_digest(prompt),
            reserved=prompt,
        )

    def lookup(
        self,
        key: SubgraphKey,
        *,
        values: Mapping[str, Any],
        policy: ValidationPolicy | None,
        prompt_hash: str = "",
        reserved: str = "",
    ) -> Lookup:
        """Find a stored subgraph for ``key`` that validates under ``policy``.

        Args:
            key: the request's key.
            values: the request's context values.
            policy: the current plan's validation policy (None: parse only).
            prompt_hash: :func:`prompt_digest` of the current prompt ("" to skip).
            reserved: the current prompt; its lines that list values are ignored, and
                an old value occurring in the rest is not rebound (see ``rebind``).
        """
        with self._lock:
            if key.engine_version != self.engine_version:
                self.misses += 1
                return Lookup("miss", None, None, None, None, "engine version differs")
            now = self._clock()
            skey = key.store_key()
            entry = self._read(skey)
            hint: KvHint | None = None
            if entry is not None and _same_request(entry, key, values, prompt_hash):
                doc, problem = self._check(entry.text, policy)
                if doc is not None:
                    self._touch(skey, entry, now)
                    self.exact_hits += 1
                    return Lookup("exact", entry.text, doc, entry, self._hint(skey, entry), "exact")
                self.stale += 1
                hint = self._hint(skey, entry)
                log.debug("stored subgraph for %s no longer validates: %s", key.path, problem)
            if self.config.fuzzy:
                found, hint2 = self._fuzzy(key, skey, values, policy, now, _without_values(reserved))
                if found is not None:
                    return found
                hint = hint or hint2
            self.misses += 1
            return Lookup("miss", None, None, None, hint, "no usable entry")

    def _fuzzy(
        self, key: SubgraphKey, skey: str, values: Mapping[str, Any],
        policy: ValidationPolicy | None, now: float, reserved: str,
    ) -> tuple[Lookup | None, KvHint | None]:
        group = key.group_prefix()
        if self.store.shared:
            candidates = [k for k in self.store.keys(group) if k != skey]
        else:
            candidates = [k for k in self._index.members(group) if k != skey]
        # most used first, then most recent
        candidates.sort(key=lambda k: (-(m.hits if (m := self._index.get(k)) else 0),
                                       -(m.last_used if m else 0.0)))
        hint: KvHint | None = None
        for ck in candidates[: self.config.max_fuzzy_candidates]:
            entry = self._read(ck)
            if entry is None or not _same_group(entry.key, key):
                continue
            hint = hint or self._hint(ck, entry)
            rb = rebind(entry.text, entry.values, values, reserved=reserved)
            if rb.text is None:
                self.ambiguous += 1
                continue
            doc, problem = self._check(rb.text, policy)
            if doc is None:
                self.stale += 1
                log.debug("rebound subgraph for %s does not validate: %s", key.path, problem)
                continue
            self._touch(ck, entry, now)
            self.fuzzy_hits += 1
            text = dumps(doc)
            return Lookup("fuzzy", text, doc, entry, self._hint(ck, entry), rb.reason), hint
        return None, hint

    # ------------------------------------------------------------------ register

    def register_plan(
        self, plan: ExecutionPlan, text: str, *, kv_tokens: int = 0, kv_handle: object | None = None,
    ) -> CacheEntry | None:
        """:meth:`register` with the key, values and prompt of ``plan``."""
        return self.register(
            SubgraphKey.from_plan(plan), text, values=plan.request.context.values,
            prompt_hash=prompt_digest(plan.render_prompt()), kv_tokens=kv_tokens,
            kv_handle=kv_handle, policy=plan.validation_policy(),
        )

    def register(
        self,
        key: SubgraphKey,
        text: str,
        *,
        values: Mapping[str, Any],
        prompt_hash: str = "",
        kv_tokens: int = 0,
        kv_handle: object | None = None,
        policy: ValidationPolicy | None = None,
        ttl_s: float | None = None,
    ) -> CacheEntry | None:
        """Store a successful generation; return its entry, or None when refused.

        ``text`` is stored in canonical form. A text that does not parse, or does not
        validate under ``policy`` when one is given, is refused (logged, not raised):
        the cache never holds what it could not serve.
        """
        with self._lock:
            if key.engine_version != self.engine_version:
                return None
            doc, problem = self._check(text, policy)
            if doc is None:
                log.warning("not caching an invalid subgraph for %s: %s", key.path, problem)
                return None
            now = self._clock()
            wall = time.time()  # expiry is absolute wall time: stores and processes share it
            entry = CacheEntry(
                key=key, text=dumps(doc), values=dict(values), prompt_hash=prompt_hash,
                created_at=wall, expires_at=wall + (ttl_s or self.config.ttl_s), kv_tokens=kv_tokens,
            )
            data = entry.to_bytes()
            skey = key.store_key()
            self.store.put(skey, data, expires_at=entry.expires_at)
            self._forget(skey, release=True)
            self._index.add(skey, key, len(data), now, entry.expires_at)
            if kv_handle is not None:
                self._kv[skey] = kv_handle
            self._enforce_limits(now, keep=skey, tenant=key.tenant)
            return entry

    # ------------------------------------------------------------------ invalidation

    def invalidate_path(self, prefix: str, *, tenant: str | None = None) -> int:
        """Drop every entry whose path is ``prefix`` or lies under it; return how many."""
        base = prefix.rstrip("/")

        def under(p: str) -> bool:
            return p == base or p.startswith(base + "/") or p.startswith(base + "@")

        scan = SubgraphKey.tenant_prefix(tenant) if tenant is not None else KEY_PREFIX
        return self._drop_where(scan, lambda e: under(e.key.path) and
                                (tenant is None or e.key.tenant == tenant), strict=True)

    def invalidate_tenant(self, tenant: str) -> int:
        """Drop every entry of ``tenant``; return how many.

        Raises:
            AgenticError: ERR_UNAVAILABLE when the store is unreachable (nothing is
                reported removed that could come back).
        """
        with self._lock:
            keys = self.store.strict_keys(SubgraphKey.tenant_prefix(tenant))
            return self._drop(keys, strict=True)

    def set_tenant_quota(self, tenant: str, max_entries: int) -> None:
        """Keep at most ``max_entries`` entries of ``tenant`` (its lowest-ranked go first)."""
        with self._lock:
            self._tenant_quota[tenant] = max_entries

    def set_engine_version(self, engine_version: str) -> int:
        """Switch to ``engine_version``, dropping every entry of another version."""
        if not engine_version:
            raise ValueError("engine_version must be non-empty")
        with self._lock:
            self.engine_version = engine_version
            return self._drop_where(KEY_PREFIX, lambda e: e.key.engine_version != engine_version)

    def clear(self) -> int:
        """Drop every entry (ERR_UNAVAILABLE when the store is unreachable)."""
        with self._lock:
            return self._drop(self.store.strict_keys(KEY_PREFIX), strict=True)

    def stats(self) -> SubgraphCacheStats:
        return SubgraphCacheStats(
            entries=len(self._index), bytes=self._index.bytes, exact_hits=self.exact_hits,
            fuzzy_hits=self.fuzzy_hits, misses=self.misses, stale=self.stale,
            ambiguous=self.ambiguous, evictions=self.evictions, invalidations=self.invalidations,
            malformed=self.malformed, foreign=self.foreign,
            **{k: v for k, v in self.store.integrity().items()
               if k in ("corrupt_dropped", "forged_dropped", "bad_keys")},
        )

    def close(self) -> None:
        with self._lock:
            for skey in list(self._kv):
                self._release(skey)
            self.store.close()

    # ------------------------------------------------------------------ internals

    def _read(self, skey: str) -> CacheEntry | None:
        data = self.store.get(skey)
        if data is None:
            if skey in self._index:
                self._forget(skey, release=True)  # expired or dropped by another process
            return None
        try:
            entry = CacheEntry.from_bytes(data)
        except Exception as exc:  # noqa: BLE001 - a malformed record is skipped, never fatal
            self.malformed += 1
            log.warning("dropping an unreadable subgraph-cache record %r: %s", skey, exc)
            self._drop_quietly(skey)
            return None
        if entry.key.store_key() != skey:
            # a record whose own key is not where it is stored: never served for this key
            self.foreign += 1
            log.warning("dropping a subgraph-cache record stored under another key %r "
                        "(it belongs to %s)", skey, entry.key.path)
            self._drop_quietly(skey)
            return None
        return entry

    def _drop_quietly(self, skey: str) -> None:
        try:
            self.store.delete([skey])
        except Exception:  # noqa: BLE001 - a store outage must not fail the lookup
            log.debug("could not delete %r", skey, exc_info=True)
        self._forget(skey, release=True)

    def _check(self, text: str, policy: ValidationPolicy | None) -> tuple[Document | None, str]:
        return self._checker.check(text, policy)

    def _hint(self, skey: str, entry: CacheEntry) -> KvHint | None:
        handle = self._kv.get(skey)
        if handle is None and not entry.kv_tokens:
            return None
        return KvHint(entry.kv_tokens, handle)

    def _touch(self, skey: str, entry: CacheEntry, now: float) -> None:
        meta = self._index.get(skey)
        if meta is None:  # written by another process
            meta = self._index.add(skey, entry.key, len(entry.to_bytes()), now, entry.expires_at)
        meta.last_used = now
        meta.hits += 1
        entry.hits = meta.hits

    def _forget(self, skey: str, *, release: bool) -> None:
        self._index.remove(skey)
        if release:
            self._release(skey)

    def _release(self, skey: str) -> None:
        handle = self._kv.pop(skey, None)
        if handle is not None and self._release_kv is not None:
            try:
                self._release_kv(handle)
            except Exception:  # a failing release must not break the cache
                log.exception("releasing a pinned KV handle failed")

    def _drop(self, keys: list[str], *, strict: bool = False) -> int:
        n = 0
        if keys:
            n = self.store.strict_delete(keys) if strict else self.store.delete(keys)
        for k in keys:
            self._forget(k, release=True)
        self.invalidations += n
        return n

    def _drop_where(self, prefix: str, pred: Callable[[CacheEntry], bool], *,
                    strict: bool = False) -> int:
        with self._lock:
            doomed = []
            keys = self.store.strict_keys(prefix) if strict else self.store.keys(prefix)
            for k in keys:
                data = self.store.get(k)
                if data is None:
                    continue
                try:
                    entry = CacheEntry.from_bytes(data)
                except Exception:  # noqa: BLE001 - malformed: drop it with the rest
                    doomed.append(k)
                    continue
                if pred(entry):
                    doomed.append(k)
            return self._drop(doomed, strict=strict)

    def _enforce_limits(self, now: float, keep: str = "", tenant: str | None = None) -> None:
        victims = self._index.victims(max_entries=self.config.max_entries,
                                      max_bytes=self.config.max_bytes, wall=time.time(), keep=keep)
        quota = self._tenant_quota.get(tenant) if tenant is not None else None
        if quota is not None and tenant is not None:
            victims += [k for k in self._index.tenant_victims(
                SubgraphKey.tenant_prefix(tenant), quota, keep=keep) if k not in victims]
        if victims:
            self._evict(victims)

    def _evict(self, keys: list[str]) -> None:
        self.store.delete(keys)
        for k in keys:
            self._forget(k, release=True)
        self.evictions += len(keys)

    def _load(self) -> None:
        """Index what a persistent store already holds; drop other engine versions."""
        other = []
        for k in self.store.keys(KEY_PREFIX):
            entry = self._read(k)
            if entry is None:
                continue
            if entry.key.engine_version != self.engine_version:
                other.append(k)
                continue
            self._index.add(k, entry.key, len(entry.to_bytes()), self._clock(), entry.expires_at)
        if other:
            self.store.delete(other)
            log.info("dropped %d subgraph-cache entries of other engine versions", len(other))
        self._enforce_limits(self._clock())
