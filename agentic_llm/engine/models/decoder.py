"""The decoder-only transformer used for the Llama, Qwen2 and Qwen3 families.

Parameter names follow the Hugging Face checkpoints, so a state dict loads as is.
K/V never live in the module: attention reads and writes them through the paged
pool and the step's block tables (see :class:`~agentic_llm.engine.forward.ForwardBatch`).
"""

from __future__ import annotations

import torch
from torch import nn

from agentic_llm.engine.attention.base import AttentionBackend
from agentic_llm.engine.config import ModelConfig
from agentic_llm.engine.forward import ForwardBatch
from agentic_llm.engine.hooks import HookPoint, HookRegistry
from agentic_llm.engine.kv.pool import PagedKVPool
from agentic_llm.engine.models.layers import RMSNorm, RotaryEmbedding, SwiGLU

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

    def forward(
        self,
        x: torch.Tensor,
        rope: RotaryEmbedding,
        batch: ForwardBatch,
        pool: PagedKVPool,
        backend: AttentionBackend,
    ) -> torch.Tensor:
        t = x.shape[0]
        q = self.q_proj(x).view(t, self.heads, self.head_dim)
        k = self.k_proj(x).view(t, self.kv_heads, self.head_dim)
        v = self.v_proj(x).view(t, self.kv_heads, self.head_dim)
        if self.q_norm is not None and self.k_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = rope(batch.positions, q, k)
        out = backend.forward(self.layer_idx, q, k, v, batch, pool, self.scale)
        return self.o_proj(out.reshape(t, self.heads * self.head_dim))


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
        a = self.self_attn(self.input_layernorm(h), rope, batch, pool, backend)
        if hooks:
            a = hooks.run(HookPoint.ATTN_OUTPUT, self.layer_idx, a, batch.hook_ctx)
        h = h + a
        h = h + self.mlp(self.post_attention_layernorm(h))
        if hooks:
            h = hooks.run(HookPoint.LAYER_OUTPUT, self.layer_idx, h, batch.hook_ctx)
        return h


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
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.model = _Backbone(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.rotary = RotaryEmbedding(cfg.head_dim, cfg.rope_theta, cfg.rope_scaling)
        self.hooks = HookRegistry(cfg.num_hidden_layers)

    @torch.inference_mode()
    def forward(
        self, batch: ForwardBatch, pool: PagedKVPool, backend: AttentionBackend
    ) -> torch.Tensor:
        """Run one packed step; return float32 logits ``[rows, vocab]`` of each row's last token."""
        backend.prepare(batch, pool)
        h = self.model.embed_tokens(batch.input_ids)
        for layer in self.model.layers:
            h = layer(h, self.rotary, batch, pool, backend, self.hooks)
        last = self.model.norm(h[batch.last_token_idx])
        return self.lm_head(last).float()
