"""EntropyGateSystem: the three gates, as tensor masks (no host sync, no branches on values).

* Gate-0, namespace prior: a token may only route to slots of its request's
  namespaces (the store's visibility matrix); a token with none visible gets no slot.
* Gate-1, uncertainty: the gate opens with the model's uncertainty. Below ``tau_low``
  it is closed; it ramps linearly to ``max_gate`` at ``tau_high`` and stays there.
* Gate-2, top-k routing with a similarity floor (applied in the injector).
* Early exit: gate values under ``early_exit_threshold`` become exactly zero, so the
  fusion leaves those tokens bit-identical.

The next-token entropy of the current step is unknown while the layers run, so the
uncertainty is either the previous step's entropy of the token's row
(``prev_entropy``), the variance of the hooked attention output (``hidden_variance``),
or a constant. Rows without a previous step use ``unknown_uncertainty``.
"""

from __future__ import annotations

import torch

from agentic_llm.aga.config import AGAConfig

__all__ = ["EntropyGateSystem"]


class EntropyGateSystem:
    """Computes per-token gate values from an uncertainty signal."""

    def __init__(self, config: AGAConfig) -> None:
        self.config = config
        self.source = config.gate1_uncertainty_source
        self._span = config.tau_high - config.tau_low

    @property
    def per_layer(self) -> bool:
        """True when the uncertainty depends on the layer's hidden state."""
        return self.source == "hidden_variance"

    def uncertainty_from_rows(
        self, prev_entropy: torch.Tensor | None, token_rows: torch.Tensor, num_tokens: int,
        device: torch.device,
    ) -> torch.Tensor:
        """``[T]`` float32 uncertainty from the rows' previous-step entropy."""
        unknown = self.config.unknown_uncertainty
        if self.source == "constant" or prev_entropy is None:
            return torch.full((num_tokens,), unknown, device=device, dtype=torch.float32)
        per_row = torch.nan_to_num(prev_entropy.to(device=device, dtype=torch.float32), nan=unknown)
        return per_row[token_rows]

    @staticmethod
    def hidden_variance(hidden: torch.Tensor) -> torch.Tensor:
        """``[T]`` variance of each token's hidden vector (the proxy signal)."""
        return hidden.float().var(dim=-1)

    def gate1(self, uncertainty: torch.Tensor) -> torch.Tensor:
        """Gate-1 value per token in ``[0, max_gate]``."""
        cfg = self.config
        if not cfg.gate1_enabled:
            return torch.full_like(uncertainty, cfg.max_gate)
        ramp = ((uncertainty - cfg.tau_low) / self._span).clamp(0.0, 1.0)
        return ramp * cfg.max_gate

    def finalize(self, gate: torch.Tensor) -> torch.Tensor:
        """Apply the early-exit floor: small gates become exactly zero."""
        cfg = self.config
        if not cfg.early_exit_enabled:
            return gate
        return gate * (gate >= cfg.early_exit_threshold)
