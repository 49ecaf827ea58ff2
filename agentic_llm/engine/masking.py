"""Fills constraint bitmasks, on a worker thread while the forward runs, or inline.

A worker thread only hides the fill when the forward spends its time outside the
GIL. The compiled decode step on the CPU does (one C call for the whole step, see
``models.aoti_runner``), and it signals the moment right before that call
(``ForwardBatch.on_gil_free`` -> :meth:`MaskFiller.start`). An eager step is mostly
Python dispatching small ops: a second Python thread would take turns with it on the
GIL and slow it by more than the fill costs.

Where fills run is fixed when the filler is built, never switched later:

* ``overlap=True``: the worker thread. A fill submitted with ``deferred`` is held
  until :meth:`MaskFiller.start` (the forward is about to release the GIL) or
  :meth:`MaskFiller.finish` (after a forward that did not), then handed over.
* ``overlap=False``: inline, on the submitting thread, at submission.
* ``overlap=None`` (the engine's default, ``EngineConfig.mask_fill_overlap``): the
  worker when the engine's decode steps will release the GIL (``gil_free_forward``:
  the compiled decode step on the CPU, with a compiler) and the process may use a
  second CPU for the worker; inline otherwise.

With the worker, the steps that do not release the GIL (a prefill, a lone row) fill
on the worker too, after their forward, so the sampled tokens' matcher updates keep
moving into the next step's fill (see :attr:`MaskFiller.defers_accept`).

Between fills the worker may wait a short while awake, on a counter read in C with
the GIL released, before it sleeps: the compiled call bumps that counter from C once
the GIL is free, so handing over a fill wakes no thread (see ``MaskFiller.__init__``).
Whether it waits awake is also decided when the filler is built.
"""

from __future__ import annotations

import atexit
import os
import queue
import sys
import threading
import time
import weakref
from typing import Any, NamedTuple

import numpy as np
import torch

from agentic_llm.engine.constraint_state import take_and_fill
from agentic_llm.engine.constraints import TokenMatcher, bitmask_words
from agentic_llm.engine.sampling import mask_bias
from agentic_llm.observability import emit

__all__ = ["FillFuture", "FilledMask", "MaskFiller"]


class FilledMask(NamedTuple):
    """A step's ``[rows, words]`` int32 mask and what else the fill found out.

    A failing row is left all-disallowed and its error kept, so only that request
    ends; the other rows of the step are unaffected. ``done`` holds the rows whose
    matcher completed the document on taking its pending token: those requests stop
    before this step's token. ``bias`` is the mask as an additive ``[rows, vocab]``
    float32 bias (0 allowed, -inf not), made alongside the mask so the step only adds
    it (when the fill was asked for one: greedy rows on the CPU are picked from the
    packed mask by ``native.MaskedRowMax``).
    """

    mask: torch.Tensor
    errors: dict[int, Exception]
    done: frozenset[int] = frozenset()
    bias: torch.Tensor | None = None


def _cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


class FillFuture:
    """The result of one fill: set once by whichever thread fills, read by the step.

    A lock held from creation until the result is set, so creating, completing and
    reading one are a few C calls (a ``concurrent.futures.Future`` costs a Python
    condition variable each way, on the step's path).
    """

    __slots__ = ("_ready", "_value", "_error")

    def __init__(self) -> None:
        self._ready = threading.Lock()
        self._ready.acquire()
        self._value: FilledMask | None = None
        self._error: BaseException | None = None

    def set_result(self, value: FilledMask) -> None:
        self._value = value
        self._ready.release()

    def set_exception(self, error: BaseException) -> None:
        self._error = error
        self._ready.release()

    def done(self) -> bool:
        return not self._ready.locked()

    def wait(self) -> None:
        """Wait until the fill has completed, whether it failed or not."""
        self._ready.acquire()
        self._ready.release()

    def result(self, timeout: float | None = None) -> FilledMask:
        """The filled mask, waiting for it (at most ``timeout`` seconds: TimeoutError);
        re-raises what the fill raised."""
        if not self._ready.acquire(timeout=-1 if timeout is None else timeout):
            raise TimeoutError("the mask fill did not finish in time")
        self._ready.release()
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value


class _Held(NamedTuple):
    """A submitted fill that has not started yet."""

    future: FillFuture
    matchers: list[TokenMatcher]
    pending: list[int | None]
    bias: bool


