"""Random-weight Llama checkpoints in the Hugging Face layout, for tests and benchmarks.

A checkpoint written here loads through the same loader as any real one. Weights are
drawn from a seeded normal distribution (norm weights are ones), so two calls with the
same arguments write the same files. The tensors are written with safetensors
directly, which keeps callers free of the slow-to-import transformers package.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

__all__ = ["write_random_llama", "EOS_TOKEN"]

EOS_TOKEN = "<|endoftext|>"


def _train_tokenizer(corpus: Sequence[str], vocab_size: int, path: Path) -> tuple[int, int]:
    """Train a byte-level BPE on ``corpus``; return (vocab size, eos id)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(list(corpus), trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[EOS_TOKEN], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.save(str(path / "tokenizer.json"))
    eos = tok.token_to_id(EOS_TOKEN)
    if eos is None:  # the trainer always adds the special token; guard the type
        raise RuntimeError(f"tokenizer trainer dropped {EOS_TOKEN}")
    return tok.get_vocab_size(), eos


def write_random_llama(
    path: Path,
    *,
    hidden: int = 64,
    intermediate: int = 128,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    vocab_size: int = 128,
    max_positions: int = 2048,
    std: float = 0.02,
    seed: int = 0,
    tokenizer_corpus: Sequence[str] | None = None,
) -> Path:
    """Write ``config.json`` and ``model.safetensors`` of a random Llama under ``path``.

    With ``tokenizer_corpus``, a byte-level BPE of about ``vocab_size`` tokens is
    trained on it and saved as ``tokenizer.json`` (with ``<|endoftext|>`` as EOS and a
    ``generation_config.json``); the model's vocabulary is then the tokenizer's.
    Without it, the model has exactly ``vocab_size`` tokens and no tokenizer.
    """
    import torch
    from safetensors.torch import save_file

    if hidden % heads or heads % kv_heads:
        raise ValueError(f"hidden ({hidden}) must divide by heads ({heads}), heads by kv_heads ({kv_heads})")
    path.mkdir(parents=True, exist_ok=True)
    eos: int | None = None
    vocab = vocab_size
    if tokenizer_corpus is not None:
        vocab, eos = _train_tokenizer(tokenizer_corpus, vocab_size, path)
        (path / "generation_config.json").write_text(json.dumps({"eos_token_id": eos}))
    head_dim = hidden // heads
    config: dict[str, object] = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": vocab,
        "hidden_size": hidden, "intermediate_size": intermediate, "num_hidden_layers": layers,
        "num_attention_heads": heads, "num_key_value_heads": kv_heads, "hidden_act": "silu",
        "max_position_embeddings": max_positions, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
        "tie_word_embeddings": False, "torch_dtype": "float32",
    }
    if eos is not None:
        config.update(eos_token_id=eos, bos_token_id=eos)
    (path / "config.json").write_text(json.dumps(config, indent=2))

    gen = torch.Generator().manual_seed(seed)

    def rnd(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen) * std

    tensors = {"model.embed_tokens.weight": rnd(vocab, hidden),
               "model.norm.weight": torch.ones(hidden), "lm_head.weight": rnd(vocab, hidden)}
    for i in range(layers):
        pre = f"model.layers.{i}."
        tensors.update({
            pre + "self_attn.q_proj.weight": rnd(heads * head_dim, hidden),
            pre + "self_attn.k_proj.weight": rnd(kv_heads * head_dim, hidden),
            pre + "self_attn.v_proj.weight": rnd(kv_heads * head_dim, hidden),
            pre + "self_attn.o_proj.weight": rnd(hidden, heads * head_dim),
            pre + "mlp.gate_proj.weight": rnd(intermediate, hidden),
            pre + "mlp.up_proj.weight": rnd(intermediate, hidden),
            pre + "mlp.down_proj.weight": rnd(hidden, intermediate),
            pre + "input_layernorm.weight": torch.ones(hidden),
            pre + "post_attention_layernorm.weight": torch.ones(hidden),
        })
    save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})
    return path
