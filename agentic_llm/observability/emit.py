"""Typed helpers that emit the events of :mod:`agentic_llm.observability.kinds`.

Each helper takes the event's fields as keyword arguments and an optional ``bus``
(the process-wide default bus when None). They cost one function call and one
attribute check when nothing subscribes, and never raise because of a subscriber.

Example::

    from agentic_llm.observability import emit
    emit.request_finished("r1", "success", prompt_tokens=120, output_tokens=40,
                          ttft_s=0.05, tpot_s=0.01, e2e_s=0.45)
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from agentic_llm.observability import kinds as K
from agentic_llm.observability.events import EventBus, get_default_bus

__all__ = [
    "request_stage",
    "request_first_token",
    "request_finished",
    "engine_step",
    "prefix_cache_match",
    "prefix_cache_evict",
    "subgraph_cache_lookup",
    "subgraph_cache_insert",
    "grammar_compile",
    "grammar_mask",
    "jump_forward",
    "budget_stop",
    "fork_group_done",
    "aga_forward",
    "aga_retrieval",
    "audit",
    "aga_store",
    "StageTimer",
]


def _bus(bus: EventBus | None) -> EventBus:
    return bus if bus is not None else get_default_bus()


def request_stage(
    request_id: str, stage: str, duration_s: float, *,
    start_ts: float | None = None, bus: EventBus | None = None,
) -> None:
    """A stage (one of ``kinds.STAGES``) of a request finished after ``duration_s``."""
    b = _bus(bus)
    if start_ts is None:
        b.emit(K.REQUEST_STAGE, request_id=request_id, stage=stage, duration_s=duration_s)
    else:
        b.emit(K.REQUEST_STAGE, request_id=request_id, stage=stage, duration_s=duration_s,
               start_ts=start_ts)


def request_first_token(request_id: str, ttft_s: float, *, bus: EventBus | None = None) -> None:
    """The first output token of ``request_id`` came ``ttft_s`` after arrival."""
    _bus(bus).emit(K.REQUEST_FIRST_TOKEN, request_id=request_id, ttft_s=ttft_s)


def request_finished(
    request_id: str, outcome: str, *,
    error_code: str = "",
    prompt_tokens: int = 0,
    output_tokens: int = 0,
    cached_tokens: int = 0,
    ttft_s: float | None = None,
    tpot_s: float | None = None,
    e2e_s: float | None = None,
    tenant: str = "",
    target_path: str = "",
    bus: EventBus | None = None,
) -> None:
    """A request ended with ``outcome`` (one of ``kinds.OUTCOMES``)."""
    _bus(bus).emit(
        K.REQUEST_FINISHED, request_id=request_id, outcome=outcome, error_code=str(error_code),
        prompt_tokens=prompt_tokens, output_tokens=output_tokens, cached_tokens=cached_tokens,
        ttft_s=ttft_s, tpot_s=tpot_s, e2e_s=e2e_s, tenant=tenant, target_path=target_path,
    )


def engine_step(
    running: int, waiting: int, *,
    kv_pages_used: int | None = None,
    kv_pages_free: int | None = None,
    prefill_tokens: int = 0,
    decode_tokens: int = 0,
    duration_s: float | None = None,
    bus: EventBus | None = None,
) -> None:
    """One engine step: batch size ``running``, queue depth ``waiting``, KV pages."""
    _bus(bus).emit(
        K.ENGINE_STEP, running=running, waiting=waiting, kv_pages_used=kv_pages_used,
        kv_pages_free=kv_pages_free, prefill_tokens=prefill_tokens,
        decode_tokens=decode_tokens, duration_s=duration_s,
    )


def prefix_cache_match(query_tokens: int, hit_tokens: int, *, bus: EventBus | None = None) -> None:
    """A prompt of ``query_tokens`` tokens matched ``hit_tokens`` cached tokens."""
    _bus(bus).emit(K.PREFIX_CACHE_MATCH, query_tokens=query_tokens, hit_tokens=hit_tokens)


def prefix_cache_evict(blocks: int, *, bus: EventBus | None = None) -> None:
    """``blocks`` KV blocks were evicted from the prefix cache."""
    _bus(bus).emit(K.PREFIX_CACHE_EVICT, blocks=blocks)


def subgraph_cache_lookup(
    outcome: str, *, store: str = "", duration_s: float | None = None,
    bus: EventBus | None = None,
) -> None:
    """A subgraph cache lookup ended with ``outcome`` (``kinds.SUBGRAPH_OUTCOMES``)."""
    _bus(bus).emit(K.SUBGRAPH_CACHE_LOOKUP, outcome=outcome, store=store, duration_s=duration_s)


def subgraph_cache_insert(*, store: str = "", bus: EventBus | None = None) -> None:
    """A subgraph was written to the cache."""
    _bus(bus).emit(K.SUBGRAPH_CACHE_INSERT, store=store)


def grammar_compile(duration_s: float, cache_hit: bool, *, bus: EventBus | None = None) -> None:
    """A grammar was obtained in ``duration_s``; ``cache_hit`` when no compile ran."""
    _bus(bus).emit(K.GRAMMAR_COMPILE, duration_s=duration_s, cache_hit=cache_hit)


def grammar_mask(duration_s: float, *, batch_size: int = 1, bus: EventBus | None = None) -> None:
    """Token masks of ``batch_size`` requests were filled in ``duration_s``."""
    _bus(bus).emit(K.GRAMMAR_MASK, duration_s=duration_s, batch_size=batch_size)


def jump_forward(tokens: int, *, request_id: str = "", bus: EventBus | None = None) -> None:
    """``tokens`` forced tokens were appended without sampling."""
    _bus(bus).emit(K.GRAMMAR_JUMP_FORWARD, tokens=tokens, request_id=request_id)


def budget_stop(kind: str, *, request_id: str = "", bus: EventBus | None = None) -> None:
    """The budget controller stopped a request (``kind`` in ``kinds.BUDGET_KINDS``)."""
    _bus(bus).emit(K.BUDGET_STOP, kind=kind, request_id=request_id)


def fork_group_done(
    duration_s: float, size: int, *, group_id: str = "", bus: EventBus | None = None,
) -> None:
    """All ``size`` siblings of a fork group finished, ``duration_s`` after the first began."""
    _bus(bus).emit(K.FORK_GROUP_DONE, duration_s=duration_s, size=size, group_id=group_id)


def aga_forward(
    layer: int | str, applied: bool, *,
    latency_us: float | None = None,
    gate_value: float | None = None,
    entropy: float | None = None,
    bus: EventBus | None = None,
) -> None:
    """One AGA-hooked layer forward."""
    _bus(bus).emit(K.AGA_FORWARD, layer=layer, applied=applied, latency_us=latency_us,
                   gate_value=gate_value, entropy=entropy)


def aga_retrieval(
    layer: int | str, *, injected: int = 0, scores: Sequence[float] = (),
    bus: EventBus | None = None,
) -> None:
    """The AGA retriever ran on ``layer`` and injected ``injected`` results."""
    _bus(bus).emit(K.AGA_RETRIEVAL, layer=layer, injected=injected, scores=tuple(scores))


def audit(
    operation: str, success: bool, *,
    component: str = "aga",
    actor: str = "",
    target: str = "",
    details: Mapping[str, Any] | None = None,
    bus: EventBus | None = None,
) -> None:
    """A knowledge (``component='aga'``) or cache administration operation happened."""
    _bus(bus).emit(K.AUDIT, operation=operation, success=success, component=component,
                   actor=actor, target=target, details=dict(details or {}))


def aga_store(
    knowledge_count: int, *,
    utilization: float | None = None,
    pinned_count: int | None = None,
    slot_change_rate: float | None = None,
    bus: EventBus | None = None,
) -> None:
    """The AGA knowledge store's size or churn changed."""
    _bus(bus).emit(K.AGA_STORE, knowledge_count=knowledge_count, utilization=utilization,
                   pinned_count=pinned_count, slot_change_rate=slot_change_rate)


class StageTimer:
    """Context manager that emits ``request.stage`` for the block it wraps.

    ``with StageTimer("r1", "prefill"): ...`` measures with ``perf_counter`` and
    records the wall-clock start for traces.
    """

    __slots__ = ("request_id", "stage", "bus", "_t0", "_wall0")

    def __init__(self, request_id: str, stage: str, *, bus: EventBus | None = None) -> None:
        self.request_id = request_id
        self.stage = stage
        self.bus = bus
        self._t0 = 0.0
        self._wall0 = 0.0

    def __enter__(self) -> StageTimer:
        self._wall0 = time.time()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        request_stage(self.request_id, self.stage, time.perf_counter() - self._t0,
                      start_ts=self._wall0, bus=self.bus)
