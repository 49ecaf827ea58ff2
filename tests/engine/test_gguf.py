"""GGUF checkpoints load directly; logits equal transformers' own GGUF loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from agentic_llm.engine.attention import get_backend
from agentic_llm.engine.forward import build_forward_batch
from agentic_llm.engine.gguf import SUPPORTED_TYPES, dequantize, find_gguf
from agentic_llm.engine.kv import PagedKVPool
from agentic_llm.engine.loader import LoadedModel, load_model
from agentic_llm.errors import AgenticError, ErrorCode

from .conftest import VOCAB, build_hf
from .gguf_util import smollm2_gguf, write_llama_gguf

TOL = 1e-4  # as tests/engine/test_logits_equality.py


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def our_logits(loaded: LoadedModel, ids: list[int]) -> torch.Tensor:
    """Logits of every position of ``ids``: prefill of the first, then one decode step each."""
    cfg = loaded.config
    block = 16
    pool = PagedKVPool(-(-len(ids) // block) + 1, block, cfg.num_hidden_layers,
                       cfg.num_key_value_heads, cfg.head_dim)
    table = pool.allocate(-(-len(ids) // block))
    backend = get_backend("torch_sdpa")
    rows = [loaded.model(build_forward_batch([(ids[:1], 0, table)], block, "cpu"), pool, backend)[0]]
    for i in range(1, len(ids)):
        rows.append(loaded.model(build_forward_batch([(ids[i:i + 1], i, table)], block, "cpu"),
                                 pool, backend)[0])
    return torch.stack(rows).float()


def transformers_model(path: Path, layers: int) -> torch.nn.Module:
    """transformers' reading of the same GGUF file (its config, dequantization and layout).

    One parse of the file: ``load_gguf_checkpoint`` needs a model only for the tensor
    names (a meta model with the right layer count), and returns the config it read.
    """
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    with torch.device("meta"):
        names = LlamaForCausalLM(LlamaConfig(num_hidden_layers=layers))
    parsed = load_gguf_checkpoint(str(path), return_tensors=True, model_to_load=names)
    cfg = LlamaConfig(**{k: v for k, v in parsed["config"].items() if k != "_model_name_or_path"})
    with torch.device("meta"):
        model = LlamaForCausalLM(cfg)
    result = model.load_state_dict(parsed["tensors"], strict=False, assign=True)
    assert not result.unexpected_keys
    assert set(result.missing_keys) <= {"lm_head.weight"} and cfg.tie_word_embeddings == bool(result.missing_keys)
    if cfg.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    model.model.rotary_emb = type(model.model.rotary_emb)(config=cfg)
    return model.float().eval()


@pytest.mark.parametrize("qtype", ["Q4_0", "Q4_1", "Q8_0", "F16", "F32"])
def test_dequantize_equals_gguf_reference(qtype: str) -> None:
    import gguf
    from gguf import GGMLQuantizationType as T

    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 96)).astype(np.float32)
    t = getattr(T, qtype)
    if qtype in ("F16", "F32"):
        raw = x.astype(np.float16 if qtype == "F16" else np.float32).view(np.uint8)
    else:
        raw = gguf.quants.quantize(x, t)
    ref = gguf.quants.dequantize(raw, t).reshape(x.shape).astype(np.float32)
    ours = dequantize(raw, qtype, x.shape)
    assert ours.dtype == np.float32 and ours.shape == x.shape
    np.testing.assert_array_equal(ours, ref)
    # and the quantization is what it says: close to the original, not equal for 4-bit
    assert np.abs(ours - x).max() < (0.5 if qtype.startswith("Q4") else 0.05)


def test_unsupported_type_is_a_clear_error() -> None:
    with pytest.raises(AgenticError) as e:
        dequantize(np.zeros(210, np.uint8), "Q6_K", (256,))
    assert e.value.code is ErrorCode.UNSUPPORTED_MODEL and "Q6_K" in e.value.message
    assert "Q4_1" in SUPPORTED_TYPES


@pytest.mark.parametrize("qtype", ["Q4_0", "Q4_1", "Q8_0", "F16", "F32"])
def test_small_llama_logits_equal_transformers(qtype: str, tmp_path: Path) -> None:
    hf = build_hf("llama", seed=2, intermediate_size=128)
    path = write_llama_gguf(hf, tmp_path / f"tiny-{qtype}.gguf", qtype)
    ours = load_model(path)
    ref_model = transformers_model(path, hf.config.num_hidden_layers)
    ids = torch.randint(0, VOCAB, (12,), generator=torch.Generator().manual_seed(5)).tolist()
    with torch.no_grad():
        ref = ref_model(torch.tensor([ids])).logits[0]
    got = our_logits(ours, ids)
    errs = [rel_err(got[i], ref[i]) for i in range(len(ids))]
    assert max(errs) < TOL, f"{qtype}: max relative error {max(errs):.2e}"
    # the quantized file is not the float model: the comparison is against the file
    if qtype.startswith("Q4"):
        with torch.no_grad():
            assert rel_err(got[-1], hf(torch.tensor([ids])).logits[0, -1]) > TOL


def test_directory_holding_one_gguf_loads(tmp_path: Path) -> None:
    hf = build_hf("llama", seed=3)
    write_llama_gguf(hf, tmp_path / "m.gguf", "Q8_0", chat_template="{{ messages[0]['content'] }}")
    loaded = load_model(tmp_path)
    assert loaded.config.vocab_size == VOCAB and loaded.config.num_hidden_layers == 2
    assert loaded.chat_template == "{{ messages[0]['content'] }}"
    assert loaded.eos_token_ids == (VOCAB - 1,) and loaded.special_tokens["eos"] == "<|end|>"
    assert loaded.tokenizer is not None and loaded.tokenizer.token_to_id("<|end|>") == VOCAB - 1


def test_config_of_a_gguf_comes_from_its_metadata(tmp_path: Path) -> None:
    from agentic_llm.engine.loader import load_config

    hf = build_hf("llama", seed=3)
    path = write_llama_gguf(hf, tmp_path / "m.gguf", "Q8_0")
    for where in (path, tmp_path):  # the file, or the directory holding it
        cfg = load_config(where)
        assert cfg == load_model(path).config
        assert cfg.vocab_size == VOCAB and cfg.num_hidden_layers == 2


def test_directory_with_two_gguf_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.gguf").write_bytes(b"")
    (tmp_path / "b.gguf").write_bytes(b"")
    with pytest.raises(AgenticError) as e:
        find_gguf(tmp_path)
    assert e.value.code is ErrorCode.MODEL_NOT_FOUND and "a.gguf" in e.value.message


def test_corrupt_gguf_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00garbage")
    with pytest.raises(AgenticError) as e:
        load_model(bad)
    assert e.value.code is ErrorCode.UNSUPPORTED_MODEL and "bad.gguf" in e.value.message


@pytest.fixture(scope="module")
def smollm2() -> tuple[Path, LoadedModel]:
    path = smollm2_gguf()
    return path, load_model(path)


def test_smollm2_q4_1_logits_equal_transformers(smollm2: tuple[Path, LoadedModel]) -> None:
    from transformers import AutoTokenizer

    path, ours = smollm2
    assert ours.config.vocab_size == 49152 and ours.config.num_hidden_layers == 30
    hf_tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    text = "Search the web for 42 llamas, then summarize.<|im_end|>"
    ids = hf_tok(text).input_ids
    assert ours.tokenizer is not None and ours.tokenizer.encode(text).ids == ids
    ids = ids[:6]
    with torch.no_grad():
        ref = transformers_model(path, 30)(torch.tensor([ids])).logits[0]
    got = our_logits(ours, ids)
    errs = [rel_err(got[i], ref[i]) for i in range(len(ids))]
    assert max(errs) < TOL, f"max relative error {max(errs):.2e}"
    assert int(got[-1].argmax()) == int(ref[-1].argmax())


def test_smollm2_tokenizer_and_template(smollm2: tuple[Path, LoadedModel]) -> None:
    _, ours = smollm2
    assert ours.chat_template is not None and "<|im_start|>" in ours.chat_template
    assert ours.special_tokens == {"bos": "<|im_start|>", "eos": "<|im_end|>"}
    tok = ours.tokenizer
    assert tok is not None
    text = "x = {{ step1.results }} # 2026\n  - id: \"start\""
    assert tok.decode(tok.encode(text).ids) == text
    assert tok.encode("<|im_start|>").ids == [1]
