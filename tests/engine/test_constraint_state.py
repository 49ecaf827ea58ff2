"""A request's constraint lifecycle: a parked token is taken exactly once (by the fill
it was lent to, or at release), rollback drops a parked token first, termination is
known only once the parked token is taken, a fill in flight is waited for, and
``Scheduler.finish`` releases the constraint."""

from __future__ import annotations

import threading

import pytest
import torch

from agentic_llm.engine.constraint_state import ConstraintState
from agentic_llm.engine.kv import PagedKVPool
from agentic_llm.engine.masking import FillFuture, MaskFiller
from agentic_llm.engine.outputs import FinishReason
from agentic_llm.engine.sampling import SamplingParams
from agentic_llm.errors import AgenticError
from agentic_llm.scheduler import FCFSPolicy, Request, Scheduler

VOCAB = 40


class Counter:
    """Accepts token ``n`` at position ``n`` (any token at all with ``loose``), completes
    the document after ``end`` tokens, and records every call that changes it. With a
    ``gate``, accepting waits for it (a slow matcher on the worker)."""

    def __init__(self, end: int = 100, gate: threading.Event | None = None, loose: bool = False) -> None:
        self.taken: list[int] = []
        self.calls: list[str] = []
        self.end = end
        self.gate = gate
        self.loose = loose
        self.threads: set[str] = set()

    def fill_next_token_bitmask(self, bitmask: torch.Tensor, index: int = 0) -> None:
        self.calls.append("fill")
        bitmask[index, 0] = 1 << (len(self.taken) % 31)

    def accept_token(self, token_id: int) -> bool:
        self.threads.add(threading.current_thread().name)
        if self.gate is not None:
            assert self.gate.wait(5)
        if not self.loose and token_id != len(self.taken):
            self.calls.append(f"refuse {token_id}")
            return False
        self.calls.append(f"accept {token_id}")
        self.taken.append(token_id)
        return True

    def rollback(self, num_tokens: int) -> None:
        self.calls.append(f"rollback {num_tokens}")
        del self.taken[len(self.taken) - num_tokens :]

    def find_jump_forward_string(self) -> str:
        return "forced"

    def is_terminated(self) -> bool:
        return len(self.taken) >= self.end


def lend_and_fill(filler: MaskFiller, states: list[ConstraintState]) -> FillFuture:
    """What the step does: lend every matcher to one fill, then submit it."""
    fut = FillFuture()
    pending = [c.lend(fut) for c in states]
    return filler.submit([c.matcher for c in states], pending, future=fut)


@pytest.mark.parametrize("overlap", [False, True], ids=["inline", "worker"])
def test_a_parked_token_is_handed_to_one_fill_exactly_once(overlap: bool) -> None:
    m = Counter()
    c = ConstraintState(m)  # type: ignore[arg-type]
    assert c.accept(0) and c.pending is None
    c.park(1)
    assert c.pending == 1 and not c.is_terminated()
    filler = MaskFiller(VOCAB, overlap=overlap)
    first = lend_and_fill(filler, [c])
    assert c.pending is None  # the fill holds it now
    assert first.result(timeout=5).errors == {} and m.taken == [0, 1]
    second = lend_and_fill(filler, [c])  # nothing parked: the next fill only fills
    assert second.result(timeout=5).errors == {}
    c.release()
    assert m.taken == [0, 1] and m.calls == ["accept 0", "accept 1", "fill", "fill"]
    assert c.released
    filler.close()


def test_parking_twice_or_after_release_is_refused() -> None:
    c = ConstraintState(Counter())  # type: ignore[arg-type]
    c.park(0)
    with pytest.raises(AssertionError):
        c.park(1)  # the fill that takes the first has not run
    with pytest.raises(AssertionError):
        c.accept(1)
    c.release()
    c.release()  # twice is fine
    with pytest.raises(AssertionError):
        c.park(1)
    with pytest.raises(AssertionError):
        c.lend(FillFuture())


