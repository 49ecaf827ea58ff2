"""StreamingSession: per-token AGA diagnostics while a model generates.

A session sees every forward step after its creation (one step per generated token
in decode). ``get_step_diagnostics`` reduces the latest step's tensors to numbers,
``get_session_summary`` covers the whole session, and ``update_knowledge`` changes
the store between tokens (the next step sees it).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING, Any

import torch

from agentic_llm.aga.runtime.step import StepRecord

if TYPE_CHECKING:
    from agentic_llm.aga.plugin import AGAPlugin

__all__ = ["StreamingSession"]


class StreamingSession:
    """Diagnostics of the forward steps since the session was created."""

    def __init__(self, plugin: AGAPlugin, buffer_size: int = 1000) -> None:
        self._plugin = plugin
        self._records: deque[StepRecord] = deque(maxlen=buffer_size)
        self._lock = threading.Lock()
        self._diag_cache: dict[int, dict[str, Any]] = {}
        self.total_steps = 0
        self.closed = False
        self.knowledge_updates = 0

    def record_step(self, record: StepRecord) -> None:
        """Add one forward step; the injection runtime calls it for every step of a
        session it holds (``InjectionRuntime.add_session``), nothing once closed."""
        if self.closed:
            return
        with self._lock:
            self._records.append(record)
            self.total_steps += 1

    def _diag(self, record: StepRecord, index: int) -> dict[str, Any]:
        d = record.to_diagnostics()
        d["step"] = index
        d["engine_step"] = record.step
        return d

    def get_step_diagnostics(self) -> dict[str, Any]:
        """Diagnostics of the latest step: ``step``, ``aga_applied``, ``gate_mean``, ..."""
        with self._lock:
            if not self._records:
                return {"step": 0, "aga_applied": False, "gate_mean": 0.0, "gate_max": 0.0,
                        "layers_hooked": 0, "layers_applied": 0, "uncertainty_mean": None,
                        "knowledge_visible": False, "latency_us": 0.0, "failed_layers": 0}
            record, index = self._records[-1], self.total_steps
        return self._diag(record, index)

    def get_all_diagnostics(self) -> list[dict[str, Any]]:
        """Diagnostics of every buffered step, oldest first."""
        with self._lock:
            recs = list(self._records)
            first = self.total_steps - len(recs) + 1
        return [self._diag(r, first + i) for i, r in enumerate(recs)]

    def get_session_summary(self) -> dict[str, Any]:
        """``total_steps``, ``injected_steps``, ``injection_rate``, gate and latency means."""
        diags = self.get_all_diagnostics()
        injected = [d for d in diags if d["aga_applied"]]
        n = len(diags)
        return {
            "total_steps": self.total_steps,
            "buffered_steps": n,
            "injected_steps": len(injected),
            "injection_rate": len(injected) / n if n else 0.0,
            "avg_gate": (sum(d["gate_mean"] for d in injected) / len(injected)) if injected else 0.0,
            "avg_latency_us": (sum(d["latency_us"] for d in diags) / n) if n else 0.0,
            "failed_layers": sum(d["failed_layers"] for d in diags),
            "knowledge_updates": self.knowledge_updates,
        }

    def update_knowledge(self, id: str, key: torch.Tensor, value: torch.Tensor,
                         **kwargs: Any) -> bool:
        """Register or replace knowledge mid-stream (audited as ``update``)."""
        ok = self._plugin.register(id, key, value, _operation="update", **kwargs)
        self.knowledge_updates += 1
        return ok

    def close(self) -> dict[str, Any]:
        """Stop recording; returns the final summary."""
        summary = self.get_session_summary()
        self.closed = True
        return summary

    def __enter__(self) -> StreamingSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
