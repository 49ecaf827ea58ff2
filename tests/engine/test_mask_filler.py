"""The mask filler: same masks inline or threaded, pending tokens taken first, where
fills run fixed when it is built, a deferred fill started by the forward's signal."""

from __future__ import annotations

import ctypes
import threading

import pytest
import torch

from agentic_llm.engine import masking
from agentic_llm.engine.constraints import bitmask_words
from agentic_llm.engine.masking import FilledMask, FillFuture, MaskFiller
from agentic_llm.engine.native import native_library
from agentic_llm.engine.sampling import apply_bitmask, masked_logits

VOCAB = 70


class AllowSet:
    """A constraint that allows a fixed set of token ids at every position."""

    def __init__(self, allowed: set[int]) -> None:
        self.allowed = allowed

    def fill_next_token_bitmask(self, bitmask: torch.Tensor, index: int = 0) -> None:
        for t in self.allowed:
            word, bit = divmod(t, 32)
            value = int(bitmask[index, word]) | (1 << bit)
            bitmask[index, word] = value - (1 << 32) if value >= 1 << 31 else value

    def accept_token(self, token_id: int) -> bool:
        return token_id in self.allowed

    def rollback(self, num_tokens: int) -> None:
        return None

    def find_jump_forward_string(self) -> str:
        return ""

    def is_terminated(self) -> bool:
        return False


class Broken(AllowSet):
    def fill_next_token_bitmask(self, bitmask: torch.Tensor, index: int = 0) -> None:
        raise RuntimeError("no mask today")


def test_inline_and_threaded_masks_agree() -> None:
    matchers = [AllowSet({0, 31, 32, 69}), AllowSet({5})]
    masks = [MaskFiller(VOCAB, overlap=o).submit(matchers).result().mask  # type: ignore[arg-type]
             for o in (True, False)]
    assert masks[0].shape == (2, bitmask_words(VOCAB))
    assert torch.equal(masks[0], masks[1])
    logits = torch.randn(2, VOCAB)
    out = masked_logits(logits, masks[0], [0, 1])
    assert torch.isfinite(out[0]).nonzero().flatten().tolist() == [0, 31, 32, 69]
    assert torch.isfinite(out[1]).nonzero().flatten().tolist() == [5]
    ref = logits.clone()
    apply_bitmask(ref, masks[0])
    assert torch.equal(out, ref)
    # a mask for some rows only leaves the others alone
    part = masked_logits(logits, masks[0][1:], [1])
    assert torch.equal(part[0], logits[0]) and torch.equal(part[1], out[1])


def test_a_failing_matcher_fails_only_its_row() -> None:
    for overlap in (False, True):
        filled = MaskFiller(VOCAB, overlap=overlap).submit(
            [AllowSet({3}), Broken(set()), AllowSet({4})]).result()  # type: ignore[list-item]
        assert list(filled.errors) == [1] and "no mask today" in str(filled.errors[1])
        assert not bool(filled.mask[1].any())
        out = masked_logits(torch.zeros(3, VOCAB), filled.mask, [0, 1, 2])
        assert torch.isfinite(out[0]).nonzero().flatten().tolist() == [3]
        assert torch.isfinite(out[2]).nonzero().flatten().tolist() == [4]


class Where(AllowSet):
    """Records the thread each fill runs on."""

    def __init__(self, allowed: set[int]) -> None:
        super().__init__(allowed)
        self.threads: list[str] = []

    def fill_next_token_bitmask(self, bitmask: torch.Tensor, index: int = 0) -> None:
        self.threads.append(threading.current_thread().name)
        super().fill_next_token_bitmask(bitmask, index)


