"""Continuous-batching scheduler: token budget, KV admission, preemption by recompute.

Each step the scheduler first gives running requests their next chunk (a decode
token, jump-forward tokens, or the rest of a chunked prefill), allocating KV blocks
as they grow; when blocks run out it evicts from the prefix cache, then preempts the
policy's victim (its pages are freed and it is recomputed later). If nothing was
preempted it admits waiting requests, prefix-cache hits first skipped, until the
sequence limit, the token budget or memory stops it.

A policy may also hand a request pages it can share before it is admitted (its
optional ``fork_prefix(req, rows)``: the branch-aware policy forks a sibling's
prefix pages). Those pages may be written by this very step, by a sibling admitted
earlier in it; the row is then marked ``reads_pending`` so the forward does not
expect their K/V in the pool before it has stored them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from agentic_llm import registry
from agentic_llm.engine.kv.base import BlockPool, OutOfBlocks
from agentic_llm.engine.outputs import FinishReason
from agentic_llm.engine.prefix import PrefixCache
from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.scheduler.policy import POLICY_KIND, SchedulingPolicy
from agentic_llm.scheduler.request import Request, RequestStatus

__all__ = ["Scheduler", "ScheduledRow", "SchedulerOutput"]

registry.declare(POLICY_KIND, "branch_aware", "agentic_llm.scheduler.branch_aware")


@dataclass
class ScheduledRow:
    """One request's share of a step: ``num_tokens`` tokens from position ``start``."""

    request: Request
    start: int
    num_tokens: int
    #: the row's context includes pages another row of this step writes (a sibling's
    #: prefix forked in the same step): their K/V is in the pool only once the
    #: forward has stored it, so nothing may read them ahead of the forward
    reads_pending: bool = False

    @property
    def samples(self) -> bool:
        """True when this chunk reaches the end of the request's tokens (logits are used)."""
        return self.start + self.num_tokens == self.request.num_tokens


@dataclass
class SchedulerOutput:
    rows: list[ScheduledRow] = field(default_factory=list)
    preempted: list[Request] = field(default_factory=list)
    #: requests that can never fit the pool; finished with an error
    failed: list[Request] = field(default_factory=list)