_EMPTY = object()  # nothing queued
_STOP = object()  # the worker thread ends


def _try_get(q: queue.SimpleQueue[Any]) -> Any:
    try:
        return q.get_nowait()
    except queue.Empty:
        return _EMPTY


def _spin_function() -> Any:
    from agentic_llm.engine.native import native_library

    lib = native_library()
    return lib.spin_until_changed if lib is not None else None


class MaskFiller:
    """Writes the next-token bitmasks of a step's matchers.

    A submitted fill holds its matchers until its :class:`FillFuture` completes (the
    engine lends them through ``ConstraintState.lend``), so each matcher is only used
    by one thread at a time.

    Args:
        vocab_size: columns of the mask (as bits).
        overlap: where fills run, fixed here: True the worker thread, False inline,
            None the worker when ``gil_free_forward`` and a second CPU allow it,
            else inline (see the module docstring).
        device: where the logits the masks apply to live.
        gil_free_forward: whether the engine's decode steps release the GIL
            (the compiled decode step on the CPU).
        spin_s: after a fill the worker waits up to this long awake for the next
            one (0: it always sleeps); only with a CPU that torch's threads leave
            free, as counted here (set torch's thread count before building).

    Attributes:
        wakeups: hand-overs that found the worker asleep on the queue (each costs
            the handing thread a wake-up of it).
    """

    def __init__(self, vocab_size: int, overlap: bool | None = None, device: torch.device | None = None, *,
                 gil_free_forward: bool = False, spin_s: float = 0.002) -> None:
        self.vocab_size = vocab_size
        self.device = device or torch.device("cpu")
        cpus = _cpus()
        self._use_worker = overlap if overlap is not None else gil_free_forward and cpus >= 2
        # One worker thread fed through a SimpleQueue: a hand-over is one C call, which
        # matters because it happens on the step's path, right before the forward.
        # After a fill the worker waits up to ``spin_s`` for the next on the bell, a
        # counter read in C with the GIL released (``native.spin_until_changed``); a
        # hand-over then needs no wake-up of a sleeping thread, and the compiled call
        # rings the bell itself once the GIL is free (see :meth:`start`). It waits
        # busily only with a CPU that torch's threads leave free.
        self.spin_s = spin_s
        self._spin = (_spin_function() if self._use_worker and spin_s > 0 and torch.get_num_threads() < cpus
                      else None)
        self._bell = np.zeros(1, dtype=np.int64)
        self._bell_address: int = self._bell.ctypes.data
        self._queue: queue.SimpleQueue[_Held | object] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._closed = False
        self._held: _Held | None = None
        self._lock = threading.Lock()
        self.wakeups = 0

    @property
    def threaded(self) -> bool:
        """Whether fills run on the worker thread (fixed when built; False once closed)."""
        return self._use_worker and not self._closed

    @property
    def defers_accept(self) -> bool:
        """Whether a sampled token should be left for the next fill to take: true when
        fills run on the worker thread, so taking the token runs beside the next
        forward instead of before it (only for requests without jump-forward, whose
        next input does not depend on the matcher)."""
        return self.threaded

    @property
    def spins(self) -> bool:
        """Whether the worker waits awake for its next fill (fixed when built)."""
        return self._spin is not None

    @property
    def worker(self) -> threading.Thread | None:
        """The worker thread, once a fill has started it (None inline)."""
        return self._worker

    def submit(self, matchers: list[TokenMatcher], pending: list[int | None] | None = None, *,
               deferred: bool = False, bias: bool = True, future: FillFuture | None = None) -> FillFuture:
        """Fill a ``[len(matchers), words]`` int32 mask (all disallowed first).

        ``pending[i]``, when not None, is a token matcher ``i`` has not taken yet: the
        fill makes it take that token first (see :attr:`defers_accept`). Inline, the
        fill runs now. On the worker it starts now, or with ``deferred`` at
        :meth:`start` (during the forward) or :meth:`finish` (after it). With
        ``bias`` the fill also makes :attr:`FilledMask.bias`. ``future`` is the
        future to complete (a new one when None; ``ConstraintState.lend`` needs it
        before the fill is submitted).
        """
        rows: list[int | None] = pending if pending is not None else [None] * len(matchers)
        fut = future if future is not None else FillFuture()
        held = _Held(fut, matchers, rows, bias)
        if not self._use_worker:
            self._run(held)
            return fut
        with self._lock:
            self._held = held
        if not deferred:
            self._hand_over()
        return fut

    def start(self) -> int | None:
        """The forward is about to release the GIL: the held fill goes to the worker.
        With nothing held (already started, or filled inline) it does nothing.
        Returns the bell's address when the caller must ring it (bump the int64
        there) once the GIL is free, which the compiled call does from C; None when
        nothing is left to ring."""
        if not self._use_worker:
            return None
        return self._bell_address if self._hand_over(ring=False) else None

    def finish(self) -> None:
        """The forward is done: a fill still held goes to the worker now."""
        if self._use_worker:
            self._hand_over()

    def _hand_over(self, ring: bool = True) -> bool:
        """Give the held fill to the worker; True when it went on the queue (then,
        without ``ring``, the caller rings the bell)."""
        held = self._take()
        if held is None:
            return False
        if self._closed:  # no worker any more: fill here
            self._run(held)
            return False
        if self._worker is None:
            self._worker = threading.Thread(target=self._serve, name="agentic-mask", daemon=True)
            self._worker.start()
            _live.add(self)
        self._queue.put(held)
        if ring:
            self._bell[0] += 1
        return True

    def _serve(self) -> None:
        spin = self._spin
        spin_ns = int(self.spin_s * 1e9)
        bell = self._bell
        while True:
            seen = int(bell[0])  # before looking: a hand-over after this rings past it
            item = _try_get(self._queue)
            if item is _EMPTY and spin is not None:
                # the next hand-over usually comes within a step: wait for it in C,
                # the GIL released, rather than sleep and need waking (a hand-over
                # puts, then rings)
                spin(self._bell_address, seen, spin_ns)
                item = _try_get(self._queue)
            if item is _EMPTY:
                self.wakeups += 1
                item = self._queue.get()  # sleep until a hand-over wakes this thread
            if item is _STOP:
                return
            self._run(item)  # type: ignore[arg-type]

    def _take(self) -> _Held | None:
        with self._lock:
            held, self._held = self._held, None
        return held

    def _run(self, held: _Held) -> None:
        try:
            held.future.set_result(self._fill(held.matchers, held.pending, held.bias))
        except Exception as exc:  # reported to the step like a worker failure
            held.future.set_exception(exc)

    def _fill(self, matchers: list[TokenMatcher], pending: list[int | None], want_bias: bool = True) -> FilledMask:
        t0 = time.perf_counter()
        words = np.zeros((len(matchers), bitmask_words(self.vocab_size)), dtype=np.int32)
        mask = torch.from_numpy(words)
        rows = words.view(np.uint32)
        errors: dict[int, Exception] = {}
        done: set[int] = set()
        for i, (m, tok) in enumerate(zip(matchers, pending, strict=True)):
            try:
                if take_and_fill(m, tok, rows[i], mask, i):
                    done.add(i)
            except Exception as exc:  # one broken matcher ends only its own request
                words[i] = 0
                errors[i] = exc
        # the byte table behind mask_bias reads words as little-endian bytes
        bias = (mask_bias(mask, self.vocab_size, self.device, torch.float32)
                if want_bias and sys.byteorder == "little" else None)
        emit.grammar_mask(time.perf_counter() - t0, batch_size=len(matchers))
        return FilledMask(mask, errors, frozenset(done), bias)

    def close(self) -> None:
        """Stop the worker after what it was handed; later fills run inline. A held
        fill is completed here, so nobody waits on it forever."""
        self._closed = True
        held = self._take()
        if held is not None:
            self._run(held)
        if self._worker is not None and self in _live:
            self._queue.put(_STOP)  # the worker ends after what it was handed
            self._bell[0] += 1
            _live.discard(self)


# Fillers whose worker thread is running. At exit their workers are stopped and
# joined while the interpreter is still whole: a daemon thread cut off during
# finalization inside native code can abort the process.
_live: weakref.WeakSet[MaskFiller] = weakref.WeakSet()


@atexit.register
def _stop_workers() -> None:
    for filler in list(_live):
        worker = filler.worker
        filler.close()
        if worker is not None:
            worker.join(timeout=5.0)
