"""Decode batch sizing from feedback: measured step time against a target time per token.

Every running request gets one output token per engine step, so a step's wall time is
the time per output token (TPOT) every request in it sees. A fixed ``max_num_seqs``
is either too small (idle hardware) or too large (every request slower than its
target). :class:`BatchSizeController` keeps a smoothed step time and adjusts the
decode batch limit: additive growth while steps are faster than the target and the
batch is actually full, multiplicative shrink when they are slower (AIMD, which
settles without oscillating wildly). :class:`FeedbackObserver` applies it to an
engine as a step observer of the engine loop (``agentic_llm.engine.loop``): it times
each step and writes the limit to the scheduler's ``max_num_seqs``. Lowering the limit stops admission; running requests are not
preempted for it, so the batch shrinks as requests finish.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["FeedbackConfig", "BatchSizeController", "FeedbackObserver"]


@dataclass(frozen=True)
class FeedbackConfig:
    """How the controller reacts.

    Attributes:
        target_tpot_s: wanted seconds per output token (per decode step).
        min_seqs / max_seqs: bounds of the decode batch limit.
        grow: sequences added when steps are fast and the batch is full.
        shrink: factor applied when steps are slow (0 < shrink < 1).
        smoothing: weight of the newest step in the moving average (0 < s <= 1).
        tolerance: relative band around the target where nothing changes.
    """

    target_tpot_s: float
    min_seqs: int = 1
    max_seqs: int = 256
    grow: int = 2
    shrink: float = 0.75
    smoothing: float = 0.3
    tolerance: float = 0.1

    def __post_init__(self) -> None:
        if not math.isfinite(self.target_tpot_s) or self.target_tpot_s <= 0:
            raise ValueError(f"target_tpot_s must be a positive number of seconds, got {self.target_tpot_s}")
        if self.min_seqs < 1 or self.max_seqs < self.min_seqs:
            raise ValueError(f"need 1 <= min_seqs <= max_seqs, got {self.min_seqs} and {self.max_seqs}")
        if self.grow < 1:
            raise ValueError(f"grow must be >= 1, got {self.grow}")
        if not 0 < self.shrink < 1:
            raise ValueError(f"shrink must be in (0, 1), got {self.shrink}")
        if not 0 < self.smoothing <= 1:
            raise ValueError(f"smoothing must be in (0, 1], got {self.smoothing}")
        if not 0 <= self.tolerance < 1:
            raise ValueError(f"tolerance must be in [0, 1), got {self.tolerance}")


class BatchSizeController:
    """AIMD controller of the decode batch limit.

    Args:
        config: target and bounds.
        initial: starting limit (clamped to the bounds).
    """

    def __init__(self, config: FeedbackConfig, initial: int = 8) -> None:
        self.config = config
        self.batch_size = min(max(initial, config.min_seqs), config.max_seqs)
        self.avg_step_s: float | None = None
        self.history: list[tuple[float, int]] = []  # (smoothed step time, limit after it)

    def observe(self, step_s: float, num_decode_rows: int) -> int:
        """Take one decode step's time and its batch size; return the new limit.

        Steps with no decode rows (pure prefill or idle) carry no TPOT signal and are
        ignored.
        """
        if num_decode_rows <= 0 or not math.isfinite(step_s) or step_s < 0:
            return self.batch_size
        c = self.config
        a = step_s if self.avg_step_s is None else c.smoothing * step_s + (1 - c.smoothing) * self.avg_step_s
        self.avg_step_s = a
        if a > c.target_tpot_s * (1 + c.tolerance):
            self.batch_size = max(c.min_seqs, min(self.batch_size - 1, int(self.batch_size * c.shrink)))
        elif a < c.target_tpot_s * (1 - c.tolerance) and num_decode_rows >= self.batch_size:
            self.batch_size = min(c.max_seqs, self.batch_size + c.grow)
        self.history.append((a, self.batch_size))
        return self.batch_size


class FeedbackObserver:
    """A step observer that lets a :class:`BatchSizeController` set the engine's batch limit.

    Add it to the engine loop (``EngineLoop(engine, observers=[...])``); it runs on the
    loop's thread, the one that owns the engine.

    Args:
        engine: an ``LLMEngine``.
        controller: the controller; its limit is applied at once.
        clock: seconds (tests pass a fake); steps are timed on it.
    """

    def __init__(self, engine: Any, controller: BatchSizeController,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.engine = engine
        self.controller = controller
        self.clock = clock
        self._t0 = 0.0
        self._decoding = 0
        engine.scheduler.max_num_seqs = controller.batch_size

    def before_step(self) -> None:
        sched = self.engine.scheduler
        self._decoding = sum(1 for r in sched.running if r.num_computed_tokens >= r.num_prompt_tokens)
        self._t0 = self.clock()

    def after_step(self, outputs: Sequence[Any], duration_s: float) -> None:
        """Take the step's time on :attr:`clock`; set the limit for the next step."""
        dt = self.clock() - self._t0
        self.engine.scheduler.max_num_seqs = self.controller.observe(dt, self._decoding)
