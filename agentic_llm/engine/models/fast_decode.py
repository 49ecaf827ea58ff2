"""A decode step without the generic per-layer dispatch.

When every row of a step decodes one token over the attention backend's dense
workspace (no hooks, no attention capture), attention is the same few ops at every
layer. At small model sizes the Python around the ops (module calls, backend
dispatch, per-layer checks) costs about as much as the ops, so this runner calls
:func:`~agentic_llm.engine.models.decoder_step.decoder_layer` directly with the
model's :class:`~agentic_llm.engine.models.decoder_step.ModelWeights` and an
``attend`` that writes the new K/V into the pool and the workspace and attends over
the workspace (``torch_sdpa.decode_attention``, its shared prefix read once): the
same ops, in the same order, on the same tensors as the generic path, so logits are
bit-identical to it.

The weights come from :meth:`CausalLM.weights`, which rebuilds them when a parameter
was replaced; a projection that lost its fusion sends steps to the generic path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from agentic_llm.engine.attention.torch_sdpa import decode_attention
from agentic_llm.engine.forward import ForwardBatch
from agentic_llm.engine.kv.pool import PagedKVPool
from agentic_llm.engine.models.decoder_step import (
    Attend,
    LayerShape,
    LayerStep,
    ModelWeights,
    decoder_layer,
    final_logits,
)

if TYPE_CHECKING:
    from agentic_llm.engine.attention.torch_sdpa import DecodeState
    from agentic_llm.engine.models.compiled_decode import CompiledDecode
    from agentic_llm.engine.models.decoder import CausalLM

__all__ = ["DecodeRunner", "workspace_attend"]


def workspace_attend(st: DecodeState, shape: LayerShape, dtype: torch.dtype) -> Attend:
    """Attention of one-token decode rows over the workspace of ``st``: the new K/V go
    into the pool and the workspace, then ``decode_attention`` per layer (the
    arithmetic of the ``torch_sdpa`` backend's decode group)."""
    rows = st.slots.shape[0]
    kvh, d = shape.kv_heads, shape.head_dim
    groups = shape.heads // kvh
    scale = shape.scale
    slots, ws_idx = st.slots, st.ws_idx
    pool_flat, ws_flat, keys, values = st.pool_flat, st.ws_flat, st.keys, st.values
    mask = st.group.mask(groups, dtype, True)
    shared = st.group.shared
    lens = st.group.lens() if st.slots.device.type == "cpu" else None

    def attend(i: int, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        kv = kv.transpose(0, 1)  # [2 * kv_heads, rows, d]: K heads then V heads
        pool_flat[i].index_copy_(1, slots, kv)
        ws_flat[i].index_copy_(1, ws_idx, kv)
        qg = q.view(rows, kvh, groups, d).transpose(0, 1)
        return decode_attention(qg, keys[i], values[i], mask, scale, shared, lens).transpose(0, 1)

    return attend


class DecodeRunner:
    """Runs pure-decode steps of one :class:`CausalLM` through the shared layer function.

    Args:
        model: the model whose parameters the runner reads (never copies).

    Attributes:
        enabled: False sends every step through the generic path.
        num_steps: steps this runner computed (eagerly or compiled).
        compiled: the optional compiled step (None: eager only).
    """

    def __init__(self, model: CausalLM) -> None:
        self.model = model
        self.enabled = True
        self.num_steps = 0
        self.compiled: CompiledDecode | None = None
        # the compiled function's weight list and the weights it was built from
        self._flat: tuple[ModelWeights, list[Any]] | None = None

    def try_run(
        self, batch: ForwardBatch, pool: PagedKVPool, backend: object, h: torch.Tensor, weights: ModelWeights
    ) -> torch.Tensor | None:
        """Logits ``[rows, vocab]`` (float32) of a pure-decode step from the embedded
        tokens ``h``; None when the step is not one (the caller runs the generic path).

        ``backend.prepare`` must have run for ``batch``; ``batch.rope`` must be set.
        """
        decode_state = getattr(backend, "decode_state", None)
        if not self.enabled or decode_state is None or h.shape[0] != batch.num_rows or not weights.fused:
            return None
        st = decode_state(batch, pool, h.dtype)
        if st is None:
            return None
        self.num_steps += 1
        comp = self.compiled
        if comp is not None and comp.active and h.shape[0] >= comp.MIN_ROWS:
            logits = self._run_compiled(comp, weights, st, batch, h)
            if logits is not None:
                return logits
        rope = batch.rope
        assert rope is not None
        shape = self.model.shape
        step = LayerStep(shape, rope.cos, rope.sin_signed, workspace_attend(st, shape, h.dtype))
        for i, w in enumerate(weights.layers):
            h = decoder_layer(h, w, i, step)
        return final_logits(h, weights.norm, weights.head, weights.head_bias, shape.eps)

    def _run_compiled(
        self, comp: CompiledDecode, weights: ModelWeights, st: DecodeState, batch: ForwardBatch, h: torch.Tensor
    ) -> torch.Tensor | None:
        assert batch.rope is not None
        if self._flat is None or self._flat[0] is not weights:
            self._flat = (weights, comp.flat_weights(weights))
            if not comp.weights_ok(self._flat[1]):
                return None
        out = comp.run(h, batch.positions, batch.rope.cos, batch.rope.sin_signed, st.ws_full, self._flat[1],
                       before=batch.on_gil_free)
        if out is None:
            return None
        logits, kv = out  # kv: [layers, 2 * kv_heads, rows, d]
        st.pool_all.index_copy_(2, st.slots, kv)
        st.ws_all.index_copy_(2, st.ws_idx, kv)
        return logits
