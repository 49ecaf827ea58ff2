"""LLMAdapter: how the plugin hooks into one kind of model."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import torch

from agentic_llm.aga.runtime.injection import InjectionRuntime
from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["LLMAdapter", "NamespaceProvider", "resolve_layers", "select_adapter"]

#: returns the per-row namespaces of the current forward on this thread (None: defaults)
NamespaceProvider = Callable[[int], Sequence[Sequence[str]] | None]


class LLMAdapter(ABC):
    """Installs and removes the plugin's hooks on one model."""

    @abstractmethod
    def num_layers(self, model: Any) -> int:
        """Decoder layers of ``model``."""

    @abstractmethod
    def device_and_dtype(self, model: Any) -> tuple[torch.device, torch.dtype] | None:
        """Where the model's weights live (None when unknown)."""

    @abstractmethod
    def attach(self, model: Any, runtime: InjectionRuntime, namespaces: NamespaceProvider) -> None:
        """Install hooks on ``runtime.layers``."""

    @abstractmethod
    def detach(self) -> None:
        """Remove every hook this adapter installed."""


def resolve_layers(requested: Sequence[int], num_layers: int) -> list[int]:
    """Non-negative layer indices; empty ``requested`` means one layer at 2/3 depth."""
    if num_layers < 1:
        raise AgenticError(ErrorCode.UNSUPPORTED_MODEL, "model has no decoder layers")
    if not requested:
        return [min(num_layers - 1, (2 * num_layers) // 3)]
    out = []
    for i in requested:
        j = i + num_layers if i < 0 else i
        if not 0 <= j < num_layers:
            raise AgenticError(ErrorCode.INVALID_CONFIG,
                               f"AGA layer {i} is out of range for a model with {num_layers} layers")
        out.append(j)
    return sorted(set(out))


def select_adapter(model: Any) -> LLMAdapter:
    """The engine adapter for a HookRegistry (or anything with ``.hooks`` / ``.model.hooks``),
    the Hugging Face adapter for a torch module."""
    from agentic_llm.aga.adapter.engine import EngineAdapter, find_registry
    from agentic_llm.aga.adapter.huggingface import HuggingFaceAdapter

    if find_registry(model) is not None:
        return EngineAdapter()
    if isinstance(model, torch.nn.Module):
        return HuggingFaceAdapter()
    raise AgenticError(ErrorCode.UNSUPPORTED_MODEL,
                       f"cannot attach AGA to {type(model).__name__}: expected a transformers "
                       "model, an engine model with .hooks, or a HookRegistry")
