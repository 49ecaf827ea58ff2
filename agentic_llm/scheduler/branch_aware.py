"""Branch-aware scheduling: sibling requests of one DAG fork are served as a group.

When the runtime reaches a ``fork`` it sends one request per branch, all tagged with
the same ``dag_id``; the prompts share a long prefix and the runtime waits for the
slowest branch. This policy:

- orders waiting work by *units*: a group (the waiting siblings of one ``dag_id``) or
  a single request. Units are ranked by effective priority (priority plus an aging
  bonus), then earliest deadline, then arrival, so a stream of groups never starves
  an independent request and vice versa;
- admits a group all-or-nothing: the whole group's KV demand (shared prefix counted
  once) must fit the free pages (plus evictable prefix-cache pages), otherwise
  admission stops at that group and nothing behind it jumps the queue;
- prefills the common prefix once: only the first member (the leader) is admitted
  until it has computed the prefix, then every sibling starts from the leader's
  pages, shared by reference (the pool copies a page on first write);
- runs group members next to each other, so they get the step's token budget
  together and finish close together;
- preempts requests outside the oldest running group first (lowest priority, then
  newest), so the group closest to completion keeps its pages.

The policy registers as ``"branch_aware"`` (``EngineConfig(scheduling_policy=...)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agentic_llm import registry
from agentic_llm.scheduler.policy import POLICY_KIND
from agentic_llm.scheduler.request import Request

if TYPE_CHECKING:
    from agentic_llm.scheduler.scheduler import Scheduler

__all__ = ["BranchAwarePolicy", "Unit", "common_prefix_len"]


def common_prefix_len(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the longest prefix all of ``seqs`` share (0 for no sequences)."""
    if not seqs:
        return 0
    first = seqs[0]
    n = min(len(s) for s in seqs)
    for s in seqs[1:]:
        i = 0
        while i < n and s[i] == first[i]:
            i += 1
        n = i
    return n


@dataclass
class Unit:
    """A group of waiting siblings (or one request) that is admitted as a whole."""

    members: list[Request]
    key: tuple[float, float, int] = (0.0, math.inf, 0)

    @property
    def is_group(self) -> bool:
        return len(self.members) > 1


@dataclass
class _Clock:
    """Scheduler steps seen, and the step each waiting request was first seen."""

    step: int = 0
    first_seen: dict[int, int] = field(default_factory=dict)


