"""Derive engine events from an ``LLMEngine``'s outputs and counters.

:class:`EngineObserver` is a step observer of the engine loop
(``agentic_llm.engine.loop.EngineLoop``) and emits what each step did: ``engine.step`` (batch size, queue depth, KV pages, tokens),
``prefix_cache.match`` (the prefix cache's token counters since the last step),
``prefix_cache.evict``, and for each finished request ``request.first_token``,
``request.finished`` (TTFT, TPOT, tokens), ``grammar.jump_forward`` and
``scheduler.budget_stop``. It needs nothing from the engine beyond its public
``step()``, ``stats()``, ``prefix_cache`` counters and ``RequestOutput`` metrics, so
an engine that emits nothing itself is still fully observable.

Add it to the loop (``EngineLoop(engine, observers=[observer])`` or
``engine.generate(..., observers=[observer])``); ``serve`` binds one to the pipeline's
loop. Front ends that already emit ``request.finished`` (the serving pipeline) pass
``emit_requests=False`` so requests are not counted twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agentic_llm.observability import kinds as K
from agentic_llm.observability.events import EventBus, get_default_bus

__all__ = ["EngineObserver", "engine_pages"]

_OUTCOME = {"stop": "success", "length": "success", "abort": "cancelled",
            "timeout": "timeout", "error": "error"}


def engine_pages(stats: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """(used, free) KV pages from an engine ``stats()`` mapping, whatever its spelling."""
    used = next((stats[k] for k in ("blocks_used", "pages_used", "kv_pages_used") if k in stats), None)
    free = next((stats[k] for k in ("blocks_free", "pages_free", "kv_pages_free") if k in stats), None)
    return used, free


class EngineObserver:
    """Emits bus events describing each step of ``engine``.

    Args:
        engine: an ``LLMEngine`` (anything with ``step()`` and ``stats()``).
        bus: where events go (the process default when None).
        emit_requests: emit per-request events for finished outputs.
    """

    def __init__(self, engine: Any, bus: EventBus | None = None, *, emit_requests: bool = True) -> None:
        self.engine = engine
        self.bus = bus if bus is not None else get_default_bus()
        self.emit_requests = emit_requests
        self._prefix_seen = (0, 0)
        self._evicted_seen = 0
        self._sync_prefix()

    def _sync_prefix(self) -> tuple[int, int, int]:
        pc = getattr(self.engine, "prefix_cache", None)
        if pc is None:
            return 0, 0, 0
        q, h = int(getattr(pc, "queries_tokens", 0)), int(getattr(pc, "hit_tokens", 0))
        ev = int(getattr(pc, "evicted_blocks", 0))
        dq, dh = q - self._prefix_seen[0], h - self._prefix_seen[1]
        dev = ev - self._evicted_seen
        self._prefix_seen, self._evicted_seen = (q, h), ev
        return dq, dh, dev

    def _cheap_stats(self) -> Mapping[str, Any]:
        # engine.stats() walks every KV block to count shared ones; per step only the
        # counts are needed, which the pool and scheduler hold directly.
        e = self.engine
        pool, sched = getattr(e, "pool", None), getattr(e, "scheduler", None)
        if pool is not None and sched is not None and hasattr(pool, "num_free"):
            free = int(pool.num_free)
            return {"running": len(sched.running), "waiting": len(sched.waiting),
                    "blocks_free": free, "blocks_used": int(pool.num_blocks) - free}
        return e.stats()

    def before_step(self) -> None:
        """Nothing to do before a step (the loop times it)."""

    def after_step(self, outputs: Sequence[Any], duration_s: float | None = None) -> None:
        """Emit the events of one step that returned ``outputs``."""
        bus = self.bus
        if not bus.wants(K.ENGINE_STEP) and not bus.wants(K.REQUEST_FINISHED):
            return  # nobody listens: no stats read, no events
        stats = self._cheap_stats()
        used, free = engine_pages(stats)
        # Sampled tokens are known per step; prefilled tokens are counted when their
        # request finishes (prompt minus prefix-cache hits), so totals are exact.
        decode = sum(len(getattr(o, "new_token_ids", ()) or ()) for o in outputs)
        prefill = sum(len(o.prompt_token_ids) - int(o.metrics.num_cached_tokens)
                      for o in outputs if getattr(o, "finished", False))
        bus.emit(K.ENGINE_STEP, running=int(stats.get("running", 0)),
                 waiting=int(stats.get("waiting", 0)), kv_pages_used=used, kv_pages_free=free,
                 prefill_tokens=prefill, decode_tokens=decode, duration_s=duration_s)
        dq, dh, dev = self._sync_prefix()
        if dq > 0:
            bus.emit(K.PREFIX_CACHE_MATCH, query_tokens=dq, hit_tokens=dh)
        if dev > 0:
            bus.emit(K.PREFIX_CACHE_EVICT, blocks=dev)
        for o in outputs:
            if getattr(o, "finished", False):
                forced = int(o.metrics.num_forced_tokens)
                if forced:  # an engine fact, whoever reports the request
                    bus.emit(K.GRAMMAR_JUMP_FORWARD, tokens=forced, request_id=str(o.request_id))
                if self.emit_requests:
                    self._finished(o)

    def _finished(self, o: Any) -> None:
        bus = self.bus
        m = o.metrics
        reason = str(getattr(o, "finish_reason", "") or "")
        rid = str(o.request_id)
        n_out = len(o.output_token_ids)
        ttft = tpot = e2e = None
        if m.first_token_time is not None:
            ttft = max(0.0, m.first_token_time - m.arrival_time)
            bus.emit(K.REQUEST_FIRST_TOKEN, request_id=rid, ttft_s=ttft)
            if m.finish_time is not None and n_out > 1:
                tpot = max(0.0, (m.finish_time - m.first_token_time) / (n_out - 1))
        if m.finish_time is not None:
            e2e = max(0.0, m.finish_time - m.arrival_time)
        err = getattr(o, "error", None)
        code = str(getattr(err, "code", "") or "") if err is not None else ""
        if reason == "length":
            bus.emit(K.BUDGET_STOP, kind="max_tokens", request_id=rid)
        elif reason == "timeout":
            bus.emit(K.BUDGET_STOP, kind="timeout", request_id=rid)
        bus.emit(K.REQUEST_FINISHED, request_id=rid, outcome=_OUTCOME.get(reason, "error"),
                 error_code=code, prompt_tokens=len(o.prompt_token_ids), output_tokens=n_out,
                 cached_tokens=int(m.num_cached_tokens), ttft_s=ttft, tpot_s=tpot, e2e_s=e2e,
                 tenant="", target_path="")
