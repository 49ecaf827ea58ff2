"""One engine step: schedule, forward (with masks filled alongside), sample, advance."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch

from agentic_llm.engine.constraint_state import ConstraintState
from agentic_llm.engine.diagnostics import StepDiagnostics, entropy_and_logprobs
from agentic_llm.engine.forward import AttentionCapture, ForwardBatch, build_forward_batch
from agentic_llm.engine.hooks import HookContext
from agentic_llm.engine.masking import FillFuture
from agentic_llm.engine.native import MaskedRowMax
from agentic_llm.engine.outputs import FinishReason
from agentic_llm.engine.postprocess import accept_sampled, jump_forward, stop_reason
from agentic_llm.engine.prefill_share import plan_shared_prefill
from agentic_llm.engine.sampling import MaskedMax, masked_logits, row_max, sample_row
from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.scheduler import Request, ScheduledRow

if TYPE_CHECKING:
    from agentic_llm.engine.llm_engine import LLMEngine

__all__ = ["run_step"]


def run_step(engine: LLMEngine) -> list[Request]:
    """Advance every scheduled request by one step; return the requests that changed."""
    sched = engine.scheduler.schedule()
    changed: list[Request] = list(sched.failed)
    rows = sched.rows
    if not rows:
        stuck = engine.scheduler.waiting if not engine.scheduler.running and not sched.preempted else []
        if stuck:
            # nothing runs and nothing can be admitted: pages are held by requests
            # that cannot move; end the first waiting one rather than spin forever
            req = stuck[0]
            engine.scheduler.finish(req, FinishReason.ERROR, AgenticError(
                ErrorCode.OVERLOADED,
                f"no KV blocks can be freed for this request ({engine.pool.num_free} of "
                f"{engine.pool.num_blocks} free); retry later or enlarge the pool",
            ))
            changed.append(req)
        return changed
    share = plan_shared_prefill(
        rows, engine.pool.block_size, engine.config.share_prefill_prefixes and not engine.model.hooks
    )
    # a row reading pages another row writes in this step has no prior K/V to keep
    seq_ids = [r.request.seq_no if c[1] == r.start and not r.reads_pending else -1
               for r, c in zip(rows, share.chunks, strict=True)]
    batch = build_forward_batch(share.chunks, engine.pool.block_size, engine.device, seq_ids)
    sample_idx = [i for i, r in enumerate(rows) if r.samples]
    fill = _submit_fill(engine, rows, sample_idx)
    if fill is not None:
        batch.on_gil_free = engine.mask_filler.start
    if engine.model.hooks:
        batch.hook_ctx = _hook_context(batch, rows)
    batch.capture = _capture_request(rows, sample_idx)
    try:
        logits = engine.model(batch, engine.pool, engine.backend)
    except Exception as exc:  # a failing forward (a plugin hook, device OOM) ends this batch only
        if fill is not None:
            engine.mask_filler.finish()  # finishing the rows below waits for it (ConstraintState)
        invalidate = getattr(engine.backend, "invalidate", None)
        if callable(invalidate):  # state it kept across steps may be half written
            invalidate()
        err = AgenticError(ErrorCode.INTERNAL, f"forward step failed: {type(exc).__name__}: {exc}")
        for r in rows:
            engine.scheduler.finish(r.request, FinishReason.ERROR, err)
            changed.append(r.request)
        return changed
    if fill is not None:
        engine.mask_filler.finish()  # a fill the forward did not start goes now
    engine.pool.copy_blocks(share.src_blocks, share.dst_blocks)
    engine.num_shared_prefill_tokens += share.shared_tokens
    for r in rows:
        r.request.num_computed_tokens = r.start + r.num_tokens
    if sample_idx:
        _sample_and_advance(engine, rows, sample_idx, logits, fill, batch, changed)
    return changed


class _Fill(NamedTuple):
    """The step's mask fill: its future, the constrained rows' positions among the
    sampling rows (mask row ``i`` applies to sampling row ``pos[i]``), and whether
    every one is greedy and picked from the packed mask in C (no bias made)."""

    future: FillFuture
    pos: list[int]
    pick_in_c: bool


def _submit_fill(engine: LLMEngine, rows: list[ScheduledRow], sample_idx: list[int]) -> _Fill | None:
    """Lend the matchers of the sampling rows that need a mask to one fill and submit
    it (deferred: the forward says where it runs, see ``masking``)."""
    states: list[ConstraintState] = []
    pos: list[int] = []
    greedy = True
    for s, i in enumerate(sample_idx):
        req = rows[i].request
        c = req.constraint
        # not terminated: a parked token (the fill takes it and reports a completed
        # document, ``FilledMask.done``) or a matcher that is not complete
        if c is not None and not c.is_terminated():
            states.append(c)
            pos.append(s)
            greedy = greedy and req.params.greedy
    if not states:
        return None
    future = FillFuture()
    pending = [c.lend(future) for c in states]  # the fill holds the matchers until it completes
    pick_in_c = engine.masked_row_max is not None and greedy
    try:
        engine.mask_filler.submit([c.matcher for c in states], pending, deferred=True, bias=not pick_in_c,
                                  future=future)
    except BaseException as exc:  # nobody may wait on a fill that never runs
        future.set_exception(exc)
        raise
    return _Fill(future, pos, pick_in_c)


def _hook_context(batch: ForwardBatch, rows: list[ScheduledRow]) -> HookContext:
    last = torch.zeros_like(batch.token_rows, dtype=torch.bool)
    last[batch.last_token_idx] = True
    reqs = [r.request for r in rows]
    return HookContext(
        token_rows=batch.token_rows,
        num_rows=len(rows),
        is_last_token=last,
        prev_entropy=torch.tensor([q.last_entropy for q in reqs], dtype=torch.float32, device=batch.token_rows.device),
        namespaces=[q.hook_info.namespaces for q in reqs],
        tenants=[q.hook_info.tenant for q in reqs],
        request_ids=[q.request_id for q in reqs],
    )


def _capture_request(rows: list[ScheduledRow], sample_idx: list[int]) -> AttentionCapture | None:
    layers: set[int] = set()
    cap_rows: list[int] = []
    window = 1
    for i in sample_idx:
        d = rows[i].request.diagnostics
        if d is not None and d.attention_layers:
            layers.update(d.attention_layers)
            cap_rows.append(i)
            window = max(window, d.attention_window)
    if not cap_rows:
        return None
    return AttentionCapture(frozenset(layers), cap_rows, window)


class _Masked(NamedTuple):
    """The step's logits after the constraint masks: the masked ``[S, V]`` logits (the
    raw ones where the C picker read the mask itself), each row's max and argmax,
    whether every max is known finite, and per sampling row of the fill: its error
    and whether its matcher completed the document on its parked token."""

    logits: torch.Tensor
    row_max: np.ndarray | None
    best: list[int]
    all_finite: bool
    errors: dict[int, Exception]
    done: frozenset[int]


def _apply_fill(engine: LLMEngine, raw: torch.Tensor, fill: _Fill | None) -> _Masked:
    """Wait for the step's fill and apply its masks, by the cheapest path that fits:
    greedy rows picked from the packed mask in C, the fill's additive bias through
    ``MaskedMax``, or ``masked_logits``."""
    if fill is None:
        return _Masked(raw, None, [], False, {}, frozenset())
    pos = fill.pos
    try:
        filled = fill.future.result()
    except Exception as exc:  # the filler itself failed: every constrained row
        return _Masked(raw, None, [], False, dict.fromkeys(pos, exc), frozenset())
    errors = {pos[i]: e for i, e in filled.errors.items()}
    done = frozenset(pos[i] for i in filled.done)
    picker = engine.masked_row_max
    if fill.pick_in_c and picker is not None and MaskedRowMax.applies(raw):
        m_max, best, all_finite = picker(raw, filled.mask, pos)
        return _Masked(raw, m_max, best, all_finite, errors, done)
    if MaskedMax.applies(raw, filled.bias):
        masked, m_max, best = engine.masked_max(raw, filled.bias, pos)  # type: ignore[arg-type]
        return _Masked(masked, m_max, best, False, errors, done)
    return _Masked(masked_logits(raw, filled.mask, pos, filled.bias), None, [], False, errors, done)


def _sample_and_advance(
    engine: LLMEngine,
    rows: list[ScheduledRow],
    sample_idx: list[int],
    logits: torch.Tensor,
    fill: _Fill | None,
    batch: ForwardBatch,
    changed: list[Request],
) -> None:
    raw = logits if len(sample_idx) == len(rows) else logits[sample_idx]  # [S, V] float32
    reqs = [rows[i].request for i in sample_idx]
    need_stats = bool(engine.model.hooks) or any(q.diagnostics is not None for q in reqs)
    ent, logp = entropy_and_logprobs(raw) if need_stats else (None, None)
    masked, m_max, best, all_finite, row_errors, done = _apply_fill(engine, raw, fill)
    constrained_set = set(fill.pos) if fill is not None else set()
    # One pass over the masked logits: the mask adds 0 or -inf, so a NaN or +inf
    # anywhere in a row leaves the row's max NaN or +inf, and a finite max means the
    # row is sound and its mask allows something; its argmax is the greedy pick. Only
    # when some max is not finite are the raw logits looked at, to tell a broken row
    # (NaN, inf) from a mask that allows nothing (-inf).
    if m_max is None:
        m_max, best = row_max(masked)
    if all_finite or np.isfinite(m_max).all():
        finite = any_allowed = [True] * len(reqs)
    else:
        finite = np.isfinite(row_max(raw)[0]).tolist()
        any_allowed = (m_max > float("-inf")).tolist()
    sched = engine.scheduler
    eos, max_len = engine.eos_token_ids, engine.max_model_len
    defer = engine.mask_filler.defers_accept
    for s, req in enumerate(reqs):
        changed.append(req)
        if req.constraint is None and ent is None and finite[s]:
            # the common case, inlined: no constraint, no statistics
            p = req.params
            tok = best[s] if p.greedy else sample_row(raw[s], p, req.generator)
            req.token_ids.append(tok)
            met = req.metrics
            met.num_decode_steps += 1
            if met.first_token_time is None:
                met.first_token_time = time.monotonic()
            reason = stop_reason(req, eos, max_len)
            if reason is not None:
                sched.finish(req, reason)
            continue
        if not finite[s]:
            sched.finish(req, FinishReason.ERROR, AgenticError(
                ErrorCode.NUMERIC, "the model produced NaN or infinite logits; the checkpoint or a hook is broken"))
            continue
        if s in row_errors:
            fail = row_errors[s]
            sched.finish(req, FinishReason.ERROR, fail if isinstance(fail, AgenticError) else AgenticError(
                ErrorCode.GRAMMAR, f"the constraint failed to give a token mask: {fail}"))
            continue
        if s in done:  # the matcher completed the document on the (parked) token before this one
            sched.finish(req, FinishReason.STOP)
            continue
        if not any_allowed[s]:
            sched.finish(req, FinishReason.ERROR, AgenticError(
                ErrorCode.GRAMMAR, "the constraint allows no token at this point"))
            continue
        tok = best[s] if req.params.greedy else sample_row(masked[s], req.params, req.generator)
        if ent is not None and logp is not None:
            req.last_entropy = float(ent[s])
            if req.diagnostics is not None:
                req.step_diagnostics.append(_diagnose(req, sample_idx[s], s, tok, ent, logp, batch))
        if s in constrained_set:  # the fill gave the matcher back, not terminated
            # with worker fills, the next fill takes the token, beside the next forward
            err = accept_sampled(req, tok, live=True, park=defer and not req.params.jump_forward)
        else:
            err = accept_sampled(req, tok)
        if err is not None:
            sched.finish(req, FinishReason.ERROR, err)
            continue
        reason = stop_reason(req, eos, max_len)
        if reason is None and jump_forward(req, engine.tokenizer, max_len):
            reason = stop_reason(req, eos, max_len)
        if reason is not None:
            sched.finish(req, reason)


def _diagnose(
    req: Request, row: int, s: int, tok: int, ent: torch.Tensor, logp: torch.Tensor, batch: ForwardBatch
) -> StepDiagnostics:
    cfg = req.diagnostics
    assert cfg is not None
    d = StepDiagnostics(position=req.num_tokens, token_id=tok, logprob=float(logp[s, tok]), entropy=float(ent[s]))
    if cfg.top_k:
        vals, ids = torch.topk(logp[s], min(cfg.top_k, logp.shape[-1]))
        d.top_alternatives = [(int(i), float(v)) for i, v in zip(ids.tolist(), vals.tolist(), strict=True)]
    cap = batch.capture
    if cap is not None and cfg.attention_layers:
        ctx = int(batch.context_lens[row])
        for layer in cfg.attention_layers:
            w = cap.weights.get((layer, row))
            if w is not None:
                w = w[:, -cfg.attention_window :]
                d.attention[layer] = w.tolist()
                d.attention_start = ctx - w.shape[1]
    if not math.isfinite(d.logprob):
        d.logprob = float("-inf")
    return d
