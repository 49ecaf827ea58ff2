"""The decoder-only transformer used for the Llama, Qwen2 and Qwen3 families.

Parameter names follow the Hugging Face checkpoints, so a state dict loads as is.
K/V never live in the module: attention reads and writes them through the paged
pool and the step's block tables (see :class:`~agentic_llm.engine.forward.ForwardBatch`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from agentic_llm.engine.attention.base import AttentionBackend
from agentic_llm.engine.config import ModelConfig
from agentic_llm.engine.forward import ForwardBatch
from agentic_llm.engine.hooks import HookPoint, HookRegistry
from agentic_llm.engine.kv.pool import PagedKVPool
from agentic_llm.engine.models.fast_decode import DecodeRunner
from agentic_llm.engine.models.layers import (
    RMSNorm,
    RotaryEmbedding,
    SwiGLU,
    store_transposed,
    transposed_storage,
)

__all__ = ["CausalLM"]


class Attention(nn.Module):
    """Grouped-query attention with optional per-head q/k RMSNorm (Qwen3)."""

    def __init__(self, cfg: ModelConfig, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.heads = cfg.num_attention_heads
        self.kv_heads = cfg.num_key_value_heads
        self.head_dim = cfg.head_dim
        self.scale = cfg.head_dim**-0.5
        b = cfg.attention_bias
        self.q_proj = nn.Linear(cfg.hidden_size, self.heads * self.head_dim, bias=b)
        self.k_proj = nn.Linear(cfg.hidden_size, self.kv_heads * self.head_dim, bias=b)
        self.v_proj = nn.Linear(cfg.hidden_size, self.kv_heads * self.head_dim, bias=b)
        self.o_proj = nn.Linear(self.heads * self.head_dim, cfg.hidden_size, bias=b and cfg.model_type != "qwen2")
        self.q_norm = RMSNorm(self.head_dim, cfg.rms_norm_eps) if cfg.qk_norm else None
        self.k_norm = RMSNorm(self.head_dim, cfg.rms_norm_eps) if cfg.qk_norm else None
        self._qkv: torch.Tensor | None = None  # [(heads + 2 kv_heads) * d, hidden]
        self._qkv_bias: torch.Tensor | None = None
        self._qkv_ptrs: tuple[int, int, int] = (0, 0, 0)

    def fuse(self) -> None:
        """Store q/k/v projections as views of one matrix, so one matmul computes all three.

        Parameter names and values are unchanged and in-place updates reach the fused
        matrix; if a parameter is later replaced, :meth:`forward` falls back to three
        matmuls.
        """
        projs = (self.q_proj, self.k_proj, self.v_proj)
        with torch.no_grad():
            w = transposed_storage(torch.cat(tuple(m.weight for m in projs)))
            biases = [m.bias for m in projs]
            b = torch.cat(tuple(x for x in biases if x is not None)) if all(x is not None for x in biases) else None
            start = 0
            for m in projs:
                n = m.weight.shape[0]
                m.weight = nn.Parameter(w[start : start + n], requires_grad=False)
                if b is not None:
                    m.bias = nn.Parameter(b[start : start + n], requires_grad=False)
                start += n
        self._qkv, self._qkv_bias = w, b
        self._qkv_ptrs = self._ptrs()

    def _ptrs(self) -> tuple[int, int, int]:
        return (self.q_proj.weight.data_ptr(), self.k_proj.weight.data_ptr(), self.v_proj.weight.data_ptr())

    def qkv(self, x: torch.Tensor, rope: RotaryEmbedding, batch: ForwardBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Project ``x`` and rotate: ``q`` ``[T, heads, d]``, ``k`` and ``v`` ``[T, kv_heads, d]``."""
        t = x.shape[0]
        h, kvh, d = self.heads, self.kv_heads, self.head_dim
        tables = batch.rope
        if tables is None:
            tables = batch.rope = rope.cos_sin(batch.positions, x.dtype)
        if self._qkv is not None and self._ptrs() == self._qkv_ptrs:
            qkv = F.linear(x, self._qkv, self._qkv_bias).view(t, h + 2 * kvh, d)
            if self.q_norm is None:
                # q and k heads are adjacent: one rotation covers both, in place, so
                # k and v stay adjacent and reach the pool without a copy
                tables.apply_(qkv[:, : h + kvh])
                q, k = qkv[:, :h], qkv[:, h : h + kvh]
            else:
                q, k = tables.apply(self.q_norm(qkv[:, :h])), tables.apply(self.k_norm(qkv[:, h : h + kvh]))  # type: ignore[misc]
            v = qkv[:, h + kvh :]
        else:
            q = self.q_proj(x).view(t, h, d)
            k = self.k_proj(x).view(t, kvh, d)
            v = self.v_proj(x).view(t, kvh, d)
            if self.q_norm is not None and self.k_norm is not None:
                q, k = self.q_norm(q), self.k_norm(k)
            q, k = tables.apply(q), tables.apply(k)
        return q, k, v

    def forward(
        self,
        x: torch.Tensor,
        rope: RotaryEmbedding,
        batch: ForwardBatch,
        pool: PagedKVPool,
        backend: AttentionBackend,
    ) -> torch.Tensor:
        q, k, v = self.qkv(x, rope, batch)
        out = backend.forward(self.layer_idx, q, k, v, batch, pool, self.scale)
        return self.o_proj(out.reshape(out.shape[0], self.heads * self.head_dim))

    def add_output(self, residual: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        """``residual + o_proj(attn)``.

        Not folded into one ``addmm``: that rounds differently from the hooked path
        (which must see the projection alone), and a model whose hooks return their
        input unchanged must give bit-identical results to one without hooks.
        """
        flat = attn.reshape(attn.shape[0], self.heads * self.head_dim)
        return residual + F.linear(flat, self.o_proj.weight, self.o_proj.bias)


class DecoderLayer(nn.Module):
    """Pre-norm attention block and SwiGLU MLP block with residuals."""

    def __init__(self, cfg: ModelConfig, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.self_attn = Attention(cfg, layer_idx)
        self.mlp = SwiGLU(cfg.hidden_size, cfg.intermediate_size, cfg.mlp_bias)
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(
        self,
        h: torch.Tensor,
        rope: RotaryEmbedding,
        batch: ForwardBatch,
        pool: PagedKVPool,
        backend: AttentionBackend,
        hooks: HookRegistry,
    ) -> torch.Tensor:
        if hooks:
            a = self.self_attn(self.input_layernorm(h), rope, batch, pool, backend)
            a = hooks.run(HookPoint.ATTN_OUTPUT, self.layer_idx, a, batch.hook_ctx)
            h = h + a
            h = h + self.mlp(self.post_attention_layernorm(h))
            return hooks.run(HookPoint.LAYER_OUTPUT, self.layer_idx, h, batch.hook_ctx)
        # no hooks: the same arithmetic with fewer module calls and tensors kept
        attn = self.self_attn
        q, k, v = attn.qkv(self.input_layernorm(h), rope, batch)
        h = attn.add_output(h, backend.forward(self.layer_idx, q, k, v, batch, pool, attn.scale))
        return self.mlp.add_to(h, self.post_attention_layernorm(h))

    def forward_last(
        self,
        h: torch.Tensor,
        rope: RotaryEmbedding,
        batch: ForwardBatch,
        pool: PagedKVPool,
        backend: AttentionBackend,
    ) -> torch.Tensor:
        """The layer for each row's last token only (no hooks): K/V of every token are
        still stored, but queries, output projection and MLP run for the last tokens."""
        attn = self.self_attn
        q, k, v = attn.qkv(self.input_layernorm(h), rope, batch)
        out = backend.forward_last(self.layer_idx, q[batch.last_token_idx], k, v, batch, pool, attn.scale)  # type: ignore[attr-defined]
        h = attn.add_output(h[batch.last_token_idx], out)
        return self.mlp.add_to(h, self.post_attention_layernorm(h))

    def forward_last_hooked(
        self,
        h: torch.Tensor,
        rope: RotaryEmbedding,
        batch: ForwardBatch,
        pool: PagedKVPool,
        backend: AttentionBackend,
        hooks: HookRegistry,
    ) -> torch.Tensor:
        """The full layer for the hooks (every token), with the last tokens' values
        computed exactly as :meth:`forward_last` computes them.

        BLAS may round a row differently in a matmul over fewer rows, so without this
        a model whose hooks return their input unchanged would not give bit-identical
        logits to the same model without hooks. Returns every token's hidden state.
        """
        attn = self.self_attn
        last = batch.last_token_idx
        t = h.shape[0]
        flat_dim = attn.heads * attn.head_dim
        q, k, v = attn.qkv(self.input_layernorm(h), rope, batch)
        out = backend.forward(self.layer_idx, q, k, v, batch, pool, attn.scale)
        out_last = backend.forward_last(  # type: ignore[attr-defined]
            self.layer_idx, q[last], k, v, batch, pool, attn.scale, store=False
        )
        w, b = attn.o_proj.weight, attn.o_proj.bias
        a = F.linear(out.reshape(t, flat_dim), w, b)
        a[last] = F.linear(out_last.reshape(out_last.shape[0], flat_dim), w, b)
        a = hooks.run(HookPoint.ATTN_OUTPUT, self.layer_idx, a, batch.hook_ctx)
        h = h + a
        x = self.post_attention_layernorm(h)
        m = self.mlp(x)
        m[last] = self.mlp(x[last])
        h = h + m
        return hooks.run(HookPoint.LAYER_OUTPUT, self.layer_idx, h, batch.hook_ctx)


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
        hooks: decoder hook points (knowledge injection, diagnostics plugins).
        decode_runner: runs pure-decode steps without the generic layer dispatch.
    """

    decode_runner: DecodeRunner

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.model = _Backbone(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.rotary = RotaryEmbedding(cfg.head_dim, cfg.rope_theta, cfg.rope_scaling)
        self.hooks = HookRegistry(cfg.num_hidden_layers)
        # plain attribute (not a submodule): it only reads this model's parameters
        object.__setattr__(self, "decode_runner", DecodeRunner(self))

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
        batch.rope = self.rotary.cos_sin(batch.positions, h.dtype, top)
        if not self.hooks and batch.capture is None:
            logits = self.decode_runner.try_run(batch, pool, backend, h)
            if logits is not None:
                return logits
        layers = self.model.layers
        n = len(layers)
        # rows that compute several tokens need only their last token out of the last
        # layer (its K/V are stored all the same); hooks see every token, so with
        # hooks the layer runs whole, its last tokens computed the same way
        prune = batch.capture is None and h.shape[0] > batch.num_rows and hasattr(backend, "forward_last")
        for i, layer in enumerate(layers):
            assert isinstance(layer, DecoderLayer)
            if prune and i == n - 1:
                if self.hooks:
                    h = layer.forward_last_hooked(h, self.rotary, batch, pool, backend, self.hooks)
                    break
                h = layer.forward_last(h, self.rotary, batch, pool, backend)
                return self.lm_head(self.model.norm(h)).float()
            h = layer(h, self.rotary, batch, pool, backend, self.hooks)
        last = self.model.norm(h[batch.last_token_idx])
        return self.lm_head(last).float()
