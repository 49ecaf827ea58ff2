"""Slot governance for retrieved knowledge, and the retrieval step itself.

Rules (all from the config):

* budget: retrieved entries occupy at most ``retriever_slot_ratio * max_slots`` slots;
  beyond it the least recently used retrieved entry makes room. Registered knowledge
  is pinned when ``pin_registered`` is set, so retrieval never displaces it.
* dedup: a result whose key has cosine similarity >= ``retriever_dedup_similarity``
  with knowledge already visible to that namespace is skipped.
* cooldown: after a retrieval that injected something, the next
  ``retriever_cooldown_steps`` steps do not retrieve.
* stability: the slot change rate (fraction of recent retrieved insertions that
  evicted another retrieved entry) above ``slot_stability_threshold`` means the slots
  are thrashing; retrieval pauses for twice the cooldown.
* timeout: a retriever call slower than ``retriever_timeout_ms`` is abandoned (its
  late results are dropped) and counted; inference goes on without it.
"""

from __future__ import annotations

import concurrent.futures as futures
import threading
from collections import deque
from typing import TYPE_CHECKING, Any

import torch

from agentic_llm.aga.config import AGAConfig
from agentic_llm.aga.instrumentation.audit_log import AuditLog
from agentic_llm.aga.retriever.base import BaseRetriever, RetrievalQuery, RetrievalResult
from agentic_llm.aga.store.kv_store import KVStore
from agentic_llm.aga.types import SOURCE_RETRIEVED
from agentic_llm.observability.events import EventBus
from agentic_llm.observability.kinds import AGA_RETRIEVAL, AGA_STORE

if TYPE_CHECKING:
    from agentic_llm.aga.runtime.injection import InjectionRuntime
    from agentic_llm.aga.runtime.step import StepState

__all__ = ["SlotGovernor", "GovernedRetrieval", "emit_store_state"]


def emit_store_state(bus: EventBus, store: KVStore, slot_change_rate: float) -> None:
    """Report the slot store's fill and the slot change rate (an ``aga.store`` event)."""
    if bus.wants(AGA_STORE):
        bus.emit(AGA_STORE, knowledge_count=len(store), utilization=store.utilization,
                 pinned_count=store.pinned_count, slot_change_rate=slot_change_rate)


class SlotGovernor:
    """Budget, dedup, cooldown and stability bookkeeping."""

    def __init__(self, config: AGAConfig) -> None:
        self.budget = max(int(config.retriever_slot_ratio * config.max_slots), 0)
        self.cooldown_steps = config.retriever_cooldown_steps
        self.dedup_similarity = config.retriever_dedup_similarity
        self.stability_threshold = config.slot_stability_threshold
        self._next_allowed_step = 0
        self._changes: deque[bool] = deque(maxlen=50)
        self.deduplicated = 0
        self.over_budget_evictions = 0
        self.suppressed_unstable = 0
        self.suppressed_cooldown = 0

    @property
    def slot_change_rate(self) -> float:
        """Fraction of recent retrieved insertions that evicted another retrieved entry."""
        return sum(self._changes) / len(self._changes) if self._changes else 0.0

    def allows(self, step: int) -> bool:
        """Whether retrieval may run at ``step``."""
        if step < self._next_allowed_step:
            self.suppressed_cooldown += 1
            return False
        return self.budget > 0

    def after_retrieval(self, step: int, injected: int) -> None:
        """Start the cooldown (longer when the slots are unstable)."""
        if injected == 0:
            return
        wait = self.cooldown_steps
        if len(self._changes) >= 4 and self.slot_change_rate > self.stability_threshold:
            self.suppressed_unstable += 1
            wait *= 2
        self._next_allowed_step = step + wait + 1

    def is_duplicate(self, store: KVStore, key: torch.Tensor, namespace: str) -> bool:
        """True when ``key`` is nearly the same as visible knowledge of ``namespace``."""
        vis = store.visibility(((namespace,),))[0]
        view = store.get_active()
        k = key.reshape(-1).to(view.keys)
        k = k / k.norm().clamp_min(1e-12)
        sims = (view.keys @ k).masked_fill(~vis, -2.0)
        dup = bool((sims >= self.dedup_similarity).any())
        self.deduplicated += int(dup)
        return dup

    def make_room(self, store: KVStore) -> Any:
        """Evict the least recently used retrieved entry when the budget is full."""
        if store.count(source=SOURCE_RETRIEVED) < self.budget:
            self._changes.append(False)
            return None
        victims = store.lru_order(source=SOURCE_RETRIEVED)
        if not victims:
            return None
        self.over_budget_evictions += 1
        self._changes.append(True)
        return store.remove(victims[0].id, victims[0].namespace)

    def stats(self) -> dict[str, Any]:
        """Counters for diagnostics."""
        return {"budget": self.budget, "slot_change_rate": self.slot_change_rate,
                "deduplicated": self.deduplicated,
                "over_budget_evictions": self.over_budget_evictions,
                "suppressed_unstable": self.suppressed_unstable,
                "suppressed_cooldown": self.suppressed_cooldown}


