"""The decoder-only transformer used for the Llama, Qwen2 and Qwen3 families.

Parameter names follow the Hugging Face checkpoints, so a state dict loads as is.
The modules hold the parameters; a layer's arithmetic is
:func:`~agentic_llm.engine.models.decoder_step.decoder_layer`, the same function the
flat decode runner and the compiled step call. K/V never live in the module:
attention reads and writes them through the paged pool and the step's block tables
(see :class:`~agentic_llm.engine.forward.ForwardBatch`).
"""

from __future__ import annotations

import torch
from torch import nn

from agentic_llm.engine.attention.base import AttentionBackend
from agentic_llm.engine.config import ModelConfig
from agentic_llm.engine.forward import ForwardBatch
from agentic_llm.engine.hooks import HookContext, HookPoint, HookRegistry
from agentic_llm.engine.kv.pool import PagedKVPool
from agentic_llm.engine.models.decoder_step import (
    Attend,
    LayerShape,
    LayerStep,
    LayerWeights,
    ModelWeights,
    attention_inputs,
    decoder_layer,
    final_logits,
    mlp,
    output_projection,
    rms_norm,
)
from agentic_llm.engine.models.fast_decode import DecodeRunner
from agentic_llm.engine.models.layers import (
    FusedProjection,
    ParameterWatch,
    ProjectionBias,
    RMSNorm,
    RotaryEmbedding,
    SwiGLU,
    projection_weights,
    store_transposed,
)
from agentic_llm.engine.models.packed import WeightPacks

__all__ = ["Attention", "CausalLM", "DecoderLayer"]


