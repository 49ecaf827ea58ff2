"""Tiny random checkpoints built with transformers and saved to tmp dirs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

VOCAB = 128

FAMILIES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", {}),
    "llama3-rope": (
        "LlamaConfig",
        "LlamaForCausalLM",
        {
            "rope_scaling": {
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 32,
            }
        },
    ),
    "llama-linear-tied": (
        "LlamaConfig",
        "LlamaForCausalLM",
        {"rope_scaling": {"rope_type": "linear", "factor": 2.0}, "tie_word_embeddings": True},
    ),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", {}),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", {"head_dim": 24}),
}


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Any:
    """Tiny matrices run fastest on one thread (and CI runs one test process per core)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def build_hf(family: str, seed: int = 0, **overrides: Any) -> torch.nn.Module:
    """A small random transformers model of ``family`` in float32, eval mode."""
    import transformers

    cfg_name, model_name, extra = FAMILIES[family]
    kw: dict[str, Any] = dict(
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=VOCAB,
        max_position_embeddings=512,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )
    kw.update(extra)
    kw.update(overrides)
    torch.manual_seed(seed)
    model = getattr(transformers, model_name)(getattr(transformers, cfg_name)(**kw))
    # random init leaves some norms at 1 and biases at 0: perturb everything so every
    # parameter matters for the comparison
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model.float().eval()


def save(model: torch.nn.Module, path: Path, **kw: Any) -> Path:
    model.save_pretrained(path, **kw)
    return path


@pytest.fixture(scope="session")
def checkpoint_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``factory(family, seed=0, **config_overrides) -> dir`` (cached per arguments)."""
    cache: dict[str, Path] = {}

    def make(family: str = "llama", seed: int = 0, **overrides: Any) -> Path:
        key = f"{family}-{seed}-{sorted(overrides.items())}"
        if key not in cache:
            d = tmp_path_factory.mktemp(family)
            save(build_hf(family, seed, **overrides), d)
            cache[key] = d
        return cache[key]

    return make


@pytest.fixture(scope="session")
def llama_dir(checkpoint_factory: Callable[..., Path]) -> Path:
    return checkpoint_factory("llama")


def random_prompts(n: int, lengths: list[int] | None = None, seed: int = 0) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    lengths = lengths or [3 + (7 * i) % 23 for i in range(n)]
    return [torch.randint(0, VOCAB, (lengths[i % len(lengths)],), generator=g).tolist() for i in range(n)]


def staggered_equals_solo(eng: Any, solo: Any, prompts: list[list[int]], params: Any,
                          steps_between: int) -> None:
    """Add the prompts to ``eng`` one by one, ``steps_between`` steps apart, run to the
    end, and check every output against ``solo`` generating that prompt alone; the
    pool must be whole and empty afterwards."""
    done: dict[str, list[int]] = {}
    rids: list[str] = []
    for p in prompts:
        rids.append(eng.add_request(p, params))
        for _ in range(steps_between):
            for o in eng.step():
                if o.finished:
                    done[o.request_id] = o.output_token_ids
    while eng.has_unfinished_requests():
        for o in eng.step():
            if o.finished:
                done[o.request_id] = o.output_token_ids
    for rid, p in zip(rids, prompts, strict=True):
        assert done[rid] == solo.generate([p], params)[0].output_token_ids
    eng.pool.check_integrity()
    assert eng.pool.num_free == eng.pool.num_blocks


def generate_staggered(eng: Any, prompts: list[list[int]], lengths: tuple[int, ...], top_k: int) -> list[Any]:
    """Greedy outputs with per-step diagnostics; rows of different ``lengths`` leave
    the batch at different steps."""
    from agentic_llm.engine import SamplingParams
    from agentic_llm.engine.diagnostics import DiagnosticsConfig

    params = [SamplingParams(max_tokens=n) for n in lengths]
    return eng.generate(prompts, params, diagnostics=DiagnosticsConfig(top_k=top_k))  # type: ignore[no-any-return]