@registry.register(POLICY_KIND, "branch_aware")
class BranchAwarePolicy:
    """Groups siblings by ``dag_id``; see the module docstring.

    Args:
        aging_steps: a waiting request gains one priority level per this many
            scheduler steps, which bounds how long anything waits behind
            higher-priority work.
        share_prefix: fork the leader's prefix pages to its siblings.
    """

    def __init__(self, aging_steps: int = 32, share_prefix: bool = True) -> None:
        if aging_steps < 1:
            raise ValueError(f"aging_steps must be >= 1, got {aging_steps}")
        self.aging_steps = aging_steps
        self.share_prefix = share_prefix
        self.scheduler: Scheduler | None = None
        self._clock = _Clock()
        #: prompt tokens siblings did not prefill because they forked the leader's pages
        self.shared_tokens = 0

    def attach(self, scheduler: Scheduler) -> None:
        """Give the policy read access to the pool and queues (called by the scheduler)."""
        self.scheduler = scheduler

    # -- priorities -------------------------------------------------------------------
    def effective_priority(self, req: Request) -> float:
        """``priority`` plus one level per ``aging_steps`` steps spent waiting."""
        seen = self._clock.first_seen.get(req.seq_no, self._clock.step)
        return req.priority + (self._clock.step - seen) // self.aging_steps

    def _key(self, reqs: Sequence[Request]) -> tuple[float, float, int]:
        prio = max(self.effective_priority(r) for r in reqs)
        deadline = min((r.deadline for r in reqs if r.deadline is not None), default=math.inf)
        return (-prio, deadline, min(r.seq_no for r in reqs))

    # -- SchedulingPolicy ---------------------------------------------------------------
    def order_running(self, running: Sequence[Request]) -> list[Request]:
        # called once per scheduler step: it is the policy's clock
        self._clock.step += 1
        groups: dict[str, int] = {}
        for r in running:
            if r.dag_id is not None:
                groups[r.dag_id] = min(groups.get(r.dag_id, r.seq_no), r.seq_no)

        def key(r: Request) -> tuple[float, int, int]:
            anchor = groups.get(r.dag_id, r.seq_no) if r.dag_id is not None else r.seq_no
            return (-r.priority, anchor, r.seq_no)

        return sorted(running, key=key)

    def order_waiting(self, waiting: Sequence[Request], running: Sequence[Request]) -> list[Request]:
        clock = self._clock
        live = {r.seq_no for r in waiting}
        for seq in [s for s in clock.first_seen if s not in live]:
            del clock.first_seen[seq]
        for r in waiting:
            clock.first_seen.setdefault(r.seq_no, clock.step)
        units = self.units(waiting)
        ordered: list[Request] = []
        budget = self._free_blocks()
        for unit in units:
            need = self._blocks_needed(unit.members)
            if unit.is_group and need > budget and (running or ordered):
                # all-or-nothing: the group waits for room and nothing behind it passes
                break
            budget -= need
            members = self._admissible(unit, running)
            ordered.extend(members)
            # a group whose leader goes first keeps its place: its siblings lead the
            # order at the next step, once the leader's pages exist
        return ordered

    def choose_victim(self, candidates: Sequence[Request]) -> Request:
        oldest = self._oldest_group(candidates)

        def key(r: Request) -> tuple[bool, float, int]:
            outside = oldest is None or r.dag_id != oldest
            return (outside, -r.priority, r.seq_no)

        return max(candidates, key=key)

    # -- grouping -----------------------------------------------------------------------
    def units(self, waiting: Sequence[Request]) -> list[Unit]:
        """Waiting requests grouped by ``dag_id`` and ranked (best first)."""
        by_dag: dict[str, list[Request]] = {}
        units: list[Unit] = []
        for r in sorted(waiting, key=lambda r: r.seq_no):
            if r.dag_id is None:
                units.append(Unit([r]))
            elif r.dag_id in by_dag:
                by_dag[r.dag_id].append(r)
            else:
                by_dag[r.dag_id] = [r]
                units.append(Unit(by_dag[r.dag_id]))
        for u in units:
            u.key = self._key(u.members)
        return sorted(units, key=lambda u: u.key)

    def _oldest_group(self, reqs: Sequence[Request]) -> str | None:
        sched = self.scheduler
        pool = list(sched.running) if sched is not None else list(reqs)
        tagged = [r for r in pool if r.dag_id is not None]
        return min(tagged, key=lambda r: r.seq_no).dag_id if tagged else None

    def _admissible(self, unit: Unit, running: Sequence[Request]) -> list[Request]:
        """The members to admit now: all of them, or only the leader until it has the prefix."""
        if not self.share_prefix or not unit.is_group or self.scheduler is None:
            return list(unit.members)
        bs = self.scheduler.pool.block_size
        fresh = [r for r in unit.members if not r.block_table and not r.num_computed_tokens]
        if not fresh:
            return list(unit.members)
        donor = self._donor(unit.members[0], running)
        if donor is not None:
            want = min(common_prefix_len([donor.token_ids, fresh[0].token_ids]), donor.num_prompt_tokens)
            if donor.num_computed_tokens < want // bs * bs:
                # the donor is still prefilling the shared part: wait for its pages
                return [r for r in unit.members if r not in fresh]
            for r in fresh:
                self._fork_prefix(r, donor)
            return list(unit.members)
        shared = common_prefix_len([r.token_ids for r in unit.members])
        if shared < bs or len(fresh) < 2:
            return list(unit.members)
        # admit the leader alone; siblings fork its pages at the next step
        return [unit.members[0]]

    def _donor(self, req: Request, running: Sequence[Request]) -> Request | None:
        """A running sibling whose computed pages cover the most of ``req``'s prefix."""
        if self.scheduler is None or req.dag_id is None:
            return None
        bs = self.scheduler.pool.block_size
        best, best_n = None, 0
        for r in running:
            if r.dag_id != req.dag_id or r is req:
                continue
            n = min(common_prefix_len([r.token_ids, req.token_ids]), req.num_tokens - 1) // bs
            if n > best_n:
                best, best_n = r, n
        return best

    def _fork_prefix(self, req: Request, donor: Request) -> None:
        """Start ``req`` from ``donor``'s full prefix pages, shared by reference."""
        assert self.scheduler is not None
        if req.block_table or req.num_computed_tokens:
            return
        bs = self.scheduler.pool.block_size
        n = common_prefix_len([donor.token_ids, req.token_ids])
        k = min(n, donor.num_computed_tokens, req.num_tokens - 1) // bs
        if k <= 0:
            return
        blocks = donor.block_table[:k]
        self.scheduler.pool.incref(blocks)
        req.block_table = list(blocks)
        req.num_computed_tokens = k * bs
        req.metrics.num_cached_tokens = max(req.metrics.num_cached_tokens,
                                            min(k * bs, req.num_prompt_tokens))
        self.shared_tokens += k * bs

    # -- memory ---------------------------------------------------------------------------
    def _free_blocks(self) -> int:
        """Free pages plus pages only the prefix cache holds (it can evict them)."""
        sched = self.scheduler
        if sched is None:
            return 1 << 62
        free = sched.pool.num_free
        cached = getattr(sched.prefix_cache, "cached_block_ids", None)
        if callable(cached):
            free += sum(1 for b in cached() if sched.pool.ref_count(b) == 1)
        return free

    def _blocks_needed(self, members: Sequence[Request]) -> int:
        """New pages ``members`` need to hold their tokens plus one more each.

        Full pages of the prefix the members share are counted once: the leader
        prefills them and the siblings fork them.
        """
        sched = self.scheduler
        if sched is None or not members:
            return 0
        bs = sched.pool.block_size
        shared = 0
        if self.share_prefix and len(members) > 1:
            shared = common_prefix_len([r.token_ids for r in members]) // bs
        total = 0
        for i, r in enumerate(members):
            pages = -(-(r.num_tokens + 1) // bs) - len(r.block_table)
            if i > 0 and not r.block_table:
                pages -= shared
            total += max(0, pages)
        return total
