"""ForwardMetrics: activation rate, gate, uncertainty and latency percentiles.

The hot path only appends references to tensors it already computed (no reductions,
no host sync); the statistics are reduced when someone asks for them.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import torch

from agentic_llm.observability.stats import percentile

__all__ = ["ForwardMetrics", "ForwardSample"]


@dataclass
class ForwardSample:
    """One hooked-layer call."""

    layer: int
    latency_us: float
    gate: torch.Tensor | None  # [T], None when the call was skipped or failed
    uncertainty: torch.Tensor | None


class ForwardMetrics:
    """Ring buffer of recent hooked-layer calls plus lifetime counters."""

    def __init__(self, window: int = 10000) -> None:
        self._samples: deque[ForwardSample] = deque(maxlen=max(window, 1))
        self._lock = threading.Lock()
        self.calls = 0
        self.skipped = 0
        self.errors = 0
        self.timeouts = 0

    def record(self, sample: ForwardSample) -> None:
        """Append one call."""
        with self._lock:
            self.calls += 1
            self._samples.append(sample)

    def count_skip(self) -> None:
        """A call that returned at once (no visible knowledge)."""
        self.skipped += 1

    def count_error(self) -> None:
        """A call that raised and failed open."""
        self.errors += 1

    def count_timeout(self) -> None:
        """A call that exceeded the forward timeout and failed open."""
        self.timeouts += 1

    def reset(self) -> None:
        """Forget samples and counters."""
        with self._lock:
            self._samples.clear()
            self.calls = self.skipped = self.errors = self.timeouts = 0

    def summary(self) -> dict[str, float | int]:
        """Counters, activation rate, mean gate / uncertainty, latency P50/P95/P99 (us)."""
        with self._lock:
            samples = list(self._samples)
        lat = [s.latency_us for s in samples]
        gates = [s.gate.float().reshape(-1) for s in samples if s.gate is not None]
        unc = [s.uncertainty.float().reshape(-1) for s in samples if s.uncertainty is not None]
        tokens = sum(int(g.numel()) for g in gates)
        active = float(sum(float((g > 0).sum()) for g in gates))
        gate_sum = float(sum(float(g.sum()) for g in gates))
        unc_vals = torch.cat(unc) if unc else torch.empty(0)
        return {
            "calls": self.calls,
            "skipped": self.skipped,
            "errors": self.errors,
            "timeouts": self.timeouts,
            "tokens": tokens,
            "activation_rate": active / tokens if tokens else 0.0,
            "gate_mean": gate_sum / active if active else 0.0,
            "uncertainty_mean": float(unc_vals.mean()) if unc_vals.numel() else 0.0,
            "latency_p50_us": percentile(lat, 50),
            "latency_p95_us": percentile(lat, 95),
            "latency_p99_us": percentile(lat, 99),
        }