class GovernedRetrieval:
    """Calls a retriever when rows are uncertain and writes results under governance."""

    def __init__(self, retriever: BaseRetriever, config: AGAConfig, audit: AuditLog,
                 bus: EventBus) -> None:
        self.retriever = retriever
        self.config = config
        self.governor = SlotGovernor(config)
        self.audit = audit
        self.bus = bus
        self.calls = 0
        self.timeouts = 0
        self.errors = 0
        self.injected = 0
        self._pool: futures.ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def _executor(self) -> futures.ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="aga-retriever")
            return self._pool

    def maybe_retrieve(self, runtime: InjectionRuntime, hidden: torch.Tensor,
                       state: StepState) -> bool:
        """Retrieve for the uncertain rows of this step; True when slots changed."""
        cfg = self.config
        if self.retriever.is_null or not cfg.retriever_auto_inject:
            return False
        step = state.record.step
        if not self.governor.allows(step):
            return False
        last = state.record.is_last_token
        if last is None:
            last = torch.zeros(hidden.shape[0], dtype=torch.bool, device=hidden.device)
            last[-1] = True
        unc = state.record.uncertainty
        if unc is None:
            unc = runtime.gates.hidden_variance(hidden)
        gate = runtime.gates.gate1(unc)
        # Host sync by design: a retriever is host code.
        want = (gate > 0) & last
        if not bool(want.any()):
            return False
        rows = state.token_rows[want].tolist()
        h = hidden[want]
        query = RetrievalQuery(runtime.injector.project_query(h), h, unc[want],
                               [state.row_namespaces[r] for r in rows], state.record.step,
                               cfg.retriever_top_k)
        self.calls += 1
        fut = self._executor().submit(self.retriever.retrieve, query)
        try:
            results = fut.result(timeout=cfg.retriever_timeout_ms / 1000.0)
        except futures.TimeoutError:
            self.timeouts += 1
            runtime.metrics.count_timeout()
            return False
        except Exception:  # noqa: BLE001 - a broken retriever fails open
            self.errors += 1
            runtime.metrics.count_error()
            return False
        written = self._admit(runtime.store, results, query)
        self.governor.after_retrieval(step, len(written))
        self.injected += len(written)
        self.bus.emit(AGA_RETRIEVAL, layer=runtime.first_layer, injected=len(written),
                      scores=tuple(r.score for r in results))
        if written:
            self.retriever.on_injected(written)
            # the slots changed: their fill and the change rate move with them
            emit_store_state(self.bus, runtime.store, self.governor.slot_change_rate)
        return bool(written)

    def _admit(self, store: KVStore, results: list[RetrievalResult],
               query: RetrievalQuery) -> list[RetrievalResult]:
        written: list[RetrievalResult] = []
        default_ns = query.namespaces[0][0] if query.namespaces and query.namespaces[0] else "default"
        allowed = {ns for row in query.namespaces for ns in row}
        for res in results[: self.config.retriever_top_k * max(len(query.namespaces), 1)]:
            if res.score < self.config.retriever_min_score:
                continue
            # Results land in a namespace the asking request may use, never elsewhere.
            ns = res.namespace if res.namespace in allowed else default_ns
            if store.get(res.id, ns) is not None or self.governor.is_duplicate(store, res.key, ns):
                continue
            evicted = self.governor.make_room(store)
            if evicted is not None:
                self.audit.record("evict", evicted.id, namespace=evicted.namespace,
                                  reason="retriever_budget")
            entry, lru = store.put(res.id, res.key, res.value, namespace=ns,
                                   reliability=res.reliability, pinned=False,
                                   source=SOURCE_RETRIEVED, metadata=res.metadata)
            if lru is not None:
                self.audit.record("evict", lru.id, namespace=lru.namespace, reason="lru")
            self.audit.record("retriever_inject", res.id, namespace=ns, score=res.score,
                              slot=entry.slot)
            written.append(res)
        return written

    def stats(self) -> dict[str, Any]:
        """Counters for diagnostics."""
        return {"retriever": self.retriever.get_stats(), "calls": self.calls,
                "timeouts": self.timeouts, "errors": self.errors, "injected": self.injected,
                **self.governor.stats()}

    def close(self) -> None:
        """Stop the worker threads."""
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
