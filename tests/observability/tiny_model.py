"""A tiny random-weight Llama checkpoint written directly with safetensors.

Writing the tensors by hand keeps these tests free of the (slow to import)
transformers package; the layout is the Hugging Face Llama one the loader reads.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

HIDDEN, INTER, LAYERS, HEADS, KV_HEADS, VOCAB = 32, 64, 2, 4, 2, 128


def write_tiny_llama(path: Path, seed: int = 0) -> Path:
    """Write config.json and model.safetensors of a 2-layer Llama to ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    head_dim = HIDDEN // HEADS
    cfg = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": HIDDEN,
        "intermediate_size": INTER, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS, "vocab_size": VOCAB, "max_position_embeddings": 256,
        "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "tie_word_embeddings": False,
        "torch_dtype": "float32", "hidden_act": "silu",
    }
    (path / "config.json").write_text(json.dumps(cfg))
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * 0.05

    w = {"model.embed_tokens.weight": rnd(VOCAB, HIDDEN), "model.norm.weight": torch.ones(HIDDEN),
         "lm_head.weight": rnd(VOCAB, HIDDEN)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        w.update({
            p + "self_attn.q_proj.weight": rnd(HEADS * head_dim, HIDDEN),
            p + "self_attn.k_proj.weight": rnd(KV_HEADS * head_dim, HIDDEN),
            p + "self_attn.v_proj.weight": rnd(KV_HEADS * head_dim, HIDDEN),
            p + "self_attn.o_proj.weight": rnd(HIDDEN, HEADS * head_dim),
            p + "mlp.gate_proj.weight": rnd(INTER, HIDDEN),
            p + "mlp.up_proj.weight": rnd(INTER, HIDDEN),
            p + "mlp.down_proj.weight": rnd(HIDDEN, INTER),
            p + "input_layernorm.weight": torch.ones(HIDDEN),
            p + "post_attention_layernorm.weight": torch.ones(HIDDEN),
        })
    save_file(w, str(path / "model.safetensors"), metadata={"format": "pt"})
    return path
