"""LoRA adapters: what training computes is what the engine serves after merging."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from agentic_llm.engine.loader import load_model
from agentic_llm.engine.lora import FORMAT, base_fingerprint, merge_adapter
from agentic_llm.errors import AgenticError, ErrorCode
from training.lora import Example, LoraConfig, _load_init, adapter_state, attach, batch_loss

from .conftest import VOCAB, build_hf
from .gguf_util import write_llama_gguf
from .test_gguf import our_logits, rel_err, transformers_model


def _adapter(model: torch.nn.Module, out: Path, base: Path, *, seed: int = 1) -> torch.nn.Module:
    """Wrap ``model`` with a LoRA whose B is random (a trained-looking update), save it."""
    cfg = LoraConfig(rank=4, alpha=8.0, seed=seed)
    wrapped = attach(model, cfg)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in wrapped.values():
            m.lora_b.copy_(torch.randn(m.lora_b.shape, generator=gen) * 0.05)
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    save_file(adapter_state(wrapped, torch.float32), str(out / "adapter.safetensors"))
    (out / "adapter_config.json").write_text(json.dumps({
        "format": FORMAT, "rank": cfg.rank, "alpha": cfg.alpha,
        "base": base_fingerprint(str(base)), "base_file": base.name}))
    return model


def test_merged_adapter_logits_equal_the_training_forward(tmp_path: Path) -> None:
    hf = build_hf("llama", seed=4, intermediate_size=128)
    base = write_llama_gguf(hf, tmp_path / "base.gguf", "F32")
    # the training side: transformers' reading of the file, with the LoRA layers
    trained = _adapter(transformers_model(base, hf.config.num_hidden_layers), tmp_path / "ad", base)
    ids = torch.randint(0, VOCAB, (10,), generator=torch.Generator().manual_seed(3)).tolist()
    with torch.no_grad():
        ref = trained(torch.tensor([ids])).logits[0]
    merged = load_model(base, adapter=tmp_path / "ad")
    got = our_logits(merged, ids)
    assert max(rel_err(got[i], ref[i]) for i in range(len(ids))) < 1e-4
    assert merged.adapter == tmp_path / "ad"
    # and the adapter matters: without it the logits differ
    plain = our_logits(load_model(base), ids)
    assert rel_err(plain[-1], ref[-1]) > 1e-3


def test_continued_training_starts_from_the_saved_adapter(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    hf = build_hf("llama", seed=4, intermediate_size=128)
    base = write_llama_gguf(hf, tmp_path / "base.gguf", "F32")
    _adapter(transformers_model(base, hf.config.num_hidden_layers), tmp_path / "ad", base)
    saved = load_file(str(tmp_path / "ad" / "adapter.safetensors"))
    fresh = attach(transformers_model(base, hf.config.num_hidden_layers), LoraConfig(rank=4, alpha=8.0, seed=9))
    assert all(m.lora_b.abs().sum() == 0 for m in fresh.values())  # a fresh adapter starts at B = 0
    _load_init(fresh, tmp_path / "ad")
    assert adapter_state(fresh, torch.float32).keys() == saved.keys()
    assert all(torch.equal(t, saved[k]) for k, t in adapter_state(fresh, torch.float32).items())
    other = attach(transformers_model(base, hf.config.num_hidden_layers), LoraConfig(rank=8, alpha=16.0))
    with pytest.raises(ValueError, match="of shape"):
        _load_init(other, tmp_path / "ad")


def test_adapter_for_another_checkpoint_is_refused(tmp_path: Path) -> None:
    hf = build_hf("llama", seed=5)
    base = write_llama_gguf(hf, tmp_path / "a.gguf", "F32")
    _adapter(transformers_model(base, 2), tmp_path / "ad", base)
    (tmp_path / "b").mkdir()
    other = write_llama_gguf(build_hf("llama", seed=6), tmp_path / "b" / "a.gguf", "F32")  # same name
    with pytest.raises(AgenticError) as e:
        load_model(other, adapter=tmp_path / "ad")
    assert e.value.code is ErrorCode.UNSUPPORTED_MODEL and "another checkpoint" in e.value.message


def test_bad_adapters_are_clear_errors_and_leave_the_weights(tmp_path: Path) -> None:
    hf = build_hf("llama", seed=7)
    base = write_llama_gguf(hf, tmp_path / "m.gguf", "F32")
    with pytest.raises(AgenticError) as e:
        load_model(base, adapter=tmp_path / "missing")
    assert e.value.code is ErrorCode.MODEL_NOT_FOUND
    _adapter(transformers_model(base, 2), tmp_path / "ad", base)
    cfg_path = tmp_path / "ad" / "adapter_config.json"
    good = cfg_path.read_text()
    cfg_path.write_text(json.dumps({**json.loads(good), "format": "peft"}))
    with pytest.raises(AgenticError) as e:
        load_model(base, adapter=tmp_path / "ad")
    assert e.value.code is ErrorCode.INVALID_CONFIG
    # a shape that does not fit: nothing in the state is changed
    cfg_path.write_text(good)
    state = {"model.layers.0.self_attn.q_proj.weight": torch.zeros(3, 3),
             "model.layers.0.mlp.up_proj.weight": torch.zeros(128, 64)}
    before = {k: v.clone() for k, v in state.items()}
    with pytest.raises(AgenticError) as e:
        merge_adapter(state, tmp_path / "ad")
    assert e.value.code is ErrorCode.UNSUPPORTED_MODEL
    assert all(torch.equal(state[k], before[k]) for k in state)


def test_prefix_cached_loss_equals_the_full_sequence_loss() -> None:
    """Training runs the shared system prefix once per step without gradients and
    continues each example from its keys and values; the loss is the one of the
    whole sequences."""
    model = build_hf("llama", seed=8)
    attach(model, LoraConfig(rank=4, alpha=8.0))
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    g = torch.Generator().manual_seed(0)
    prefix = torch.randint(0, VOCAB, (7,), generator=g).tolist()
    examples = [Example(torch.randint(0, VOCAB, (n,), generator=g).tolist(), a)
                for n, a in ((9, 4), (14, 6), (6, 2))]
    loss = batch_loss(model, prefix, examples)
    # reference: each whole sequence through the model, mean over all answer tokens
    total, count = 0.0, 0
    with torch.no_grad():
        for e in examples:
            seq = torch.tensor([prefix + e.suffix])
            logits = model(seq).logits[0]
            start = len(prefix) + e.answer_start
            for j in range(start, seq.shape[1]):
                total += float(torch.nn.functional.cross_entropy(logits[j - 1:j], seq[0, j:j + 1]))
                count += 1
    assert abs(float(loss.detach()) - total / count) < 1e-5
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(gr is not None for gr in grads) and any(float(gr.abs().sum()) > 0 for gr in grads)


def test_the_cache_version_covers_a_gguf_file_and_its_adapter(tmp_path: Path) -> None:
    """Cached subgraphs written with one adapter are never served with another: the
    subgraph cache's engine version names the adapter (and a .gguf file path works)."""
    from agentic_llm.engine.fingerprint import engine_version

    base = write_llama_gguf(build_hf("llama", seed=9), tmp_path / "m.gguf", "F32")
    _adapter(transformers_model(base, 2), tmp_path / "a1", base, seed=1)
    _adapter(transformers_model(base, 2), tmp_path / "a2", base, seed=2)
    plain = engine_version(base)
    assert plain == engine_version(tmp_path)  # the file or the directory holding it
    versions = {plain, engine_version(base, tmp_path / "a1"), engine_version(base, tmp_path / "a2")}
    assert len(versions) == 3
