"""A decode step without the generic per-layer dispatch.

When every row of a step decodes one token over the attention backend's dense
workspace (no hooks, no attention capture), each layer is the same short list of
tensor ops. At small model sizes the Python around those ops (module calls,
per-layer checks, backend dispatch, view caches) costs about as much as the ops,
so this runner keeps each layer's tensors in a flat tuple and runs the ops
directly: the same ops, in the same order, on the same tensors as the generic
path, so logits are bit-identical to it.

The tuples are rebuilt whenever a parameter was replaced (or a fused projection
given up), so in-place and replacing weight updates are both seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
import torch.nn.functional as F

from agentic_llm.engine.forward import ForwardBatch
from agentic_llm.engine.kv.pool import PagedKVPool

if TYPE_CHECKING:
    from agentic_llm.engine.attention.torch_sdpa import DecodeState
    from agentic_llm.engine.models.compiled_decode import CompiledDecode
    from agentic_llm.engine.models.decoder import CausalLM
    from agentic_llm.engine.models.layers import RMSNorm

__all__ = ["DecodeRunner", "LayerWeights"]


class LayerWeights(NamedTuple):
    """One decoder layer's tensors for a decode step (fused projections, transposed storage)."""

    ln1: RMSNorm
    qkv: torch.Tensor
    qkv_bias: torch.Tensor | None
    q_norm: RMSNorm | None
    k_norm: RMSNorm | None
    o: torch.Tensor
    o_bias: torch.Tensor | None
    ln2: RMSNorm
    gate_up: torch.Tensor
    gate_up_bias: torch.Tensor | None
    down: torch.Tensor
    down_bias: torch.Tensor | None


@dataclass
class _Snapshot:
    layers: list[LayerWeights]
    flat: list[Any] | None  # the compiled function's weight list, built at first use
    # (parameter dict, name, parameter): the weights the tuples were built from
    owners: list[tuple[dict[str, Any], str, torch.nn.Parameter]]


def rms_norm(norm: RMSNorm, x: torch.Tensor) -> torch.Tensor:
    """``norm(x)`` without the module call (the same arithmetic as ``RMSNorm.forward``)."""
    w = norm.weight
    if x.dtype == torch.float32 and w.dtype == torch.float32:
        return F.rms_norm(x, (x.shape[-1],), w, norm.eps)
    return norm(x)


