"""Per-step diagnostics a request may ask for.

Logprob and entropy describe the model's own distribution (temperature 1, before
any constraint mask): they say how sure the model was, not what the sampler allowed.
Attention weights are computed explicitly, only for the chosen layers and only for
the requesting rows, over a bounded window of the most recent positions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["DiagnosticsConfig", "StepDiagnostics", "entropy_and_logprobs"]


@dataclass(frozen=True)
class DiagnosticsConfig:
    """What to record at each sampled step.

    Attributes:
        top_k: alternatives to report per step (0 = none).
        attention_layers: layers whose attention weights to record.
        attention_window: most recent key positions kept per step (>= 1).
    """

    top_k: int = 5
    attention_layers: tuple[int, ...] = ()
    attention_window: int = 32

    def __post_init__(self) -> None:
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if self.attention_window < 1:
            raise ValueError(f"attention_window must be >= 1, got {self.attention_window}")
        object.__setattr__(self, "attention_layers", tuple(int(x) for x in self.attention_layers))


@dataclass
class StepDiagnostics:
    """What happened at one sampled step.

    Attributes:
        position: position of the sampled token in the sequence.
        token_id: the token chosen.
        logprob: its log-probability under the model.
        entropy: entropy (nats) of the model's next-token distribution.
        top_alternatives: the ``top_k`` most likely ``(token_id, logprob)`` pairs.
        attention: layer -> ``[heads][window]`` weights of the step's query over the
            most recent keys, oldest first; ``attention_start`` is the first key's position.
    """

    position: int
    token_id: int
    logprob: float
    entropy: float
    top_alternatives: list[tuple[int, float]] = field(default_factory=list)
    attention: dict[int, list[list[float]]] = field(default_factory=dict)
    attention_start: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "position": self.position,
            "token_id": self.token_id,
            "logprob": self.logprob,
            "entropy": self.entropy,
            "top_alternatives": [list(p) for p in self.top_alternatives],
            "attention": {str(k): v for k, v in self.attention.items()},
            "attention_start": self.attention_start,
        }


def entropy_and_logprobs(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Entropy ``[rows]`` and log-probabilities ``[rows, vocab]`` of float32 logits."""
    logp = torch.log_softmax(logits, dim=-1)
    ent = -(logp.exp() * logp.nan_to_num(neginf=0.0)).sum(-1)
    return ent, logp
