"""Emit one realistic event of every documented kind (shared by the tests)."""

from __future__ import annotations

from agentic_llm.observability import emit
from agentic_llm.observability.events import EventBus


def emit_every_kind(bus: EventBus, round_: int = 1) -> None:
    """One event of each kind; ``round_`` changes gauge values between calls."""
    n = round_
    emit.request_stage("r1", "plan", 0.002, bus=bus)
    emit.request_stage("r1", "prefill", 0.02, bus=bus)
    emit.request_first_token("r1", 0.05, bus=bus)
    emit.request_finished("r1", "success", prompt_tokens=100, output_tokens=20,
                          cached_tokens=64, ttft_s=0.05, tpot_s=0.01, e2e_s=0.3, bus=bus)
    emit.request_finished("r2", "error", error_code="ERR_TIMEOUT", e2e_s=1.0, bus=bus)
    emit.engine_step(3 + n, 5 + n, kv_pages_used=10 + n, kv_pages_free=100 - n,
                     prefill_tokens=64, decode_tokens=3, duration_s=0.01, bus=bus)
    emit.prefix_cache_match(128, 64, bus=bus)
    emit.prefix_cache_evict(2, bus=bus)
    emit.subgraph_cache_lookup("exact", store="memory", duration_s=0.0002, bus=bus)
    emit.subgraph_cache_insert(store="memory", bus=bus)
    emit.grammar_compile(0.2, cache_hit=False, bus=bus)
    emit.grammar_compile(0.0001, cache_hit=True, bus=bus)
    emit.grammar_mask(0.0003, batch_size=4, bus=bus)
    emit.jump_forward(7, request_id="r1", bus=bus)
    emit.budget_stop("max_tokens", request_id="r3", bus=bus)
    emit.fork_group_done(1.5, 3, group_id="g1", bus=bus)
    emit.aga_forward(0, n % 2 == 1, latency_us=80.0, gate_value=0.4, entropy=1.2, bus=bus)
    emit.aga_retrieval(0, injected=2, scores=(0.9, 0.7), bus=bus)
    emit.audit("register", True, target="fact_1", bus=bus)
    emit.audit("clear", True, component="cache", bus=bus)
    emit.aga_store(40 + n, utilization=0.1 * n, pinned_count=2 + n,
                   slot_change_rate=0.05 * n, bus=bus)
    bus.emit("alert.fired", rule="slo_latency_p99", severity="warning", value=2000.0,
             threshold=1000.0, message="p99 high")