class DecodeRunner:
    """Runs pure-decode steps of one :class:`CausalLM` through its layers' flat tuples.

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
        self._snap: _Snapshot | None = None

    def weights(self) -> list[LayerWeights] | None:
        """The layers' tuples, rebuilt if any parameter changed; None when some layer
        no longer has its fused projections (the generic path then runs)."""
        snap = self._snap
        if snap is not None and all(d.get(n) is p for d, n, p in snap.owners):
            return snap.layers
        self._snap = snap = self._build()
        return snap.layers if snap is not None else None

    def _build(self) -> _Snapshot | None:
        from agentic_llm.engine.models.decoder import DecoderLayer

        layers: list[LayerWeights] = []
        for layer in self.model.model.layers:
            assert isinstance(layer, DecoderLayer)
            attn, mlp = layer.self_attn, layer.mlp
            fused_mlp = mlp._fused_weights()
            if attn._qkv is None or attn._ptrs() != attn._qkv_ptrs or fused_mlp is None:
                return None
            layers.append(LayerWeights(
                ln1=layer.input_layernorm, qkv=attn._qkv, qkv_bias=attn._qkv_bias,
                q_norm=attn.q_norm, k_norm=attn.k_norm,
                o=attn.o_proj.weight, o_bias=attn.o_proj.bias,
                ln2=layer.post_attention_layernorm,
                gate_up=fused_mlp[0], gate_up_bias=fused_mlp[1],
                down=mlp.down_proj.weight, down_bias=mlp.down_proj.bias,
            ))
        owners = [
            (mod._parameters, name, p)
            for mod in self.model.modules()
            for name, p in mod._parameters.items()
            if p is not None
        ]
        return _Snapshot(layers, None, owners)

    def try_run(self, batch: ForwardBatch, pool: PagedKVPool, backend: object, h: torch.Tensor) -> torch.Tensor | None:
        """Logits ``[rows, vocab]`` (float32) of a pure-decode step from the embedded
        tokens ``h``; None when the step is not one (the caller runs the generic path).

        ``backend.prepare`` must have run for ``batch``.
        """
        decode_state = getattr(backend, "decode_state", None)
        if not self.enabled or decode_state is None or h.shape[0] != batch.num_rows:
            return None
        cfg = self.model.config
        heads, kvh, d = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        st = decode_state(batch, pool, h.dtype)
        if st is None:
            return None
        layers = self.weights()
        if layers is None:
            return None
        self.num_steps += 1
        comp = self.compiled
        if comp is not None and comp.active and h.shape[0] >= comp.MIN_ROWS:
            logits = self._run_compiled(comp, layers, st, batch, h)
            if logits is not None:
                return logits
        return self._run(layers, st, batch, h, heads, kvh, d)

    def _run_compiled(
        self, comp: CompiledDecode, layers: list[LayerWeights], st: DecodeState, batch: ForwardBatch, h: torch.Tensor
    ) -> torch.Tensor | None:
        snap = self._snap
        assert snap is not None and batch.rope is not None
        if snap.flat is None:
            m = self.model
            snap.flat = comp.flat_weights(layers, m.model.norm.weight, m.lm_head.weight, m.lm_head.bias)
            if not comp.weights_ok(snap.flat):
                return None
        out = comp.run(h, batch.positions, batch.rope.cos, batch.rope.sin_signed, st.ws_full, snap.flat,
                       layers[0].q_norm is not None, before=batch.on_gil_free)
        if out is None:
            return None
        logits, kv = out  # kv: [layers, 2 * kv_heads, rows, d]
        st.pool_all.index_copy_(2, st.slots, kv)
        st.ws_all.index_copy_(2, st.ws_idx, kv)
        return logits

    def _run(
        self,
        layers: list[LayerWeights],
        st: DecodeState,
        batch: ForwardBatch,
        h: torch.Tensor,
        heads: int,
        kvh: int,
        d: int,
    ) -> torch.Tensor:
        model = self.model
        rope = batch.rope
        assert rope is not None
        cos, sin = rope.cos, rope.sin_signed
        rows = h.shape[0]
        groups = heads // kvh
        half = d // 2
        scale = d**-0.5
        slots, ws_idx = st.slots, st.ws_idx
        mask = st.group.mask(groups, h.dtype, True)
        hd = heads * d
        for i, w in enumerate(layers):
            qkv = F.linear(rms_norm(w.ln1, h), w.qkv, w.qkv_bias).view(rows, heads + 2 * kvh, d)
            if w.q_norm is None:
                qk = qkv[:, : heads + kvh]
                torch.addcmul(qk * cos, torch.roll(qk, half, dims=-1), sin, out=qk)
                q = qkv[:, :heads]
                kv = qkv[:, heads:].transpose(0, 1)  # [2 * kv_heads, rows, d]: K heads then V heads
            else:
                q = rms_norm(w.q_norm, qkv[:, :heads])
                q = torch.addcmul(q * cos, torch.roll(q, half, dims=-1), sin)
                k = rms_norm(w.k_norm, qkv[:, heads : heads + kvh])  # type: ignore[arg-type]
                k = torch.addcmul(k * cos, torch.roll(k, half, dims=-1), sin)
                kv = torch.cat((k, qkv[:, heads + kvh :]), dim=1).transpose(0, 1)
            st.pool_flat[i].index_copy_(1, slots, kv)
            st.ws_flat[i].index_copy_(1, ws_idx, kv)
            qg = q.view(rows, kvh, groups, d).transpose(0, 1)
            a = F.scaled_dot_product_attention(qg, st.keys[i], st.values[i], attn_mask=mask, scale=scale)
            h = h + F.linear(a.transpose(0, 1).reshape(rows, hd), w.o, w.o_bias)
            gu = F.linear(rms_norm(w.ln2, h), w.gate_up, w.gate_up_bias)
            inter = gu.shape[-1] // 2
            act = F.silu(gu[:, :inter], inplace=True).mul_(gu[:, inter:])
            h = h + F.linear(act, w.down, w.down_bias)
        last = rms_norm(model.model.norm, h)
        return F.linear(last, model.lm_head.weight, model.lm_head.bias).float()
