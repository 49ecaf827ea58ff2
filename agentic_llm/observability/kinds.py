"""The event kinds the engine, caches, scheduler, server and AGA emit, and their fields.

This is the contract between emitters and exporters: every kind is a constant here,
with the fields its events carry. Emit through the helpers in
:mod:`agentic_llm.observability.emit` rather than building field dicts by hand.

Knowledge-injection (AGA) events keep the plugin's historical short names
(``forward``, ``retrieval``, ``audit``); engine events use dotted names.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "EventSpec",
    "EVENT_SPECS",
    "REQUEST_STAGE",
    "REQUEST_FIRST_TOKEN",
    "REQUEST_FINISHED",
    "ENGINE_STEP",
    "PREFIX_CACHE_MATCH",
    "PREFIX_CACHE_EVICT",
    "SUBGRAPH_CACHE_LOOKUP",
    "SUBGRAPH_CACHE_INSERT",
    "GRAMMAR_COMPILE",
    "GRAMMAR_MASK",
    "GRAMMAR_JUMP_FORWARD",
    "BUDGET_STOP",
    "FORK_GROUP_DONE",
    "AGA_FORWARD",
    "AGA_RETRIEVAL",
    "AUDIT",
    "AGA_STORE",
    "ALERT_FIRED",
    "ALERT_RESOLVED",
    "STAGES",
    "OUTCOMES",
    "SUBGRAPH_OUTCOMES",
    "BUDGET_KINDS",
]

REQUEST_STAGE = "request.stage"
REQUEST_FIRST_TOKEN = "request.first_token"
REQUEST_FINISHED = "request.finished"
ENGINE_STEP = "engine.step"
PREFIX_CACHE_MATCH = "prefix_cache.match"
PREFIX_CACHE_EVICT = "prefix_cache.evict"
SUBGRAPH_CACHE_LOOKUP = "subgraph_cache.lookup"
SUBGRAPH_CACHE_INSERT = "subgraph_cache.insert"
GRAMMAR_COMPILE = "grammar.compile"
GRAMMAR_MASK = "grammar.mask"
GRAMMAR_JUMP_FORWARD = "grammar.jump_forward"
BUDGET_STOP = "scheduler.budget_stop"
FORK_GROUP_DONE = "scheduler.fork_group_done"
AGA_FORWARD = "forward"
AGA_RETRIEVAL = "retrieval"
AUDIT = "audit"
AGA_STORE = "aga.store"
ALERT_FIRED = "alert.fired"
ALERT_RESOLVED = "alert.resolved"

#: Stages of one request, in order; ``request.stage`` events name one of them.
STAGES: tuple[str, ...] = (
    "plan", "cache_lookup", "grammar_compile", "queue", "prefill", "decode",
)
#: How a request ended (``request.finished`` ``outcome``).
OUTCOMES: tuple[str, ...] = (
    "success", "cached", "refused", "error", "cancelled", "timeout",
)
#: Result of a subgraph cache lookup.
SUBGRAPH_OUTCOMES: tuple[str, ...] = ("exact", "fuzzy", "miss", "invalid", "error")
#: Why the budget controller stopped a request.
BUDGET_KINDS: tuple[str, ...] = ("max_tokens", "max_nodes", "timeout", "max_depth")


@dataclass(frozen=True)
class EventSpec:
    """One event kind: who emits it, its required and optional fields."""

    kind: str
    emitter: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    doc: str = ""

    @property
    def fields(self) -> tuple[str, ...]:
        """All field names, required first."""
        return self.required + self.optional


EVENT_SPECS: dict[str, EventSpec] = {
    s.kind: s
    for s in (
        EventSpec(
            REQUEST_STAGE, "server / planner / engine",
            ("request_id", "stage", "duration_s"), ("start_ts",),
            "one stage of a request finished; stage is one of STAGES; start_ts is the "
            "wall-clock start (seconds since the epoch), default now - duration_s",
        ),
        EventSpec(
            REQUEST_FIRST_TOKEN, "engine",
            ("request_id", "ttft_s"), (),
            "the first output token of a request was sampled",
        ),
        EventSpec(
            REQUEST_FINISHED, "engine / server",
            ("request_id", "outcome"),
            ("error_code", "prompt_tokens", "output_tokens", "cached_tokens",
             "ttft_s", "tpot_s", "e2e_s", "tenant", "target_path"),
            "a request ended; outcome is one of OUTCOMES, error_code an ERR_* code or ''; "
            "tpot_s is the mean time per output token after the first",
        ),
        EventSpec(
            ENGINE_STEP, "engine",
            ("running", "waiting"),
            ("kv_pages_used", "kv_pages_free", "prefill_tokens", "decode_tokens",
             "duration_s"),
            "one engine step ran; running is the batch size, waiting the queue depth",
        ),
        EventSpec(
            PREFIX_CACHE_MATCH, "engine (at admission)",
            ("query_tokens", "hit_tokens"), (),
            "a prompt was looked up in the radix prefix cache",
        ),
        EventSpec(
            PREFIX_CACHE_EVICT, "prefix cache",
            ("blocks",), (),
            "blocks were evicted from the prefix cache",
        ),
        EventSpec(
            SUBGRAPH_CACHE_LOOKUP, "subgraph cache",
            ("outcome",), ("store", "duration_s"),
            "a subgraph cache lookup; outcome is one of SUBGRAPH_OUTCOMES",
        ),
        EventSpec(
            SUBGRAPH_CACHE_INSERT, "subgraph cache",
            (), ("store",),
            "a generated subgraph was stored in the cache",
        ),
        EventSpec(
            GRAMMAR_COMPILE, "grammar compiler",
            ("duration_s", "cache_hit"), (),
            "a grammar was requested; cache_hit tells whether compilation was skipped",
        ),
        EventSpec(
            GRAMMAR_MASK, "engine sampler",
            ("duration_s",), ("batch_size",),
            "token masks were filled for one step",
        ),
        EventSpec(
            GRAMMAR_JUMP_FORWARD, "engine",
            ("tokens",), ("request_id",),
            "forced text was appended without sampling",
        ),
        EventSpec(
            BUDGET_STOP, "scheduler budget controller",
            ("kind",), ("request_id",),
            "a request was stopped by its budget; kind is one of BUDGET_KINDS",
        ),
        EventSpec(
            FORK_GROUP_DONE, "scheduler",
            ("duration_s", "size"), ("group_id",),
            "every sibling of a fork group finished",
        ),
        EventSpec(
            AGA_FORWARD, "aga plugin",
            ("layer", "applied"), ("latency_us", "gate_value", "entropy"),
            "one hooked layer forward; applied tells whether knowledge was injected",
        ),
        EventSpec(
            AGA_RETRIEVAL, "aga retriever",
            ("layer",), ("injected", "scores"),
            "the retriever was called; injected is how many results went into slots",
        ),
        EventSpec(
            AUDIT, "aga plugin / cache administration",
            ("operation", "success"), ("component", "actor", "target", "details"),
            "a knowledge or cache administration operation; component is 'aga' "
            "(default) or 'cache'",
        ),
        EventSpec(
            AGA_STORE, "aga plugin",
            ("knowledge_count",), ("utilization", "pinned_count", "slot_change_rate"),
            "the knowledge store's size changed",
        ),
        EventSpec(
            ALERT_FIRED, "alert manager",
            ("rule", "severity", "value", "threshold", "message"), (),
            "an alert rule started firing",
        ),
        EventSpec(
            ALERT_RESOLVED, "alert manager",
            ("rule", "severity", "value"), (),
            "a firing alert rule stopped firing",
        ),
    )
}
