"""HuggingFaceAdapter: forward hooks on the attention modules of a transformers model.

The attention module's output (``[batch, seq, hidden]``, before the residual add) is
flattened into packed tokens for the shared runtime. The previous step's next-token
entropy comes from a forward hook on the output embedding (``lm_head``): after each
forward the entropy of every row's last logits is kept (as a tensor, no sync) and used
by the next single-token (decode) forward; a multi-token forward (a new prompt) has no
previous step.
"""

from __future__ import annotations

import threading
from typing import Any

import torch

from agentic_llm.aga.adapter.base import LLMAdapter, NamespaceProvider
from agentic_llm.aga.runtime.injection import InjectionRuntime
from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["HuggingFaceAdapter", "decoder_layers", "attention_module"]


_LAYER_PATHS = ("model.layers", "model.decoder.layers", "transformer.h", "gpt_neox.layers",
                "model.language_model.layers", "transformer.blocks", "layers")
_ATTN_NAMES = ("self_attn", "attn", "attention", "self_attention")


def _get_path(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The decoder layer modules of a transformers causal LM (LLaMA, Qwen, Mistral, GPT-2, ...)."""
    for path in _LAYER_PATHS:
        layers = _get_path(model, path)
        if isinstance(layers, torch.nn.ModuleList) and len(layers) > 0:
            return list(layers)
    raise AgenticError(ErrorCode.UNSUPPORTED_MODEL,
                       f"cannot find decoder layers in {type(model).__name__}; "
                       f"looked at {list(_LAYER_PATHS)}")


def attention_module(layer: torch.nn.Module) -> torch.nn.Module:
    """The attention sub-module of a decoder layer."""
    for name in _ATTN_NAMES:
        mod = getattr(layer, name, None)
        if isinstance(mod, torch.nn.Module):
            return mod
    raise AgenticError(ErrorCode.UNSUPPORTED_MODEL,
                       f"cannot find the attention module of {type(layer).__name__}")


class HuggingFaceAdapter(LLMAdapter):
    """Hooks attention outputs (and lm_head for the entropy signal)."""

    def __init__(self) -> None:
        self._handles: list[Any] = []
        self._local = threading.local()

    def num_layers(self, model: Any) -> int:
        return len(decoder_layers(model))

    def device_and_dtype(self, model: Any) -> tuple[torch.device, torch.dtype] | None:
        p = next(model.parameters(), None)
        return (p.device, p.dtype) if p is not None else None

    def prev_entropy(self) -> torch.Tensor | None:
        """Entropy of each row's last logits from this thread's previous forward."""
        return getattr(self._local, "entropy", None)

    def reset(self) -> None:
        """Forget the previous step (start of a new generation)."""
        self._local.entropy = None

    def attach(self, model: Any, runtime: InjectionRuntime, namespaces: NamespaceProvider) -> None:
        layers = decoder_layers(model)
        for idx in runtime.layers:
            attn = attention_module(layers[idx])
            self._handles.append(attn.register_forward_hook(self._layer_hook(idx, runtime, namespaces)))
        head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        if runtime.config.gate1_uncertainty_source == "prev_entropy" and isinstance(head, torch.nn.Module):
            self._handles.append(head.register_forward_hook(self._head_hook))

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        self.reset()

    def _head_hook(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        logits = output[0] if isinstance(output, tuple) else output
        if not isinstance(logits, torch.Tensor):
            return
        last = logits[:, -1] if logits.dim() == 3 else logits
        logp = torch.log_softmax(last.detach().float(), dim=-1)
        self._local.entropy = -(logp.exp() * logp).sum(dim=-1)

    def _layer_hook(self, layer: int, runtime: InjectionRuntime, namespaces: NamespaceProvider):  # type: ignore[no-untyped-def]
        def hook(module: torch.nn.Module, args: Any, output: Any) -> Any:
            hidden = output[0] if isinstance(output, tuple) else output
            if not isinstance(hidden, torch.Tensor) or hidden.dim() != 3:
                return None
            if runtime.is_suppressed():
                return None
            b, length, h = hidden.shape
            try:
                state = runtime.current_state()
                if layer == runtime.first_layer or state is None or state.record.num_rows != b \
                        or state.token_rows.shape[0] != b * length:
                    rows = torch.arange(b, device=hidden.device).repeat_interleave(length)
                    last = torch.zeros(b, length, dtype=torch.bool, device=hidden.device)
                    last[:, -1] = True
                    prev = self.prev_entropy() if length == 1 else None
                    if prev is not None and prev.shape[0] != b:
                        prev = None
                    state = runtime.begin_step(token_rows=rows, num_rows=b,
                                               row_namespaces=namespaces(b), prev_entropy=prev,
                                               is_last_token=last.reshape(-1))
            except Exception:  # noqa: BLE001 - fail-open
                if not runtime.absorb_setup_failure():
                    raise
                return None
            flat = hidden.reshape(b * length, h)
            new = runtime.run_layer(layer, flat, state)
            if new is flat:
                return None
            new = new.view(b, length, h)
            return (new, *output[1:]) if isinstance(output, tuple) else new

        return hook