class Attention(nn.Module):
    """Grouped-query attention's parameters, with optional per-head q/k RMSNorm (Qwen3)."""

    def __init__(self, cfg: ModelConfig, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.heads = cfg.num_attention_heads
        self.kv_heads = cfg.num_key_value_heads
        self.head_dim = cfg.head_dim
        b = cfg.attention_bias
        self.q_proj = nn.Linear(cfg.hidden_size, self.heads * self.head_dim, bias=b)
        self.k_proj = nn.Linear(cfg.hidden_size, self.kv_heads * self.head_dim, bias=b)
        self.v_proj = nn.Linear(cfg.hidden_size, self.kv_heads * self.head_dim, bias=b)
        self.o_proj = nn.Linear(self.heads * self.head_dim, cfg.hidden_size, bias=b and cfg.model_type != "qwen2")
        self.q_norm = RMSNorm(self.head_dim, cfg.rms_norm_eps) if cfg.qk_norm else None
        self.k_norm = RMSNorm(self.head_dim, cfg.rms_norm_eps) if cfg.qk_norm else None
        self._fused: FusedProjection | None = None

    def fuse(self) -> None:
        """Store q/k/v projections as views of one matrix, so one matmul computes all three.

        Parameter names and values are unchanged and in-place updates reach the fused
        matrix; if a parameter is later replaced, three matmuls run instead.
        """
        self._fused = FusedProjection.fuse((self.q_proj, self.k_proj, self.v_proj))

    def qkv(self) -> tuple[torch.Tensor | tuple[torch.Tensor, ...], ProjectionBias]:
        """The q/k/v weights and biases as :class:`LayerWeights` takes them: the fused
        matrix while the parameters are still its views, else the separate ones."""
        return projection_weights(self._fused, (self.q_proj, self.k_proj, self.v_proj))


class DecoderLayer(nn.Module):
    """Pre-norm attention block and SwiGLU MLP block with residuals."""

    def __init__(self, cfg: ModelConfig, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.self_attn = Attention(cfg, layer_idx)
        self.mlp = SwiGLU(cfg.hidden_size, cfg.intermediate_size, cfg.mlp_bias)
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def weights(self) -> LayerWeights:
        """This layer's tensors for :func:`decoder_layer` (the parameters themselves)."""
        attn = self.self_attn
        qkv, qkv_bias = attn.qkv()
        gate_up, gate_up_bias = self.mlp.gate_up()
        return LayerWeights(
            ln1=self.input_layernorm.weight, qkv=qkv, qkv_bias=qkv_bias,
            q_norm=attn.q_norm.weight if attn.q_norm is not None else None,
            k_norm=attn.k_norm.weight if attn.k_norm is not None else None,
            o=attn.o_proj.weight, o_bias=attn.o_proj.bias,
            ln2=self.post_attention_layernorm.weight,
            gate_up=gate_up, gate_up_bias=gate_up_bias,
            down=self.mlp.down_proj.weight, down_bias=self.mlp.down_proj.bias,
        )

    def forward(
        self,
        h: torch.Tensor,
        step: LayerStep,
        w: LayerWeights | None = None,
        *,
        keep: torch.Tensor | None = None,
        hooks: HookRegistry | None = None,
        hook_ctx: HookContext | None = None,
    ) -> torch.Tensor:
        """The layer over ``h`` (see :func:`decoder_layer`); ``w`` defaults to
        :meth:`weights`. Hooks see the attention block's output and the layer's."""
        if w is None:
            w = self.weights()
        i = self.layer_idx
        if not hooks:
            return decoder_layer(h, w, i, step, keep=keep)
        registry = hooks

        def on_attn(a: torch.Tensor) -> torch.Tensor:
            return registry.run(HookPoint.ATTN_OUTPUT, i, a, hook_ctx)

        h = decoder_layer(h, w, i, step, keep=keep, attn_hook=on_attn)
        return hooks.run(HookPoint.LAYER_OUTPUT, i, h, hook_ctx)

    def forward_last_hooked(
        self,
        h: torch.Tensor,
        step: LayerStep,
        w: LayerWeights,
        attend_last: Attend,
        last: torch.Tensor,
        hooks: HookRegistry,
        hook_ctx: HookContext | None,
    ) -> torch.Tensor:
        """The full layer for the hooks (every token), with the rows ``last`` computed
        exactly as the pruned layer (``keep=last``) computes them.

        BLAS may round a row differently in a matmul over fewer rows, so without this
        a model whose hooks return their input unchanged would not give bit-identical
        logits to the same model without hooks. ``attend_last`` attends for the
        ``last`` rows only and stores nothing (``step.attend`` has). Returns every
        token's hidden state.
        """
        i, eps = self.layer_idx, step.shape.eps
        q, kv = attention_inputs(rms_norm(h, w.ln1, eps), w, step)
        a = output_projection(step.attend(i, q, kv), w)
        a[last] = output_projection(attend_last(i, q, kv), w)
        a = hooks.run(HookPoint.ATTN_OUTPUT, i, a, hook_ctx)
        h = h + a
        x = rms_norm(h, w.ln2, eps)
        m = mlp(x, w.gate_up, w.gate_up_bias, w.down, w.down_bias, step.in_place)
        m[last] = mlp(x[last], w.gate_up, w.gate_up_bias, w.down, w.down_bias, step.in_place)
        h = h + m
        return hooks.run(HookPoint.LAYER_OUTPUT, i, h, hook_ctx)


def paged_attend(
    backend: AttentionBackend, batch: ForwardBatch, pool: PagedKVPool, shape: LayerShape,
    *, last: bool = False, store: bool = True,
) -> Attend:
    """Attention through ``backend`` for ``batch``: every token's queries, or (``last``)
    each row's last query only (``store=False``: the K/V are already stored)."""
    kvh, scale = shape.kv_heads, shape.scale
    if not last:
        def attend(layer: int, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
            return backend.forward(layer, q, kv[:, :kvh], kv[:, kvh:], batch, pool, scale)
        return attend
    rows = batch.last_token_idx
    forward_last = backend.forward_last  # type: ignore[attr-defined]

    def attend_last(layer: int, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        return forward_last(layer, q[rows], kv[:, :kvh], kv[:, kvh:], batch, pool, scale, store=store)  # type: ignore[no-any-return]
    return attend_last


def _projection_tensors(mw: ModelWeights) -> list[torch.Tensor]:
    """Every matmul weight of ``mw`` (fused or separate), the head last."""
    out: list[torch.Tensor] = []
    for w in mw.layers:
        for x in (w.qkv, w.o, w.gate_up, w.down):
            out += list(x) if isinstance(x, tuple) else [x]
    return [*out, mw.head]


class _Backbone(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(cfg, i) for i in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class CausalLM(nn.Module):
    """A decoder-only language model over a paged KV pool.

    Attributes:
        config: the architecture.
        shape: the sizes every layer shares.
        hooks: decoder hook points (knowledge injection, diagnostics plugins).
        decode_runner: runs pure-decode steps without the generic layer dispatch.
    """

    decode_runner: DecodeRunner

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.shape = LayerShape.of(cfg)
        self.model = _Backbone(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.rotary = RotaryEmbedding(cfg.head_dim, cfg.rope_theta, cfg.rope_scaling)
        self.hooks = HookRegistry(cfg.num_hidden_layers)
        self._watch = ParameterWatch(self)
        # (weights, watch version, parameters, their data pointers) of the last build
        self._built: tuple[ModelWeights, int, list[nn.Parameter], list[int]] | None = None
        # plain attribute (not a submodule): it only reads this model's parameters
        object.__setattr__(self, "decode_runner", DecodeRunner(self))
        # copies of the projections for faster matmuls (``models.packed``: oneDNN's,
        # and row-major ones for the few-row C kernel); None: not packed
        self._packs: WeightPacks | None = None

    def pack_weights(self, on: bool) -> None:
        """Keep packed copies of every projection weight (oneDNN's, and row-major ones
        for the few-row C kernel; remade when :meth:`weights` rebuilds), or drop them;
        see ``models.packed``."""
        if self._packs is not None:
            self._packs.clear()
        self._packs = WeightPacks() if on else None
        self._built = None
        if on:
            self.weights()  # packs now: the copies' memory is taken at start-up

    @property
    def packed_bytes(self) -> int:
        """Bytes of the packed copies (0 when not packed)."""
        return self._packs.nbytes if self._packs is not None else 0

    def weights(self) -> ModelWeights:
        """Every layer's tensors, rebuilt when a parameter or submodule was replaced
        or a parameter's storage swapped (``param.data = ...``) since the last call."""
        built = self._built
        if built is not None and built[1] == self._watch.version and [p.data_ptr() for p in built[2]] == built[3]:
            return built[0]
        layers = tuple(layer.weights() for layer in self.model.layers)  # type: ignore[operator]
        mw = ModelWeights(layers, self.model.norm.weight, self.lm_head.weight, self.lm_head.bias,
                          all(w.fused for w in layers))
        params = list(self.parameters())
        self._built = (mw, self._watch.version, params, [p.data_ptr() for p in params])
        if self._packs is not None:
            self._packs.pack(_projection_tensors(mw))
        return mw

    def projection_layers(self) -> list[nn.Linear]:
        """Every matmul's module: each layer's q/k/v/o and gate/up/down, and the LM head."""
        out: list[nn.Linear] = []
        for layer in self.model.layers:
            assert isinstance(layer, DecoderLayer)
            a, m = layer.self_attn, layer.mlp
            out += [a.q_proj, a.k_proj, a.v_proj, a.o_proj, m.gate_proj, m.up_proj, m.down_proj]
        return [*out, self.lm_head]

    def cast_projections(self, dtype: torch.dtype) -> None:
        """Hold every projection's weight (not its bias) in ``dtype``; the embedding,
        the norms and the biases keep theirs. Matmuls then take their input in
        ``dtype`` and return to the compute dtype (``decoder_step.linear``).

        A tied LM head gets a copy of its own, so the embedding lookup is unchanged.
        Call before :meth:`fuse_projections` (the fused matrices are built from these
        parameters).
        """
        with torch.no_grad():
            for m in self.projection_layers():
                if m.weight.dtype != dtype:
                    m.weight = nn.Parameter(m.weight.detach().to(dtype), requires_grad=False)

    def fuse_projections(self) -> None:
        """Fuse q/k/v and gate/up projections of every layer (fewer, larger matmuls) and
        keep every projection in transposed storage (see ``transposed_storage``)."""
        for layer in self.model.layers:
            assert isinstance(layer, DecoderLayer)
            layer.self_attn.fuse()
            layer.mlp.fuse()
            store_transposed(layer.self_attn.o_proj)
            store_transposed(layer.mlp.down_proj)
        if self.lm_head.weight is not self.model.embed_tokens.weight:  # tied: the embedding's layout stays
            store_transposed(self.lm_head)

    @torch.inference_mode()
    def forward(
        self, batch: ForwardBatch, pool: PagedKVPool, backend: AttentionBackend
    ) -> torch.Tensor:
        """Run one packed step; return float32 logits ``[rows, vocab]`` of each row's last token."""
        backend.prepare(batch, pool)
        h = self.model.embed_tokens(batch.input_ids)
        top = batch.max_position if batch.max_position >= 0 else None
        rope = batch.rope = self.rotary.cos_sin(batch.positions, h.dtype, top)
        mw = self.weights()
        if not self.hooks and batch.capture is None:
            logits = self.decode_runner.try_run(batch, pool, backend, h, mw)
            if logits is not None:
                return logits
        shape = self.shape
        step = LayerStep(shape, rope.cos, rope.sin_signed, paged_attend(backend, batch, pool, shape))
        hooks = self.hooks if self.hooks else None
        ctx = batch.hook_ctx
        last = batch.last_token_idx
        layers = self.model.layers
        n = len(layers)
        # rows that compute several tokens need only their last token out of the last
        # layer (its K/V are stored all the same); hooks see every token, so with
        # hooks the layer runs whole, its last tokens computed the same way
        prune = batch.capture is None and h.shape[0] > batch.num_rows and hasattr(backend, "forward_last")
        for i, layer in enumerate(layers):
            assert isinstance(layer, DecoderLayer)
            w = mw.layers[i]
            if prune and i == n - 1:
                if hooks is not None:
                    attend_last = paged_attend(backend, batch, pool, shape, last=True, store=False)
                    h = layer.forward_last_hooked(h, step, w, attend_last, last, hooks, ctx)
                    break
                step = step._replace(attend=paged_attend(backend, batch, pool, shape, last=True))
                h = layer(h, step, w, keep=last)
                return final_logits(h, mw.norm, mw.head, mw.head_bias, shape.eps)
            h = layer(h, step, w, hooks=hooks, hook_ctx=ctx)
        return final_logits(h[last], mw.norm, mw.head, mw.head_bias, shape.eps)