class Scheduler:
    """Decides what each engine step computes.

    Args:
        pool: the KV block pool.
        policy: ordering and victim choice.
        max_num_seqs: most requests running at once.
        max_num_batched_tokens: most tokens computed per step (prefill is chunked).
        prefix_cache: optional prefix index over the pool's blocks.
    """

    def __init__(
        self,
        pool: BlockPool,
        policy: SchedulingPolicy,
        *,
        max_num_seqs: int = 64,
        max_num_batched_tokens: int = 1024,
        prefix_cache: PrefixCache | None = None,
    ) -> None:
        if max_num_seqs < 1 or max_num_batched_tokens < 1:
            raise ValueError("max_num_seqs and max_num_batched_tokens must be >= 1")
        self.pool = pool
        self.policy = policy
        self.max_num_seqs = max_num_seqs
        self.max_num_batched_tokens = max_num_batched_tokens
        self.prefix_cache = prefix_cache
        self.waiting: list[Request] = []
        self.running: list[Request] = []
        self.num_preemptions = 0
        attach = getattr(policy, "attach", None)
        if callable(attach):  # policies that read the pool or queues (branch_aware)
            attach(self)
        fork = getattr(policy, "fork_prefix", None)
        self._fork_prefix = fork if callable(fork) else None

    # -- queue ------------------------------------------------------------------
    def add(self, req: Request) -> None:
        req.status = RequestStatus.WAITING
        self.waiting.append(req)

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def finish(self, req: Request, reason: FinishReason, error: AgenticError | None = None) -> None:
        """End ``req``: leave the queues, index its KV (unless it failed), free its pages,
        release its constraint (``ConstraintState.release``)."""
        if req.constraint is not None:
            req.constraint.release()
        if req in self.running:
            self.running.remove(req)
        if req in self.waiting:
            self.waiting.remove(req)
        self._release(req, cache=reason is not FinishReason.ERROR)
        req.status = RequestStatus.FINISHED
        req.finish_reason = reason
        req.error = error

    # -- one step -----------------------------------------------------------------
    def schedule(self) -> SchedulerOutput:
        out = SchedulerOutput()
        budget = self.max_num_batched_tokens
        scheduled: set[int] = set()
        for req in self.policy.order_running(self.running):
            if req not in self.running:  # preempted earlier in this loop
                continue
            if budget <= 0:
                break
            n = min(req.num_uncomputed_tokens, budget)
            start = req.num_computed_tokens
            while not self._ensure_blocks(req, n):
                others = [r for r in self.running if r is not req and id(r) not in scheduled]
                victim = self.policy.choose_victim(others) if others else req
                if victim is req and self._hopeless(req):
                    out.failed.append(req)
                    self.finish(req, FinishReason.ERROR, self._too_big(req))
                    break
                self._preempt(victim)
                out.preempted.append(victim)
                if victim is req:
                    break
            else:
                out.rows.append(ScheduledRow(req, start, n))
                scheduled.add(id(req))
                budget -= n
        if out.preempted:
            return out
        for req in self.policy.order_waiting(self.waiting, self.running):
            if len(self.running) >= self.max_num_seqs or budget <= 0:
                break
            fresh = not req.block_table and not req.num_computed_tokens
            pending = bool(self._fork_prefix(req, out.rows)) if fresh and self._fork_prefix else False
            self._match_prefix(req)
            n = min(req.num_uncomputed_tokens, budget)
            start = req.num_computed_tokens
            if not self._ensure_blocks(req, n):
                if fresh:  # give back every page this attempt took (forked or matched)
                    self._release(req, cache=False)
                else:
                    self._unmatch(req)
                if not self.running and self._hopeless(req):
                    out.failed.append(req)
                    self.finish(req, FinishReason.ERROR, self._too_big(req))
                    continue
                break
            self.waiting.remove(req)
            self.running.append(req)
            req.status = RequestStatus.RUNNING
            out.rows.append(ScheduledRow(req, start, n, reads_pending=pending))
            budget -= n
        return out

    # -- memory -------------------------------------------------------------------
    def _hopeless(self, req: Request) -> bool:
        """True when ``req`` needs more blocks than the whole pool has."""
        return -(-(req.num_tokens) // self.pool.block_size) > self.pool.num_blocks

    def _too_big(self, req: Request) -> AgenticError:
        bs = self.pool.block_size
        return AgenticError(
            ErrorCode.CONTEXT_TOO_LONG,
            f"request needs {-(-req.num_tokens // bs)} KV blocks of {bs} tokens; the pool has "
            f"{self.pool.num_blocks}; raise num_blocks or shorten the prompt",
            num_tokens=req.num_tokens,
        )

    def _ensure_blocks(self, req: Request, n: int) -> bool:
        """Make ``req``'s pages cover ``n`` more tokens, private where written. False if no room."""
        bs = self.pool.block_size
        start = req.num_computed_tokens
        end = start + n
        try:
            for idx in range(start // bs, min(len(req.block_table), -(-end // bs))):
                b = req.block_table[idx]
                if self.pool.ref_count(b) > 1:
                    req.block_table[idx] = self._with_evict(lambda b=b: [self.pool.copy_on_write(b)])[0]
            need = -(-end // bs) - len(req.block_table)
            if need > 0:
                req.block_table.extend(self._with_evict(lambda: self.pool.allocate(need)))
        except OutOfBlocks:
            return False
        return True

    def _with_evict(self, op):  # type: ignore[no-untyped-def]
        try:
            return op()
        except OutOfBlocks as exc:
            if self.prefix_cache is None or self.prefix_cache.evict(exc.wanted - exc.free) <= 0:
                raise
            return op()

    def _match_prefix(self, req: Request) -> None:
        if self.prefix_cache is None or req.block_table or req.num_computed_tokens:
            return
        m = self.prefix_cache.match(req.token_ids[:-1])
        req.block_table = list(m.block_ids)
        req.num_computed_tokens = m.num_tokens
        req.prefix_handle = m.handle
        # a request resumed after preemption matches its output too: count prompt tokens only
        req.metrics.num_cached_tokens = max(req.metrics.num_cached_tokens,
                                            min(m.num_tokens, req.num_prompt_tokens))

    def _unmatch(self, req: Request) -> None:
        """Give back what an admission attempt took (the request keeps waiting)."""
        if req.prefix_handle is None:
            return
        self._release(req, cache=False)

    def _preempt(self, req: Request) -> None:
        self.running.remove(req)
        self._release(req, cache=True)
        req.status = RequestStatus.WAITING
        req.metrics.num_preemptions += 1
        self.num_preemptions += 1
        self.waiting.append(req)

    def _release(self, req: Request, *, cache: bool) -> None:
        bs = self.pool.block_size
        if self.prefix_cache is not None and cache and req.block_table:
            full = min(req.num_computed_tokens // bs, len(req.block_table))
            if full:
                self.prefix_cache.insert(req.token_ids[: full * bs], req.block_table[:full])
        if self.prefix_cache is not None and req.prefix_handle is not None:
            self.prefix_cache.release(req.prefix_handle)
        req.prefix_handle = None
        self._free(req.block_table)
        req.block_table = []
        req.num_computed_tokens = 0

    def _free(self, blocks: Iterable[int]) -> None:
        blocks = list(blocks)
        if blocks:
            self.pool.free(blocks)
