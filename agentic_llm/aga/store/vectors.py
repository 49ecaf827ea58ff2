"""Validation of vectors handed to the store (keys, values)."""

from __future__ import annotations

from typing import Any

import torch

from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["check_vector"]


def check_vector(t: Any, dim: int, name: str, device: torch.device) -> torch.Tensor:
    """``t`` as a finite float32 ``[dim]`` vector on ``device``; AgenticError otherwise."""
    if not isinstance(t, torch.Tensor):
        try:
            t = torch.as_tensor(t, dtype=torch.float32)
        except (TypeError, ValueError) as exc:
            raise AgenticError(ErrorCode.INVALID_REQUEST, f"{name} is not a vector: {exc}") from exc
    t = t.detach().reshape(-1) if t.dim() == 2 and 1 in t.shape else t.detach()
    if t.dim() != 1 or t.shape[0] != dim:
        raise AgenticError(ErrorCode.INVALID_REQUEST,
                           f"{name} must have shape [{dim}], got {list(t.shape)}")
    t = t.to(device=device, dtype=torch.float32)
    if not bool(torch.isfinite(t).all()):
        raise AgenticError(ErrorCode.NUMERIC, f"{name} contains NaN or infinity")
    if name == "key" and float(t.norm()) == 0.0:
        raise AgenticError(ErrorCode.INVALID_REQUEST, "key must not be the zero vector")
    return t
