"""The scheduler on its own: budgets, admission, preemption, pluggable policies."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch

from agentic_llm import registry
from agentic_llm.engine.kv import PagedKVPool
from agentic_llm.engine.outputs import FinishReason
from agentic_llm.engine.sampling import SamplingParams
from agentic_llm.errors import ErrorCode
from agentic_llm.scheduler import (
    POLICY_KIND,
    FCFSPolicy,
    Request,
    RequestStatus,
    Scheduler,
    get_policy,
)


def req(n: int, seq: int, **kw: object) -> Request:
    return Request(
        request_id=f"r{seq}",
        token_ids=list(range(n)),
        num_prompt_tokens=n,
        params=SamplingParams(),
        generator=torch.Generator(),
        seq_no=seq,
        **kw,  # type: ignore[arg-type]
    )


def pool(blocks: int) -> PagedKVPool:
    return PagedKVPool(blocks, 4, 1, 1, 4)


def complete(rows: Sequence[object]) -> None:
    """Pretend the forward ran: mark the scheduled tokens computed."""
    for r in rows:
        r.request.num_computed_tokens = r.start + r.num_tokens  # type: ignore[attr-defined]


def test_token_budget_chunks_prefill() -> None:
    s = Scheduler(pool(32), FCFSPolicy(), max_num_batched_tokens=10)
    a, b = req(7, 0), req(8, 1)
    s.add(a)
    s.add(b)
    out = s.schedule()
    assert [(r.request, r.start, r.num_tokens) for r in out.rows] == [(a, 0, 7), (b, 0, 3)]
    assert out.rows[0].samples and not out.rows[1].samples
    complete(out.rows)
    a.token_ids.append(1)  # a sampled a token
    out = s.schedule()
    assert [(r.request, r.start, r.num_tokens) for r in out.rows] == [(a, 7, 1), (b, 3, 5)]
    assert all(r.samples for r in out.rows)


def test_max_num_seqs() -> None:
    s = Scheduler(pool(32), FCFSPolicy(), max_num_seqs=2)
    for i in range(3):
        s.add(req(3, i))
    out = s.schedule()
    assert [r.request.seq_no for r in out.rows] == [0, 1]
    assert len(s.waiting) == 1 and s.waiting[0].status is RequestStatus.WAITING


def test_admission_waits_for_memory_in_order() -> None:
    p = pool(4)  # 16 slots
    s = Scheduler(p, FCFSPolicy())
    big, small = req(12, 0), req(2, 1)
    s.add(big)
    out = s.schedule()
    complete(out.rows)
    s.add(req(8, 2))  # needs 2 blocks, 1 free: waits
    s.add(small)  # would fit, but FCFS keeps the order
    big.token_ids.append(0)
    out = s.schedule()
    assert [r.request for r in out.rows] == [big]
    assert p.num_free == 0 and len(s.waiting) == 2


def test_preempts_the_newest_and_resumes() -> None:
    p = pool(3)
    s = Scheduler(p, FCFSPolicy())
    a, b = req(4, 0), req(4, 1)
    s.add(a)
    s.add(b)
    complete(s.schedule().rows)  # both hold one full block; one block free
    for r in (a, b):
        r.token_ids.append(9)
    out = s.schedule()  # a takes the free block; b needs one: preempted
    assert out.preempted == [b] and [r.request for r in out.rows] == [a]
    assert b.status is RequestStatus.WAITING and b.block_table == [] and b.num_computed_tokens == 0
    assert b.metrics.num_preemptions == 1 and s.num_preemptions == 1
    p.check_integrity()
    complete(out.rows)
    s.finish(a, FinishReason.STOP)
    out = s.schedule()
    assert [(r.request, r.start, r.num_tokens) for r in out.rows] == [(b, 0, 5)]  # recomputed whole


def test_request_larger_than_pool_fails() -> None:
    s = Scheduler(pool(2), FCFSPolicy())
    s.add(req(12, 0))
    ok = req(3, 1)
    s.add(ok)
    out = s.schedule()
    assert len(out.failed) == 1 and out.failed[0].error.code is ErrorCode.CONTEXT_TOO_LONG  # type: ignore[union-attr]
    assert [r.request for r in out.rows] == [ok]


def test_policy_is_pluggable() -> None:
    assert "fcfs" in registry.names(POLICY_KIND)
    assert isinstance(get_policy("fcfs"), FCFSPolicy)

    @registry.register(POLICY_KIND, "test-priority")
    class PriorityPolicy(FCFSPolicy):
        def order_waiting(self, waiting: Sequence[Request], running: Sequence[Request]) -> list[Request]:
            return sorted(waiting, key=lambda r: (-r.priority, r.seq_no))

    s = Scheduler(pool(32), get_policy("test-priority"), max_num_seqs=1)
    s.add(req(3, 0))
    urgent = req(3, 1, priority=5)
    s.add(urgent)
    assert [r.request for r in s.schedule().rows] == [urgent]
    with pytest.raises(Exception, match="no scheduling_policy named"):
        get_policy("nope")
