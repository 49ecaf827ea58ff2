"""Fills constraint bitmasks, on a worker thread while the forward runs, or inline.

A worker thread only hides the fill when the forward spends its time outside the
GIL. The compiled decode step does (one C call for the whole step), so the worker
waits for the signal the forward gives right before that call (:meth:`MaskFiller.start`)
and fills while it runs. An eager step is mostly Python dispatching small ops: the
two threads would take turns on the GIL and the forward would slow down by more than
the fill costs, so without the signal the worker starts only once the forward is
done. By default the filler measures both ways on the live workload: each step's
cost from the fill's submission until the mask is in hand after the forward, in
short alternating probe windows, and then runs the cheaper way, probing again now
and then.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import NamedTuple

import torch

from agentic_llm.engine.constraints import TokenMatcher, bitmask_words
from agentic_llm.engine.postprocess import refused_token_error
from agentic_llm.engine.sampling import mask_bias
from agentic_llm.observability import emit

__all__ = ["FilledMask", "MaskFiller"]

#: steps measured in each way before choosing
_PROBE = 8
#: steps run the chosen way before probing the other again
_RUN = 400
#: the worker thread must measure at least this much cheaper to be chosen: its probe
#: steps slow the forward when it loses, and inline filling never does
_THREAD_MARGIN = 0.9


class FilledMask(NamedTuple):
    """A step's ``[rows, words]`` int32 mask and what else the fill found out.

    A failing row is left all-disallowed and its error kept, so only that request
    ends; the other rows of the step are unaffected. ``done`` holds the rows whose
    matcher completed the document on taking its pending token: those requests stop
    before this step's token. ``bias`` is the mask as an additive ``[rows, vocab]``
    float32 bias (0 allowed, -inf not), made alongside the mask so the step only adds it.
    """

    mask: torch.Tensor
    errors: dict[int, Exception]
    done: frozenset[int] = frozenset()
    bias: torch.Tensor | None = None


class MaskFiller:
    """Writes the next-token bitmasks of a step's matchers.

    The engine does not touch those matchers until :meth:`Future.result` returns,
    so each matcher is only used by one thread at a time.

    Args:
        vocab_size: columns of the mask (as bits).
        overlap: True always uses the worker thread, False always fills inline,
            None chooses by measurement (see the module docstring).
        device: where the logits the masks apply to live.
    """

    def __init__(self, vocab_size: int, overlap: bool | None = None, device: torch.device | None = None) -> None:
        self.vocab_size = vocab_size
        self.device = device or torch.device("cpu")
        self.overlap = overlap
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentic-mask")
        self.threaded = overlap is True  # the way the current step uses (auto: inline first)
        self._phase = "probe"  # "probe": measuring the way in use; "run": using the chosen one
        self._probed: set[bool] = set()
        self._left = _PROBE
        self._costs: dict[bool, deque[float]] = {True: deque(maxlen=_PROBE), False: deque(maxlen=_PROBE)}
        self._t0 = 0.0
        self._go = threading.Event()
        self._go.set()

    def submit(self, matchers: list[TokenMatcher], pending: list[int | None] | None = None, *,
               deferred: bool = False) -> Future[FilledMask]:
        """Fill a ``[len(matchers), words]`` int32 mask (all disallowed first), inline
        now or on the worker thread.

        ``pending[i]``, when not None, is a token matcher ``i`` has not taken yet: the
        fill makes it take that token first (see :attr:`defers_accept`). With
        ``deferred`` the worker waits for :meth:`start` before it begins.
        """
        self._t0 = time.perf_counter()
        rows: list[int | None] = pending if pending is not None else [None] * len(matchers)
        if self.threaded:
            go = self._go = threading.Event()
            if not deferred:
                go.set()
            return self._pool.submit(self._fill_when, go, matchers, rows)
        fut: Future[FilledMask] = Future()
        try:
            fut.set_result(self._fill(matchers, rows))
        except Exception as exc:  # reported to the step like a worker failure
            fut.set_exception(exc)
        return fut

    @property
    def defers_accept(self) -> bool:
        """Whether a sampled token should be left for the next fill to take: true when
        fills run on the worker thread, so taking the token runs beside the next
        forward instead of before it (only for requests without jump-forward, whose
        next input does not depend on the matcher)."""
        return self.threaded

    def start(self) -> None:
        """Let the submitted fill begin (the forward is about to release the GIL, or
        is done); calling it again, or with nothing submitted, does nothing."""
        self._go.set()

    def _fill_when(self, go: threading.Event, matchers: list[TokenMatcher],
                   pending: list[int | None]) -> FilledMask:
        go.wait()
        return self._fill(matchers, pending)

    def mask_ready(self) -> None:
        """Called when the step has the mask in hand after the forward: one cost sample."""
        if self.overlap is not None:
            return
        self._costs[self.threaded].append(time.perf_counter() - self._t0)
        self._left -= 1
        if self._left > 0:
            return
        if self._phase == "probe":
            self._probed.add(self.threaded)
            other = not self.threaded
            if other not in self._probed or not self._costs[other]:
                self.threaded, self._left = other, _PROBE
                return
            self.threaded = self._cheaper()
            self._phase, self._left = "run", _RUN
            self._probed.clear()
        else:  # measure the way not in use again (the workload may have changed)
            self._probed.add(self.threaded)
            self._costs[not self.threaded].clear()
            self.threaded, self._phase, self._left = not self.threaded, "probe", _PROBE

    def _cheaper(self) -> bool:
        thread, inline = self._costs[True], self._costs[False]
        return statistics.median(thread) <= _THREAD_MARGIN * statistics.median(inline)

    def _fill(self, matchers: list[TokenMatcher], pending: list[int | None]) -> FilledMask:
        t0 = time.perf_counter()
        mask = torch.zeros((len(matchers), bitmask_words(self.vocab_size)), dtype=torch.int32)
        errors: dict[int, Exception] = {}
        done: set[int] = set()
        for i, (m, tok) in enumerate(zip(matchers, pending, strict=True)):
            try:
                if tok is not None:
                    if not m.accept_token(tok):
                        errors[i] = refused_token_error(tok)
                        continue
                    if m.is_terminated():
                        done.add(i)
                        continue
                m.fill_next_token_bitmask(mask, i)
            except Exception as exc:  # one broken matcher ends only its own request
                mask[i].zero_()
                errors[i] = exc
        # the byte table behind mask_bias reads words as little-endian bytes
        bias = mask_bias(mask, self.vocab_size, self.device, torch.float32) if sys.byteorder == "little" else None
        emit.grammar_mask(time.perf_counter() - t0, batch_size=len(matchers))
        return FilledMask(mask, errors, frozenset(done), bias)

    def close(self) -> None:
        self._go.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
