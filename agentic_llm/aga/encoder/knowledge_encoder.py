"""KnowledgeEncoder: text fact -> (routing key, knowledge value) using the host model.

A fact is a prompt and the continuation it should get ("The lead engineer of Acme is" ->
" Alice"). The encoder runs the host model on the prompt and reads the attention
output of the injection layer (the plugin's first hooked layer) at the prompt's last
token:

* key: that hidden state through the injector's query projection, i.e. exactly the
  query the same prompt (or a close paraphrase) will produce at inference time;
* value: the vector that, added at that layer and token with the plugin's gate,
  makes the model prefer the target. It is found by a few steps of gradient descent
  on the target's cross-entropy with the model frozen (only the value vector is a
  variable), stopping once the target leads the runner-up by ``encoder_margin``
  nats, and kept inside the ``value_norm_target`` ball so the store's clipping leaves
  it unchanged.

Works with models attached through the Hugging Face adapter (the engine can share a
checkpoint with a transformers copy of the model for encoding).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from agentic_llm.aga.adapter.huggingface import attention_module, decoder_layers
from agentic_llm.aga.config import AGAConfig
from agentic_llm.aga.operator.bottleneck_injector import BottleneckInjector
from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["KnowledgeEncoder", "EncodedFact"]


@dataclass
class EncodedFact:
    """An encoded fact, ready for ``AGAPlugin.register``."""

    key: torch.Tensor
    value: torch.Tensor
    target_id: int
    steps: int
    margin: float


class KnowledgeEncoder:
    """Encodes facts with a transformers model at one decoder layer.

    Args:
        model: the host transformers causal LM.
        layer: the injection layer (non-negative index).
        injector: the plugin's injector (for the query projection).
        config: the plugin's config (gate scale, value norm, optimisation settings).
        tokenizer: optional; anything with ``encode(text) -> list[int]`` (transformers
            tokenizer) or ``encode(text).ids`` (tokenizers.Tokenizer).
    """

    def __init__(self, model: torch.nn.Module, layer: int, injector: BottleneckInjector,
                 config: AGAConfig, tokenizer: Any = None,
                 suppress: Callable[[], Any] | None = None) -> None:
        self.model = model
        self.layer = layer
        self.injector = injector
        self.config = config
        self.tokenizer = tokenizer
        self._attn = attention_module(decoder_layers(model)[layer])
        self._suppress = suppress

    # -- tokens --------------------------------------------------------------------
    def tokens(self, text: str | Sequence[int]) -> list[int]:
        """Token ids of ``text`` (ids pass through)."""
        if not isinstance(text, str):
            return [int(t) for t in text]
        if self.tokenizer is None:
            raise AgenticError(ErrorCode.INVALID_REQUEST,
                               "text knowledge needs a tokenizer; pass tokenizer= or token ids")
        enc = self.tokenizer.encode(text)
        ids = getattr(enc, "ids", enc)
        return [int(t) for t in ids]

    # -- model runs ------------------------------------------------------------------
    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _run(self, ids: list[int], edit: Callable[[torch.Tensor], torch.Tensor] | None,
             capture: list[torch.Tensor] | None) -> torch.Tensor:
        def hook(module: torch.nn.Module, args: Any, output: Any) -> Any:
            hidden = output[0] if isinstance(output, tuple) else output
            if capture is not None:
                capture.append(hidden)
            if edit is None:
                return None
            new = edit(hidden)
            return (new, *output[1:]) if isinstance(output, tuple) else new

        handle = self._attn.register_forward_hook(hook)
        ctx = self._suppress() if self._suppress is not None else contextlib.nullcontext()
        try:
            with ctx:
                x = torch.tensor([ids], device=self._device())
                out = self.model(input_ids=x)
        finally:
            handle.remove()
        return out.logits[0, -1]

    def hidden_states(self, text: str | Sequence[int]) -> torch.Tensor:
        """``[L, H]`` attention output of the injection layer for ``text`` (no injection)."""
        ids = self.tokens(text)
        cap: list[torch.Tensor] = []
        with torch.no_grad():
            self._run(ids, None, cap)
        return cap[0][0].detach()

    def key_for(self, text: str | Sequence[int]) -> torch.Tensor:
        """The routing key of ``text``: its last token's query."""
        h = self.hidden_states(text)[-1:]
        with torch.no_grad():
            return self.injector.project_query(h)[0].float()

    # -- encoding --------------------------------------------------------------------
    def encode(self, prompt: str | Sequence[int], target: str | int) -> EncodedFact:
        """Encode "``prompt`` -> ``target``" (target text: its first token is used)."""
        ids = self.tokens(prompt)
        if not ids:
            raise AgenticError(ErrorCode.INVALID_REQUEST, "fact prompt is empty")
        if isinstance(target, int):
            target_id = target
        else:
            target_ids = self.tokens(target)
            if not target_ids:
                raise AgenticError(ErrorCode.INVALID_REQUEST, "fact target is empty")
            target_id = target_ids[0]
        vocab = self.model.get_output_embeddings().weight.shape[0]  # type: ignore[union-attr,operator]
        if not 0 <= target_id < vocab:
            raise AgenticError(ErrorCode.INVALID_REQUEST,
                               f"target token {target_id} is outside the vocabulary (0..{vocab - 1})")
        key = self.key_for(ids)
        cfg = self.config
        scale = cfg.max_gate
        radius = cfg.value_norm_target if cfg.enable_norm_clipping else float("inf")
        p = next(self.model.parameters())
        v = torch.zeros(cfg.hidden_dim, device=p.device,
                        dtype=torch.float32, requires_grad=True)
        opt = torch.optim.Adam([v], lr=cfg.encoder_lr)
        tgt = torch.tensor([int(target_id)], device=p.device)
        margin = float("-inf")
        steps = 0

        def edit(hidden: torch.Tensor) -> torch.Tensor:
            add = torch.zeros_like(hidden)
            add[:, -1] = (scale * v).to(hidden.dtype)
            return hidden + add

        for steps in range(1, cfg.encoder_steps + 1):  # noqa: B007 - steps is reported
            with torch.enable_grad():
                logits = self._run(ids, edit, None).float()
                margin = self._margin(logits, int(target_id))
                if margin >= cfg.encoder_margin:
                    break
                loss = torch.nn.functional.cross_entropy(logits[None], tgt)
                (grad,) = torch.autograd.grad(loss, [v])
            v.grad = grad
            opt.step()
            with torch.no_grad():
                n = v.norm()
                if n > radius:
                    v.mul_(radius / n)
        value = v.detach().clone()
        return EncodedFact(key, value, int(target_id), steps, margin)

    @staticmethod
    def _margin(logits: torch.Tensor, target: int) -> float:
        other = logits.detach().clone()
        other[target] = float("-inf")
        return float((logits[target] - other.max()).detach())

    def mean_hidden(self, texts: Sequence[str | Sequence[int]]) -> torch.Tensor:
        """Mean attention output of the injection layer over every token of ``texts``."""
        rows = [self.hidden_states(t).float() for t in texts]
        if not rows:
            raise AgenticError(ErrorCode.INVALID_REQUEST, "calibration needs at least one text")
        return torch.cat(rows).mean(dim=0)
