"""Typed hook points inside the decoder layers.

Plugins (knowledge injection, diagnostics) read and may replace hidden states at
fixed points of every decoder layer. The engine calls the hooks registered on a
model; a model with no hooks pays one empty-list check per layer.

Hidden states are *packed*: every token of every sequence in the step sits in one
``[num_tokens, hidden]`` tensor (prefill chunks and decode tokens together), and
``HookContext.token_rows`` says which batch row each token belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

import torch

__all__ = ["HookPoint", "HookContext", "DecoderHook", "HookRegistry"]


class HookPoint(StrEnum):
    """Where in a decoder layer a hook runs."""

    #: output of the attention block (after the output projection), before it is
    #: added to the residual stream. Knowledge injection works here.
    ATTN_OUTPUT = "attn_output"
    #: the residual stream leaving the layer.
    LAYER_OUTPUT = "layer_output"


@dataclass
class HookContext:
    """What a hook may know about the current forward step.

    Attributes:
        token_rows: ``[num_tokens]`` long tensor, the batch row of each packed token.
        num_rows: number of sequences in the step.
        is_last_token: ``[num_tokens]`` bool tensor, true for the token of each row
            whose logits will be sampled (the last token of a prefill chunk or the
            decode token).
        prev_entropy: ``[num_rows]`` float tensor, the next-token entropy (nats) of
            each row's previous step; ``nan`` where the row has no previous step.
        namespaces: per row, the knowledge namespaces the request may use.
        tenants: per row, the tenant id (``""`` when none).
        request_ids: per row, the engine's request id.
        extras: free slots for plugins to pass state between their own hooks.
    """

    token_rows: torch.Tensor
    num_rows: int
    is_last_token: torch.Tensor
    prev_entropy: torch.Tensor
    namespaces: list[tuple[str, ...]] = field(default_factory=list)
    tenants: list[str] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)
    extras: dict[str, object] = field(default_factory=dict)


class DecoderHook(Protocol):
    """A callable run at a hook point; returns the (possibly new) hidden states.

    It must not change the shape or dtype of ``hidden``. A hook that raises is
    the engine's business only through its plugin: plugins are expected to
    fail open (return ``hidden`` unchanged) themselves.
    """

    def __call__(
        self, point: HookPoint, layer_idx: int, hidden: torch.Tensor, ctx: HookContext
    ) -> torch.Tensor: ...


class HookRegistry:
    """Hooks attached to one model, by point and layer."""

    def __init__(self, num_layers: int) -> None:
        self.num_layers = num_layers
        self._hooks: dict[tuple[HookPoint, int], list[DecoderHook]] = {}

    def add(self, point: HookPoint, layers: list[int] | None, hook: DecoderHook) -> None:
        """Attach ``hook`` at ``point`` on ``layers`` (all layers when None)."""
        targets = range(self.num_layers) if layers is None else layers
        for layer in targets:
            if not 0 <= layer < self.num_layers:
                raise ValueError(f"layer {layer} out of range 0..{self.num_layers - 1}")
            self._hooks.setdefault((point, layer), []).append(hook)

    def remove(self, hook: DecoderHook) -> None:
        """Detach ``hook`` from every point and layer it was attached to."""
        for key in list(self._hooks):
            self._hooks[key] = [h for h in self._hooks[key] if h is not hook]
            if not self._hooks[key]:
                del self._hooks[key]

    def __bool__(self) -> bool:
        return bool(self._hooks)

    def run(
        self, point: HookPoint, layer_idx: int, hidden: torch.Tensor, ctx: HookContext | None
    ) -> torch.Tensor:
        hooks = self._hooks.get((point, layer_idx))
        if not hooks or ctx is None:
            return hidden
        for hook in hooks:
            hidden = hook(point, layer_idx, hidden, ctx)
        return hidden
