"""Loading HF checkpoints: formats, dtypes, and clear errors for what is missing."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from agentic_llm.engine import load_model
from agentic_llm.engine.config import ModelConfig
from agentic_llm.errors import AgenticError, ErrorCode

from .conftest import build_hf


def expect(code: ErrorCode, d: Path, *words: str) -> None:
    with pytest.raises(AgenticError) as exc:
        load_model(d)
    assert exc.value.code is code, exc.value
    for w in words:
        assert w in exc.value.message


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_missing_dir_config_weights(tmp_path: Path, llama_dir: Path) -> None:
    expect(ErrorCode.MODEL_NOT_FOUND, tmp_path / "absent", "does not exist")
    expect(ErrorCode.MODEL_NOT_FOUND, tmp_path, "config.json")
    d = copy(llama_dir, tmp_path / "noweights")
    (d / "model.safetensors").unlink()
    expect(ErrorCode.MODEL_NOT_FOUND, d, "no weights")


def test_unsupported_architecture_and_rope(tmp_path: Path, llama_dir: Path) -> None:
    d = copy(llama_dir, tmp_path / "gpt")
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}))
    expect(ErrorCode.UNSUPPORTED_MODEL, d, "gpt2", "LlamaForCausalLM")
    cfg["rope_parameters"] = {"rope_type": "yarn", "factor": 4.0, "rope_theta": 10000.0}
    (d / "config.json").write_text(json.dumps(cfg))
    expect(ErrorCode.UNSUPPORTED_MODEL, d, "yarn")


def test_missing_weight_is_named(tmp_path: Path, llama_dir: Path) -> None:
    from safetensors.torch import load_file, save_file

    d = copy(llama_dir, tmp_path / "partial")
    state = load_file(str(d / "model.safetensors"))
    del state["model.layers.1.self_attn.k_proj.weight"]
    save_file(state, str(d / "model.safetensors"))
    expect(ErrorCode.UNSUPPORTED_MODEL, d, "model.layers.1.self_attn.k_proj.weight")


def test_sharded_bf16_checkpoint(tmp_path: Path) -> None:
    hf = build_hf("qwen2", seed=4)
    ref = {k: v.clone() for k, v in hf.state_dict().items()}
    hf.to(torch.bfloat16).save_pretrained(tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    loaded = load_model(tmp_path, dtype=torch.float32)
    got = dict(loaded.model.named_parameters())
    w = got["model.layers.0.self_attn.q_proj.bias"]
    assert w.dtype == torch.float32
    assert torch.equal(w, ref["model.layers.0.self_attn.q_proj.bias"].to(torch.bfloat16).float())
    # a shard listed in the index but missing is named
    shard = sorted(tmp_path.glob("model-*.safetensors"))[0]
    shard.unlink()
    expect(ErrorCode.MODEL_NOT_FOUND, tmp_path, shard.name)


def test_tied_embeddings_and_tokenizer(checkpoint_factory: Callable[..., Path], tmp_path: Path) -> None:
    d = copy(checkpoint_factory("llama-linear-tied"), tmp_path / "tied")
    loaded = load_model(d)
    assert loaded.model.lm_head.weight is loaded.model.model.embed_tokens.weight
    assert loaded.tokenizer is None
    from .tokenizer_util import train_tokenizer

    train_tokenizer().save(str(d / "tokenizer.json"))
    (d / "generation_config.json").write_text(json.dumps({"eos_token_id": [5, 7]}))
    again = load_model(d)
    assert again.tokenizer is not None and again.eos_token_ids == (5, 7)


def test_config_variants() -> None:
    base = {"model_type": "llama", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
            "num_hidden_layers": 1, "num_attention_heads": 2}
    old = ModelConfig.from_hf_dict({**base, "rope_theta": 5e5, "rope_scaling": {"type": "linear", "factor": 3.0}})
    assert old.rope_theta == 5e5 and old.rope_scaling.rope_type == "linear" and old.rope_scaling.factor == 3.0
    assert old.num_key_value_heads == 2 and old.head_dim == 4
    q3 = ModelConfig.from_hf_dict({**base, "model_type": "qwen3", "head_dim": 6, "eos_token_id": [1, 2]})
    assert q3.qk_norm and q3.head_dim == 6 and q3.eos_token_ids == (1, 2)
    with pytest.raises(AgenticError, match="num_key_value_heads"):
        ModelConfig.from_hf_dict({**base, "num_key_value_heads": 3})
    with pytest.raises(AgenticError, match="hidden_act"):
        ModelConfig.from_hf_dict({**base, "hidden_act": "gelu"})
    with pytest.raises(AgenticError, match="vocab_size"):
        ModelConfig.from_hf_dict({k: v for k, v in base.items() if k != "vocab_size"})
