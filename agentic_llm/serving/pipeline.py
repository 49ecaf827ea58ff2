"""The in-process serving pipeline every front end shares.

    request -> planner.plan -> subgraph cache (exact / fuzzy) -> grammar matcher
      -> engine (prefix cache; dag_id / branch_id / priority / deadline passed on)
      -> node events as nodes complete -> dsl validation -> cache registration

:meth:`Pipeline.events` is the core: a generator of :class:`NodeEvent` (and, on
request, :class:`TokenDelta`) items ending with the :class:`ServingResult`.
:meth:`Pipeline.run` returns only the result; :meth:`Pipeline.fork` runs the
branches of one fork together so the engine batches them.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from agentic_llm.engine.loop import EngineLoop
from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.observability import emit
from agentic_llm.planner import GenerateRequest, plan
from agentic_llm.scheduler.budget import budget_exceeded, budget_stop, close_forced
from agentic_llm.serving.admission import Admission
from agentic_llm.serving.ast import check_document, document_blocks, shown
from agentic_llm.serving.knowledge import KnowledgeAdmin
from agentic_llm.serving.limits import check_room, encode_prompt, max_prompt_chars, sampling_params
from agentic_llm.serving.nodes import NodeStream
from agentic_llm.serving.result import (
    BranchResult,
    CacheOutcome,
    NodeEvent,
    ServingResult,
    TimingsBuilder,
    TokenCounts,
    TokenDelta,
)
from agentic_llm.serving.seams import PipelineCompiler, PipelineEngine, PipelineTokenizer
from agentic_llm.serving.stream import CancelToken, TextDecoder
from agentic_llm.serving.subgraphs import SubgraphStore

__all__ = ["Pipeline", "PipelineParts", "StreamItem"]

_log = logging.getLogger(__name__)

StreamItem = NodeEvent | TokenDelta | ServingResult


@dataclass
class PipelineParts:
    """What a pipeline runs on.

    Attributes:
        engine: an ``agentic_llm.engine.LLMEngine`` (or compatible).
        tokenizer: a ``tokenizers.Tokenizer``; the engine's when None.
        compiler: an ``agentic_llm.grammar.GrammarCompiler``; None generates without
            a constraint (the result is still validated).
        cache: the subgraph cache; None disables it.
        knowledge: AGA knowledge administration; None when AGA is off.
        library: the subgraph registry (``agentic_llm.library.SubgraphRegistry``);
            None serves requests without ``/lib`` resolution or outcome tracking.
        max_model_len: prompt plus output tokens the model can hold (0: unchecked).
        jump_forward: append grammar-forced text without a decode step each.
        chat: the model's ``ChatTemplate`` framing prompts; None sends them plain.
    """

    engine: PipelineEngine
    tokenizer: PipelineTokenizer | None = None
    compiler: PipelineCompiler | None = None
    cache: SubgraphStore | None = None
    knowledge: KnowledgeAdmin | None = None
    max_model_len: int = 0
    jump_forward: bool = True
    library: Any = None
    chat: Any = None


class Pipeline:
    """Plans, looks up, generates, streams, validates and caches subgraphs.

    Args:
        parts: the engine and its helpers.
        admission: concurrency gate; requests wait for a slot here.
        default_timeout_sec: deadline of a request that brings none.
    """

    def __init__(
        self,
        parts: PipelineParts,
        *,
        admission: Admission | None = None,
        default_timeout_sec: float = 60.0,
    ) -> None:
        self.parts = parts
        self.engine = parts.engine
        self.tokenizer = parts.tokenizer if parts.tokenizer is not None else parts.engine.tokenizer
        if self.tokenizer is None:
            raise AgenticError(ErrorCode.UNSUPPORTED_MODEL, "the model ships no tokenizer.json")
        self.loop = EngineLoop(parts.engine)
        self.admission = admission or Admission(max_concurrent=64, max_queue=256)
        self.default_timeout_sec = default_timeout_sec
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="agentic-fork")

    # -- public API -----------------------------------------------------------------
    @property
    def model_name(self) -> str:
        """The served model's name (its checkpoint directory), for labels and logs."""
        loaded = getattr(self.engine, "loaded", None)
        model_dir = getattr(loaded, "model_dir", None)
        return model_dir.name if model_dir is not None else ""

    def with_admission(self, admission: Admission) -> Pipeline:
        """A view of this pipeline (same engine loop, caches and fork pool) behind
        another admission gate, e.g. a second front end with its own limits."""
        view = copy.copy(self)
        view.admission = admission
        return view

    def new_request_id(self) -> str:
        return self.loop.new_request_id()

    def run(self, req: GenerateRequest, **kwargs: Any) -> ServingResult:
        """Generate (or fetch from the cache) the subgraph for ``req``; see :meth:`events`."""
        result: ServingResult | None = None
        for item in self.events(req, **kwargs):
            if isinstance(item, ServingResult):
                result = item
        if result is None:  # pragma: no cover - events always ends with a result or raises
            raise AgenticError(ErrorCode.INTERNAL, "the pipeline produced no result")
        return result

    def events(
        self,
        req: GenerateRequest,
        *,
        request_id: str | None = None,
        deadline: float | None = None,
        stream_tokens: bool = False,
        cancel: CancelToken | None = None,
        admitted: bool = False,
    ) -> Iterator[StreamItem]:
        """Node events (and token deltas with ``stream_tokens``), then the result.

        Args:
            req: the request.
            request_id: an id from :meth:`new_request_id` (one is made when None).
            deadline: a ``time.monotonic()`` instant; the earlier of it and the
                request's ``budget.timeout_sec`` applies.
            stream_tokens: also yield :class:`TokenDelta` items.
            cancel: stops the request when cancelled (its engine pages are freed).
            admitted: the caller already holds an admission slot.

        Raises:
            AgenticError: the planner's refusal, ERR_OVERLOADED / ERR_UNAVAILABLE
                from admission, ERR_TIMEOUT, ERR_CANCELLED, or an engine error.
        """
        t0 = time.perf_counter()
        rid = request_id or self.new_request_id()
        timeout = req.budget.timeout_sec if req.budget.timeout_sec > 0 else self.default_timeout_sec
        own_deadline = time.monotonic() + timeout
        deadline = own_deadline if deadline is None else min(deadline, own_deadline)
        outcome, code = "error", ""
        try:
            if admitted:
                yield from self._events(req, rid, t0, deadline, stream_tokens, cancel)
            else:
                with self.admission.slot(deadline):
                    yield from self._events(req, rid, t0, deadline, stream_tokens, cancel)
            outcome = "success"
        except AgenticError as exc:
            code = exc.code.value
            if exc.code is ErrorCode.TIMEOUT:
                emit.budget_stop("timeout", request_id=rid)
            outcome = {ErrorCode.TIMEOUT: "timeout", ErrorCode.CANCELLED: "cancelled"}.get(
                exc.code, "refused" if exc.code in _REFUSALS else "error")
            raise
        except GeneratorExit:
            outcome, code = "cancelled", ErrorCode.CANCELLED.value
            raise
        finally:
            if outcome != "success":
                emit.request_finished(rid, outcome, error_code=code, tenant=req.tenant,
                                      target_path=req.target_path,
                                      e2e_s=time.perf_counter() - t0)

    def fork(
        self,
        branches: Sequence[GenerateRequest],
        *,
        dag_id: str = "",
        deadline: float | None = None,
        cancel: CancelToken | None = None,
    ) -> Iterator[BranchResult]:
        """Run the branches of one fork together; yield each result as it completes.

        Branches without a ``dag_id`` get ``dag_id``; without a ``branch_id``, their
        index. A failing branch yields a :class:`BranchResult` with its error and does
        not stop the others. Cancelling ``cancel`` stops every branch still running.
        """
        reqs = []
        for i, b in enumerate(branches):
            reqs.append(replace(b, dag_id=b.dag_id or dag_id or None,
                                branch_id=b.branch_id or str(i)))
        futures = {
            self._pool.submit(self.run, r, deadline=deadline,
                              cancel=cancel.child() if cancel is not None else None):
                (i, r.branch_id or str(i))
            for i, r in enumerate(reqs)
        }
        from concurrent.futures import as_completed

        started = time.monotonic()
        pending = len(futures)
        for fut in as_completed(futures):
            pending -= 1
            if pending == 0:
                # what the runtime waits for: the last sibling of the group
                emit.fork_group_done(time.monotonic() - started, len(futures),
                                     group_id=dag_id or (reqs[0].dag_id or "") if reqs else "")
            i, bid = futures[fut]
            try:
                yield BranchResult(i, bid, result=fut.result())
            except AgenticError as exc:
                yield BranchResult(i, bid, error=exc)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # noqa: BLE001 - reported per branch (panics too)
                _log.exception("fork branch %s failed", bid)
                yield BranchResult(i, bid, error=AgenticError(
                    ErrorCode.INTERNAL, f"branch failed: {type(exc).__name__}"))

    def cache_stats(self) -> dict[str, float]:
        """Subgraph cache, prefix cache and engine counters, flattened."""
        out: dict[str, float] = {}
        if self.parts.cache is not None:
            out.update({k: float(v) for k, v in self.parts.cache.stats().items()})
        out.update(_engine_counters(self.loop.stats()))  # published by the loop thread
        a = self.admission.stats()
        out.update({"admission_running": a.running, "admission_waiting": a.waiting,
                    "admission_refused_overload": a.refused_overload})
        return out

    def metric_collectors(self) -> list[Any]:
        """The Prometheus collectors its parts offer (the library registry's per-version
        metrics), for an observability stack to serve with its own."""
        library = self.parts.library
        return [library.collector()] if library is not None else []

    def invalidate(self, *, path_prefix: str = "", tenant: str = "") -> int:
        """Remove cached subgraphs under ``path_prefix`` and/or of ``tenant``."""
        if self.parts.cache is None:
            return 0
        return self.parts.cache.invalidate(path_prefix=path_prefix, tenant=tenant)

    def close(self) -> None:
        """Stop the engine loop and the fork pool, and close the cache store."""
        self.loop.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        for part in (self.parts.cache, self.parts.library):
            close = getattr(part, "close", None)
            if callable(close):
                close()

    # -- the stages -----------------------------------------------------------------
    def _events(
        self, req: GenerateRequest, rid: str, t0: float, deadline: float,
        stream_tokens: bool, cancel: CancelToken | None,
    ) -> Iterator[StreamItem]:
        tm = TimingsBuilder(t0)
        tm.mark("queue_ms")
        if cancel is not None and cancel.cancelled:
            raise AgenticError(ErrorCode.CANCELLED, "request cancelled")
        library = self.parts.library
        resolver = library.resolver if library is not None else None
        p = plan(req, library=resolver)
        tm.mark("plan_ms")
        emit.request_stage(rid, "plan", tm.last_s)
        policy = p.validation_policy()
        cache = self.parts.cache
        use_cache = cache is not None and not req.flags.bypass_cache
        if use_cache:
            assert cache is not None
            hit = cache.lookup(p)
            if hit is not None:
                result = self._from_cache(req, rid, hit.text, hit.outcome, policy, tm)
                if result is not None:
                    if resolver is not None:
                        library.note_served(rid, resolver.served_record(p, result.text, True))
                        result = replace(result, library_versions=p.library_versions,
                                         offered=p.offered)
                    emit.request_stage(rid, "cache_lookup", tm.elapsed_s("cache_ms"))
                    for i, n in enumerate(result.nodes):
                        yield NodeEvent(i, n, "", (time.perf_counter() - t0) * 1000.0)
                    emit.request_finished(rid, "cached", tenant=req.tenant,
                                          target_path=req.target_path,
                                          e2e_s=time.perf_counter() - t0)
                    yield result
                    return
        tm.mark("cache_ms")

        prompt_ids = self._encode_prompt(p.render_prompt(self.parts.chat))
        max_len = self.parts.max_model_len
        # the output may use max_tokens or what the context window leaves, whichever
        # is less; the matcher closes the document within it (grammar.budget)
        limit = min(p.max_tokens, max_len - len(prompt_ids)) if max_len else p.max_tokens
        matcher = (self.parts.compiler.matcher_for(p, max_tokens=max(limit, 0))
                   if self.parts.compiler is not None else None)
        check_room(p, matcher, limit, len(prompt_ids), max_len)
        params = sampling_params(req, limit, deadline, self.parts.jump_forward)
        # Scheduler fields go to the engine when its add_request takes them.
        ch = self.loop.submit(
            prompt_ids, params, request_id=rid, deadline=deadline, matcher=matcher,
            dag_id=req.dag_id, branch_id=req.branch_id, priority=req.priority,
            hook_info={"namespaces": tuple(req.namespaces), "tenant": req.tenant},
        )
        if cancel is not None:
            cancel.bind(lambda: self.loop.abort(rid))
        finished = False
        try:
            decoder = TextDecoder(self.tokenizer)
            pending: list[NodeEvent] = []
            nodes = NodeStream(p.target_path, pending.append, started=t0)
            first = True
            t_first = t_last = 0.0
            unsent_ids: list[int] = []  # ids whose text has not been sent yet
            reason = ""
            cached_tokens = forced_tokens = 0
            while True:
                wait = max(0.0, deadline - time.monotonic()) + 5.0
                item = ch.get(timeout=wait)
                if item.token_ids:
                    if first:
                        tm.mark("first_token_ms", since_start=True)
                        t_first = time.perf_counter()
                        first = False
                    delta = decoder.add(item.token_ids)
                    nodes.feed(delta)
                    unsent_ids.extend(item.token_ids)
                    if stream_tokens and delta:
                        yield TokenDelta(delta, tuple(unsent_ids))
                        unsent_ids.clear()
                    while pending:
                        yield pending.pop(0)
                cached_tokens = max(cached_tokens, item.cached_tokens)
                forced_tokens = max(forced_tokens, item.forced_tokens)
                if item.finished:
                    finished = True
                    if item.error is not None and item.finish_reason != "length":
                        raise item.error
                    reason = item.finish_reason or "stop"
                    break
            tm.mark("generate_ms")
            t_last = time.perf_counter()
            text = decoder.text()
            tail = text[decoder.sent:]
            closed_by_force = False
            if reason == "length" and matcher is not None:
                # Cut by max_tokens: close the document with the text the grammar
                # forces, when no choice is left (the engine is done with the matcher).
                extra = close_forced(matcher)
                if extra:
                    text, tail, closed_by_force = text + extra, tail + extra, True
            nodes.feed(tail)
            if stream_tokens and (tail or unsent_ids):
                yield TokenDelta(tail, tuple(unsent_ids))
            nodes.close()
            while pending:
                yield pending.pop(0)
        finally:
            if not finished:
                self.loop.abort(rid)

        doc, diags = check_document(text, policy)
        tm.mark("validate_ms")
        valid = doc is not None and not any(d.is_error for d in diags)
        if reason == "length":
            emit.budget_stop("max_tokens", request_id=rid)
        if not valid and reason == "length":
            # Cut off by the token budget: an incomplete document is a budget
            # refusal, not an answer (the nodes already streamed stay valid).
            raise budget_exceeded(p.max_tokens, nodes.count)
        if valid and use_cache:
            assert cache is not None
            try:
                cache.insert(p, text)
            except AgenticError:
                _log.warning("subgraph cache insert failed for %s", p.target_path, exc_info=True)
        outcome = (CacheOutcome.BYPASS if req.flags.bypass_cache else
                   CacheOutcome.PREFIX if cached_tokens > 0 else CacheOutcome.MISS)
        counts = TokenCounts(
            prompt_tokens=len(prompt_ids), cached_prompt_tokens=cached_tokens,
            completion_tokens=len(decoder.ids), forced_tokens=forced_tokens,
            node_count=doc.node_count if doc is not None else nodes.count,
        )
        result = ServingResult(
            request_id=rid, target_path=p.target_path, text=text,
            blocks=document_blocks(doc) if doc is not None else (), document=doc,
            diagnostics=shown(diags, req.flags.diagnostics), valid=valid, cache=outcome,
            counts=counts, timings=tm.build(), finish_reason=reason,
            dag_id=req.dag_id or "", branch_id=req.branch_id or "",
            budget_stop=budget_stop(reason, closed_by_force, counts.node_count, p.max_nodes),
        )
        if resolver is not None:
            library.note_served(rid, resolver.served_record(p, text, valid))
            result = replace(result, library_versions=p.library_versions, offered=p.offered)
        emit.request_finished(
            rid, "success", prompt_tokens=counts.prompt_tokens,
            output_tokens=counts.completion_tokens, cached_tokens=cached_tokens,
            ttft_s=result.timings.first_token_ms / 1000.0, e2e_s=time.perf_counter() - t0,
            tpot_s=(t_last - t_first) / (len(decoder.ids) - 1) if len(decoder.ids) > 1 else None,
            tenant=req.tenant, target_path=req.target_path,
        )
        yield result

    def _encode_prompt(self, text: str) -> list[int]:
        limit = self.__dict__.get("_prompt_char_limit")
        if limit is None:  # the vocabulary scan runs once per pipeline
            limit = self._prompt_char_limit = max_prompt_chars(self.tokenizer,
                                                               self.parts.max_model_len)
        return encode_prompt(self.tokenizer, text, limit)

    def _from_cache(
        self, req: GenerateRequest, rid: str, text: str, outcome: CacheOutcome, policy: Any,
        tm: TimingsBuilder,
    ) -> ServingResult | None:
        doc, diags = check_document(text, policy)
        if doc is None or any(d.is_error for d in diags):
            # A stale entry (e.g. a tool was revoked since): generate instead.
            return None
        tm.mark("cache_ms")
        return ServingResult(
            request_id=rid, target_path=req.target_path, text=text,
            blocks=document_blocks(doc), document=doc,
            diagnostics=shown(diags, req.flags.diagnostics), valid=True, cache=outcome,
            counts=TokenCounts(node_count=doc.node_count), timings=tm.build(),
            finish_reason="cache", dag_id=req.dag_id or "", branch_id=req.branch_id or "",
        )


_REFUSALS = frozenset({
    ErrorCode.INVALID_REQUEST, ErrorCode.NAMESPACE_VIOLATION, ErrorCode.BUDGET_EXCEEDED,
    ErrorCode.OVERLOADED, ErrorCode.UNAVAILABLE, ErrorCode.CONTEXT_TOO_LONG,
    ErrorCode.SIGNATURE_REQUIRED, ErrorCode.TOOL_NOT_GRANTED, ErrorCode.UNAUTHENTICATED,
})


def _engine_counters(stats: dict[str, Any]) -> dict[str, float]:
    return {f"engine_{k}": float(v) for k, v in stats.items() if isinstance(v, bool | int | float)}
