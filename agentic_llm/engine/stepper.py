"""One engine step: schedule, forward (with masks filled alongside), sample, advance."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import numpy as np
import torch

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
    seq_ids = [r.request.seq_no if c[1] == r.start else -1 for r, c in zip(rows, share.chunks, strict=True)]
    batch = build_forward_batch(share.chunks, engine.pool.block_size, engine.device, seq_ids)
    sample_idx = [i for i, r in enumerate(rows) if r.samples]
    # a matcher holding a pending token is live: the token came from its mask, and
    # the fill that takes it reports a completed document (``FilledMask.done``)
    constrained = [
        i for i in sample_idx
        if (m := rows[i].request.matcher) is not None and (rows[i].request.pending_token is not None
                                                           or not m.is_terminated())
    ]
    future: FillFuture | None = None
    pick_in_c = False
    if constrained:
        creqs = [rows[i].request for i in constrained]
        pending = [q.pending_token for q in creqs]
        for q in creqs:
            q.pending_token = None  # the fill takes it now
        # every row greedy: picked from the packed mask in C (``native``), no bias made
        pick_in_c = engine.masked_row_max is not None and all(q.params.greedy for q in creqs)
        future = engine.mask_filler.submit(
            [q.matcher for q in creqs], pending, deferred=True, bias=not pick_in_c)  # type: ignore[misc]
        batch.on_gil_free = engine.mask_filler.start
    if engine.model.hooks:
        batch.hook_ctx = _hook_context(batch, rows)
    batch.capture = _capture_request(rows, sample_idx)
    try:
        logits = engine.model(batch, engine.pool, engine.backend)
    except Exception as exc:  # a failing forward (a plugin hook, device OOM) ends this batch only
        if future is not None:
            engine.mask_filler.finish()
            _wait_quietly(future)
        invalidate = getattr(engine.backend, "invalidate", None)
        if callable(invalidate):  # state it kept across steps may be half written
            invalidate()
        err = AgenticError(ErrorCode.INTERNAL, f"forward step failed: {type(exc).__name__}: {exc}")
        for r in rows:
            engine.scheduler.finish(r.request, FinishReason.ERROR, err)
            changed.append(r.request)
        return changed
    if future is not None:
        engine.mask_filler.finish()  # a fill the forward did not start runs now
    engine.pool.copy_blocks(share.src_blocks, share.dst_blocks)
    engine.num_shared_prefill_tokens += share.shared_tokens
    for r in rows:
        r.request.num_computed_tokens = r.start + r.num_tokens
    if not sample_idx:
        if future is not None:
            _wait_quietly(future)
        return changed
    _sample_and_advance(engine, rows, sample_idx, constrained, logits, future, pick_in_c, batch, changed)
    return changed


def _wait_quietly(future: FillFuture) -> None:
    try:
        future.result()
    except Exception:  # the matcher error is reported when the row samples next time
        return


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


def _sample_and_advance(
    engine: LLMEngine,
    rows: list[ScheduledRow],
    sample_idx: list[int],
    constrained: list[int],
    logits: torch.Tensor,
    future: FillFuture | None,
    pick_in_c: bool,
    batch: ForwardBatch,
    changed: list[Request],
) -> None:
    raw = logits if len(sample_idx) == len(rows) else logits[sample_idx]  # [S, V] float32
    reqs = [rows[i].request for i in sample_idx]
    need_stats = bool(engine.model.hooks) or any(q.diagnostics is not None for q in reqs)
    ent, logp = entropy_and_logprobs(raw) if need_stats else (None, None)
    masked = raw
    m_max: np.ndarray | None = None
    best: list[int] = []
    all_finite = False  # known without a look at m_max (the C picker counts them)
    mask_error: Exception | None = None
    row_errors: dict[int, Exception] = {}
    done: set[int] = set()
    constrained_set: set[int] = set()
    if future is not None:
        if len(sample_idx) == len(rows):  # every row samples: positions are row indices
            pos = constrained
        else:
            where = {row: s for s, row in enumerate(sample_idx)}
            pos = [where[i] for i in constrained]
        constrained_set = set(pos)
        try:
            filled = future.result()
        except Exception as exc:  # the filler itself failed: every constrained row
            mask_error = exc
        else:
            picker = engine.masked_row_max
            if pick_in_c and picker is not None and MaskedRowMax.applies(raw):
                m_max, best, all_finite = picker(raw, filled.mask, pos)
            elif MaskedMax.applies(raw, filled.bias):
                masked, m_max, best = engine.masked_max(raw, filled.bias, pos)  # type: ignore[arg-type]
            else:
                masked = masked_logits(raw, filled.mask, pos, filled.bias)
            row_errors = {pos[i]: e for i, e in filled.errors.items()}
            done = {pos[i] for i in filled.done}
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
        if req.matcher is None and ent is None and finite[s]:
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
        if s in constrained_set and (mask_error is not None or s in row_errors):
            err = row_errors.get(s, mask_error)
            sched.finish(req, FinishReason.ERROR, err if isinstance(err, AgenticError) else AgenticError(
                ErrorCode.GRAMMAR, f"the constraint failed to give a token mask: {err}"))
            continue
        if s in done:  # the matcher completed the document on the token before this one
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
        if defer and s in constrained_set and not req.params.jump_forward:
            req.pending_token = tok  # the next fill takes it, beside the next forward
            err = accept_sampled(req, tok, False)
        else:
            err = accept_sampled(req, tok, True if s in constrained_set else None)
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
