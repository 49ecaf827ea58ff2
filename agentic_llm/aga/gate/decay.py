"""PersistenceDecay: knowledge injected at one layer weakens the gate of later layers.

Each forward pass starts fresh (``begin``); every hooked layer multiplies its gate by
``factor()`` and reports what it injected with ``update``. State is per thread
(``threading.local``), so concurrent forwards on different threads never share it.
All state is tensors updated in place-free tensor ops, so no host sync is needed.

Strategies (``n`` = layers that already injected into the token, ``c`` = sum of the
gates already applied): exponential ``gamma ** n``; linear ``max(0, 1 - (1 - gamma) n)``;
adaptive ``gamma ** c``. A token whose ``c`` reaches ``hard_reset_threshold`` gets no
more knowledge in this pass (hard reset).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch

from agentic_llm.aga.config import AGAConfig

__all__ = ["PersistenceDecay", "DecayState"]


@dataclass
class DecayState:
    """Per-token decay bookkeeping of one forward pass."""

    injected_layers: torch.Tensor  # [T] float32
    cumulative_gate: torch.Tensor  # [T] float32


class PersistenceDecay:
    """Cross-layer decay with per-thread state."""

    def __init__(self, config: AGAConfig) -> None:
        self.enabled = config.decay_enabled
        self.strategy = config.decay_strategy
        self.gamma = config.decay_gamma
        self.hard_reset_threshold = config.decay_hard_reset_threshold
        self._local = threading.local()

    def begin(self, num_tokens: int, device: torch.device) -> DecayState:
        """Start a forward pass of ``num_tokens`` tokens on this thread."""
        z = torch.zeros(num_tokens, device=device, dtype=torch.float32)
        state = DecayState(z, z.clone())
        self._local.state = state
        return state

    def state(self) -> DecayState | None:
        """This thread's current state (None before the first ``begin``)."""
        return getattr(self._local, "state", None)

    def reset(self) -> None:
        """Hard reset of this thread's state."""
        self._local.state = None

    def factor(self, state: DecayState) -> torch.Tensor:
        """``[T]`` multiplier for the current layer's gate."""
        if not self.enabled:
            return torch.ones_like(state.cumulative_gate)
        n, c = state.injected_layers, state.cumulative_gate
        if self.strategy == "exponential":
            f = torch.pow(self.gamma, n)
        elif self.strategy == "linear":
            f = (1.0 - (1.0 - self.gamma) * n).clamp_min(0.0)
        else:
            f = torch.pow(self.gamma, c)
        return f * (c < self.hard_reset_threshold)

    def update(self, state: DecayState, gate: torch.Tensor) -> None:
        """Record the gate this layer applied to each token."""
        state.injected_layers = state.injected_layers + (gate > 0)
        state.cumulative_gate = state.cumulative_gate + gate.float()