def test_where_fills_run_is_fixed_when_built(monkeypatch: pytest.MonkeyPatch) -> None:
    main = threading.current_thread().name
    m = Where({1})
    # auto on an engine whose forwards hold the GIL (eager, or not on the CPU): inline
    eager = MaskFiller(VOCAB, overlap=None, gil_free_forward=False)
    assert not eager.threaded and not eager.defers_accept and not eager.spins
    fut = eager.submit([m], deferred=True)  # type: ignore[list-item]
    assert fut.done() and m.threads == [main]  # inline fills run at submission
    assert eager.start() is None
    eager.finish()
    assert eager.worker is None and len(m.threads) == 1
    eager.close()
    # auto with GIL-free forwards and a second CPU: the worker, for every fill
    monkeypatch.setattr(masking, "_cpus", lambda: 2)
    auto = MaskFiller(VOCAB, overlap=None, gil_free_forward=True)
    assert auto.threaded and auto.defers_accept
    fut = auto.submit([m], deferred=True)  # type: ignore[list-item]
    threading.Event().wait(0.02)
    assert not fut.done()  # held, not started behind the forward's back
    auto.start()  # the forward is about to release the GIL
    fut.result()
    auto.finish()  # already started: nothing more happens
    assert m.threads[-1] != main and len(m.threads) == 2
    # a step without the signal (prefill, a lone row) fills on the worker after its forward
    fut = auto.submit([m], deferred=True)  # type: ignore[list-item]
    auto.finish()
    fut.result()
    assert m.threads[-1] != main and auto.threaded and len(m.threads) == 3
    auto.close()
    # with one CPU the worker could only take turns with the forward: inline, fixed
    monkeypatch.setattr(masking, "_cpus", lambda: 1)
    single = MaskFiller(VOCAB, overlap=None, gil_free_forward=True)
    assert not single.threaded and not single.defers_accept
    fut = single.submit([m], deferred=True)  # type: ignore[list-item]
    assert fut.done() and m.threads[-1] == main and single.start() is None
    single.close()
    # overlap=True: the worker even with one CPU and no GIL-free forward
    fixed = MaskFiller(VOCAB, overlap=True)
    fut = fixed.submit([m], deferred=True)  # type: ignore[list-item]
    fixed.finish()
    fut.result()
    assert m.threads[-1] != main and fixed.defers_accept
    fixed.close()
    # overlap=False: inline even with GIL-free forwards and CPUs to spare
    monkeypatch.setattr(masking, "_cpus", lambda: 8)
    inline = MaskFiller(VOCAB, overlap=False, gil_free_forward=True)
    fut = inline.submit([m], deferred=True)  # type: ignore[list-item]
    assert fut.done() and m.threads[-1] == main
    assert inline.start() is None
    inline.finish()
    assert len(m.threads) == 6 and not inline.defers_accept and inline.worker is None


def test_closing_completes_a_held_fill() -> None:
    filler = MaskFiller(VOCAB, overlap=True)
    fut = filler.submit([AllowSet({2})], deferred=True)  # type: ignore[list-item]
    assert not fut.done()
    filler.close()
    assert fut.result(timeout=5).mask.any()


def test_the_worker_stops_on_close_and_later_fills_run_inline() -> None:
    filler = MaskFiller(VOCAB, overlap=True)
    assert filler.submit([AllowSet({3})]).result(timeout=5).mask.any()  # type: ignore[list-item]
    worker = filler.worker
    assert worker is not None and worker.is_alive() and worker.name == "agentic-mask"
    filler.close()
    worker.join(timeout=5)
    assert not worker.is_alive()
    # after close nothing serves the queue: a fill must not wait on it forever
    fut = filler.submit([AllowSet({4})])  # type: ignore[list-item]
    assert fut.done() and not filler.threaded
    assert masked_logits(torch.zeros(1, VOCAB), fut.result().mask, [0])[0].isfinite().nonzero().flatten().tolist() == [4]
    filler.close()  # twice is fine


class Recording(AllowSet):
    """Records the calls a fill makes; completes after taking ``end_on``."""

    def __init__(self, allowed: set[int], end_on: int = -1) -> None:
        super().__init__(allowed)
        self.calls: list[str] = []
        self.end_on = end_on
        self.ended = False

    def fill_next_token_bitmask(self, bitmask: torch.Tensor, index: int = 0) -> None:
        self.calls.append("fill")
        super().fill_next_token_bitmask(bitmask, index)

    def accept_token(self, token_id: int) -> bool:
        self.calls.append(f"accept {token_id}")
        self.ended = token_id == self.end_on
        return super().accept_token(token_id)

    def is_terminated(self) -> bool:
        return self.ended


def test_a_deferred_fill_waits_for_start() -> None:
    filler = MaskFiller(VOCAB, overlap=True)
    m = Recording({2})
    fut = filler.submit([m], deferred=True)  # type: ignore[list-item]
    assert not fut.done()
    threading.Event().wait(0.05)
    assert m.calls == [] and not fut.done()  # the worker waits for the forward's signal
    filler.start()
    out = masked_logits(torch.zeros(1, VOCAB), fut.result().mask, [0])
    assert torch.isfinite(out[0]).nonzero().flatten().tolist() == [2]
    assert m.calls == ["fill"]
    filler.start()  # again, with nothing waiting: nothing happens
    filler.close()


