"""Concurrency limit with a bounded wait queue, and the draining switch.

At most ``max_concurrent`` requests hold a slot; up to ``max_queue`` more wait for
one. A request beyond that is refused at once with ERR_OVERLOADED, the backpressure
signal (RESOURCE_EXHAUSTED over gRPC). Once :meth:`Admission.drain` is called every
new request is refused with ERR_UNAVAILABLE while the admitted ones finish.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["Admission", "AdmissionStats"]


@dataclass(frozen=True)
class AdmissionStats:
    """Slots in use, requests waiting, refusals so far, and whether draining."""

    running: int
    waiting: int
    refused_overload: int
    refused_draining: int
    draining: bool


class Admission:
    """Counting gate in front of the pipeline."""

    def __init__(self, max_concurrent: int, max_queue: int) -> None:
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be >= 1, got {max_concurrent}")
        if max_queue < 0:
            raise ValueError(f"max_queue must be >= 0, got {max_queue}")
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self._cond = threading.Condition()
        self._running = 0
        self._waiting = 0
        self._draining = False
        self._refused_overload = 0
        self._refused_draining = 0

    def _refuse_draining(self) -> AgenticError:
        self._refused_draining += 1
        return AgenticError(ErrorCode.UNAVAILABLE,
                            "the server is shutting down; retry on another replica")

    def acquire(self, deadline: float | None = None) -> None:
        """Take a slot, waiting in the queue until ``deadline`` (``time.monotonic()``).

        Raises:
            AgenticError: ERR_UNAVAILABLE while draining, ERR_OVERLOADED when the
                queue is full, ERR_TIMEOUT when the deadline passes in the queue.
        """
        with self._cond:
            if self._draining:
                raise self._refuse_draining()
            if self._running < self.max_concurrent and self._waiting == 0:
                self._running += 1
                return
            if self._waiting >= self.max_queue:
                self._refused_overload += 1
                raise AgenticError(
                    ErrorCode.OVERLOADED,
                    f"server busy: {self._running} requests running and {self._waiting} "
                    "waiting; retry with backoff",
                    running=self._running, waiting=self._waiting,
                )
            self._waiting += 1
            try:
                while self._running >= self.max_concurrent and not self._draining:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise AgenticError(ErrorCode.TIMEOUT,
                                           "the deadline passed while waiting for a free slot")
                    self._cond.wait(remaining)
                if self._draining:
                    raise self._refuse_draining()
                self._running += 1
            finally:
                self._waiting -= 1

    def release(self) -> None:
        """Give a slot back."""
        with self._cond:
            self._running -= 1
            self._cond.notify_all()

    @contextmanager
    def slot(self, deadline: float | None = None) -> Iterator[None]:
        """``with admission.slot(deadline):`` acquire and always release."""
        self.acquire(deadline)
        try:
            yield
        finally:
            self.release()

    def drain(self) -> None:
        """Refuse new requests from now on; those queued are refused too."""
        with self._cond:
            self._draining = True
            self._cond.notify_all()

    @property
    def draining(self) -> bool:
        return self._draining

    def wait_idle(self, timeout: float | None) -> bool:
        """Wait until no slot is held; False when ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._running > 0:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def stats(self) -> AdmissionStats:
        with self._cond:
            return AdmissionStats(self._running, self._waiting, self._refused_overload,
                                  self._refused_draining, self._draining)
