"""Fills constraint bitmasks, on a worker thread while the forward runs, or inline.

A worker thread only hides the fill when the forward spends its time outside the
GIL (large matmuls): torch releases the GIL inside every op, but a small model's
step is mostly Python dispatching tiny ops, and then the two threads take turns on
the GIL and the forward slows down by more than the fill costs. So by default the
filler measures both ways on the live workload: each step's cost from the fill's
start until the mask is in hand after the forward, in short alternating probe
windows, and then runs the cheaper way, probing again now and then.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import NamedTuple

import torch

from agentic_llm.engine.constraints import TokenMatcher, bitmask_words
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
    """A step's ``[rows, words]`` int32 mask and the rows whose matcher raised.

    A failing row is left all-disallowed and its error kept, so only that request
    ends; the other rows of the step are unaffected.
    """

    mask: torch.Tensor
    errors: dict[int, Exception]


class MaskFiller:
    """Writes the next-token bitmasks of a step's matchers.

    The engine does not touch those matchers until :meth:`Future.result` returns,
    so each matcher is only used by one thread at a time.

    Args:
        vocab_size: columns of the mask (as bits).
        overlap: True always uses the worker thread, False always fills inline,
            None chooses by measurement (see the module docstring).
    """

    def __init__(self, vocab_size: int, overlap: bool | None = None) -> None:
        self.vocab_size = vocab_size
        self.overlap = overlap
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentic-mask")
        self.threaded = overlap is True  # the way the current step uses (auto: inline first)
        self._phase = "probe"  # "probe": measuring the way in use; "run": using the chosen one
        self._probed: set[bool] = set()
        self._left = _PROBE
        self._costs: dict[bool, deque[float]] = {True: deque(maxlen=_PROBE), False: deque(maxlen=_PROBE)}
        self._t0 = 0.0

    def submit(self, matchers: list[TokenMatcher]) -> Future[FilledMask]:
        """Start filling a ``[len(matchers), words]`` int32 mask (all disallowed first)."""
        self._t0 = time.perf_counter()
        if self.threaded:
            return self._pool.submit(self._fill, matchers)
        fut: Future[FilledMask] = Future()
        try:
            fut.set_result(self._fill(matchers))
        except Exception as exc:  # reported to the step like a worker failure
            fut.set_exception(exc)
        return fut

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

    def _fill(self, matchers: list[TokenMatcher]) -> FilledMask:
        t0 = time.perf_counter()
        mask = torch.zeros((len(matchers), bitmask_words(self.vocab_size)), dtype=torch.int32)
        errors: dict[int, Exception] = {}
        for i, m in enumerate(matchers):
            try:
                m.fill_next_token_bitmask(mask, i)
            except Exception as exc:  # one broken matcher ends only its own request
                mask[i].zero_()
                errors[i] = exc
        emit.grammar_mask(time.perf_counter() - t0, batch_size=len(matchers))
        return FilledMask(mask, errors)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