def test_rollback_drops_a_parked_token_first() -> None:
    m = Counter()
    c = ConstraintState(m)  # type: ignore[arg-type]
    for t in range(3):
        assert c.accept(t)
    c.park(3)
    c.rollback(1)  # the parked token only: the matcher never saw it
    assert c.pending is None and m.taken == [0, 1, 2] and "rollback 1" not in m.calls
    c.park(3)
    c.rollback(3)  # the parked token and two taken ones
    assert c.pending is None and m.taken == [0] and m.calls[-1] == "rollback 2"
    c.rollback(0)
    assert m.taken == [0]
    assert c.accept(1)  # the matcher goes on from where the rollback left it


def test_termination_is_known_once_the_parked_token_is_taken() -> None:
    m = Counter(end=2)
    c = ConstraintState(m)  # type: ignore[arg-type]
    assert c.accept(0)
    c.park(1)  # completes the document, which nobody knows yet
    assert not c.is_terminated() and c.jump_forward_string() == ""
    filler = MaskFiller(VOCAB, overlap=False)
    filled = lend_and_fill(filler, [c]).result()
    assert filled.done == frozenset({0})  # no mask: the request stops before this step's token
    assert c.is_terminated() and m.calls == ["accept 0", "accept 1"]
    assert c.jump_forward_string() == ""
    c.release()  # nothing parked, and a terminated matcher takes nothing more
    assert m.taken == [0, 1]


def test_a_refused_parked_token_is_the_fills_error_and_is_not_retried() -> None:
    m = Counter()
    c = ConstraintState(m)  # type: ignore[arg-type]
    c.park(5)  # position 0 wants 0
    filled = lend_and_fill(MaskFiller(VOCAB, overlap=False), [c]).result()
    assert isinstance(filled.errors[0], AgenticError) and "refused token 5" in str(filled.errors[0])
    c.release()
    assert m.calls == ["refuse 5"]


def test_release_while_a_fill_runs_waits_for_it_and_takes_nothing_twice() -> None:
    """The request ends (abort, timeout) while the worker is inside the fill that
    holds its parked token: release waits for that fill, which took the token."""
    gate = threading.Event()
    m = Counter(gate=gate)
    c = ConstraintState(m)  # type: ignore[arg-type]
    c.park(0)
    filler = MaskFiller(VOCAB, overlap=True)
    fut = lend_and_fill(filler, [c])
    threading.Timer(0.05, gate.set).start()
    assert not fut.done()  # the worker is held at the gate, inside accept_token
    c.release()  # on this (the engine) thread: returns once the fill has completed
    assert fut.done() and m.taken == [0] and m.calls == ["accept 0", "fill"]
    assert m.threads == {"agentic-mask"}  # taken by the worker, never here
    filler.close()


def test_jump_forward_text_comes_from_a_live_matcher_only() -> None:
    c = ConstraintState(Counter(end=1))  # type: ignore[arg-type]
    assert c.jump_forward_string() == "forced"
    assert c.accept(0) and c.is_terminated()
    assert c.jump_forward_string() == ""


def test_scheduler_finish_releases_the_constraint() -> None:
    pool = PagedKVPool(8, 4, 1, 1, 4)
    sched = Scheduler(pool, FCFSPolicy())
    m = Counter()
    c = ConstraintState(m)  # type: ignore[arg-type]
    r = Request(request_id="r", token_ids=[1, 2, 3], num_prompt_tokens=3, params=SamplingParams(),
                generator=torch.Generator(), constraint=c)
    sched.add(r)
    out = sched.schedule()
    assert [row.request for row in out.rows] == [r]
    assert c.accept(0)
    c.park(1)  # sampled, in the output, left for a fill that will not come
    r.token_ids += [0, 1]
    sched.finish(r, FinishReason.ABORT)
    assert c.released and c.pending is None and m.taken == [0, 1]  # the matcher matches the output
    assert r.is_finished and pool.num_free == pool.num_blocks
