"""What one forward step knows (StepState) and what it leaves behind (StepRecord)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from agentic_llm.aga.gate.decay import DecayState

__all__ = ["StepState", "StepRecord"]


@dataclass
class StepRecord:
    """Tensors one step produced, reduced to numbers only when diagnostics are read."""

    step: int
    num_rows: int
    token_rows: torch.Tensor
    is_last_token: torch.Tensor | None
    request_ids: list[str] = field(default_factory=list)
    layer_gates: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    uncertainty: torch.Tensor | None = None
    latency_us: float = 0.0
    failed: int = 0
    knowledge_visible: bool = False

    def _last_mask(self) -> torch.Tensor:
        if self.is_last_token is not None:
            return self.is_last_token
        mask = torch.zeros_like(self.token_rows, dtype=torch.bool)
        mask[-1] = True
        return mask

    def to_diagnostics(self) -> dict[str, Any]:
        """Per-step summary over the tokens whose logits are sampled."""
        last = self._last_mask()
        applied_layers = 0
        gates: list[torch.Tensor] = []
        for _, g in self.layer_gates:
            g_last = g.float()[last]
            gates.append(g_last)
            applied_layers += int(bool((g_last > 0).any()))
        stacked = torch.stack(gates) if gates else torch.zeros(0, 1)
        active = stacked[stacked > 0]
        unc = self.uncertainty.float()[last] if self.uncertainty is not None else None
        return {
            "step": self.step,
            "aga_applied": applied_layers > 0,
            "gate_mean": float(active.mean()) if active.numel() else 0.0,
            "gate_max": float(stacked.max()) if stacked.numel() else 0.0,
            "layers_hooked": len(self.layer_gates),
            "layers_applied": applied_layers,
            "uncertainty_mean": float(unc.mean()) if unc is not None and unc.numel() else None,
            "knowledge_visible": self.knowledge_visible,
            "latency_us": self.latency_us,
            "failed_layers": self.failed,
        }

    def row_diagnostics(self) -> list[dict[str, Any]]:
        """Per batch row: whether knowledge reached its sampled token, and the gate."""
        last = self._last_mask()
        rows = self.token_rows[last].tolist()
        out: list[dict[str, Any]] = []
        per_layer = [g.float()[last] for _, g in self.layer_gates]
        for j, r in enumerate(rows):
            vals = [float(g[j]) for g in per_layer]
            active = [v for v in vals if v > 0]
            out.append({
                "row": r,
                "request_id": self.request_ids[r] if r < len(self.request_ids) else "",
                "aga_applied": bool(active),
                "gate_mean": sum(active) / len(active) if active else 0.0,
                "layers_applied": len(active),
            })
        return out


@dataclass
class StepState:
    """Inputs every hooked layer of one forward step shares."""

    record: StepRecord
    token_rows: torch.Tensor
    row_namespaces: tuple[tuple[str, ...], ...]
    invisible: torch.Tensor | None  # [T, S] slots a token may not use; None: nothing visible
    gate_base: torch.Tensor | None  # [T] Gate-1 (early exit applied) from the previous entropy
    decay: DecayState
    store_version: int
    retrieval_done: bool = False