def test_pending_tokens_are_taken_before_the_fill() -> None:
    for overlap in (False, True):
        filler = MaskFiller(VOCAB, overlap=overlap)
        going, ending, refusing, fresh = Recording({1, 2}), Recording({1, 3}, end_on=3), Recording({1}), Recording({4})
        fut = filler.submit([going, ending, refusing, fresh], [2, 3, 9, None])  # type: ignore[list-item]
        filled = fut.result()
        assert going.calls == ["accept 2", "fill"] and fresh.calls == ["fill"]
        assert ending.calls == ["accept 3"] and filled.done == frozenset({1})  # completed: no mask needed
        assert refusing.calls == ["accept 9"] and list(filled.errors) == [2]
        assert "refused token 9" in str(filled.errors[2])
        assert filled.bias is not None
        assert torch.equal(filled.bias, masked_logits(torch.zeros(4, VOCAB), filled.mask, [0, 1, 2, 3]))
        filler.close()


def test_a_rung_hand_over_reaches_a_waiting_worker_without_waking_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a fill the worker waits on the bell (in C, the GIL released); a hand-over
    by ``start`` whose caller rings the bell, as the compiled call does, finds it
    awake. Without the C helpers the worker sleeps on the queue instead."""
    if native_library() is None:
        pytest.skip("no C compiler to build the engine's C helpers")  # a failure in CI (conftest)
    monkeypatch.setattr(masking, "_cpus", lambda: 2)  # one torch thread (conftest), a CPU to spare
    filler = MaskFiller(VOCAB, overlap=True, spin_s=5.0)
    assert filler.spins
    for i in range(6):
        fut = filler.submit([AllowSet({i})], deferred=True)  # type: ignore[list-item]
        bell = filler.start()
        assert bell is not None
        ctypes.c_int64.from_address(bell).value += 1  # what the compiled call does from C
        assert masked_logits(torch.zeros(1, VOCAB), fut.result(timeout=5).mask, [0])[0].isfinite().nonzero().flatten().tolist() == [i]
        threading.Event().wait(0.002)  # the worker is back on the bell
    assert filler.wakeups == 0  # no hand-over found the worker asleep
    assert filler.start() is None  # nothing held: nothing to ring
    worker = filler.worker
    filler.close()  # rings too: a waiting worker ends at once, not after spin_s
    assert worker is not None
    worker.join(timeout=2)
    assert not worker.is_alive()


def test_an_unrung_hand_over_is_filled_after_the_wait() -> None:
    """A caller of ``start`` that does not ring only delays the fill by the wait."""
    filler = MaskFiller(VOCAB, overlap=True, spin_s=0.05)
    for i in range(3):
        fut = filler.submit([AllowSet({i})], deferred=True)  # type: ignore[list-item]
        filler.start()
        assert masked_logits(torch.zeros(1, VOCAB), fut.result(timeout=5).mask, [0])[0].isfinite().nonzero().flatten().tolist() == [i]
    filler.close()


def test_no_waiting_when_torch_takes_every_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """With as many torch threads as CPUs the worker sleeps on the queue between fills
    (a busy wait would take a CPU from the forward)."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: 64)
    filler = MaskFiller(VOCAB, overlap=True, spin_s=5.0)
    assert not filler.spins  # decided when built
    for i in range(3):
        assert filler.submit([AllowSet({i})]).result(timeout=5).mask.any()  # type: ignore[list-item]
        threading.Event().wait(0.002)
    assert filler.wakeups >= 3
    filler.close()


def test_fill_future() -> None:
    fut = FillFuture()
    assert not fut.done()
    with pytest.raises(TimeoutError):
        fut.result(timeout=0.01)
    filled = FilledMask(torch.zeros(1, 3, dtype=torch.int32), {})
    threading.Timer(0.02, fut.set_result, (filled,)).start()
    assert fut.result(timeout=5) is filled and fut.done()
    assert fut.result() is filled  # read again: the same result
    failed = FillFuture()
    failed.set_exception(RuntimeError("worker broke"))
    with pytest.raises(RuntimeError, match="worker broke"):
        failed.result()
