"""Tiny random transformers models and engines for the AGA tests (no downloads)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from agentic_llm.aga import AGAConfig

VOCAB = 256
HIDDEN = 64


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def build_llama(seed: int = 0, **overrides: Any) -> torch.nn.Module:
    """A 4-layer random LlamaForCausalLM, float32, eval mode."""
    from transformers import LlamaConfig, LlamaForCausalLM

    kw: dict[str, Any] = dict(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=128,
                              num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                              max_position_embeddings=256, bos_token_id=None, eos_token_id=None,
                              pad_token_id=None)
    kw.update(overrides)
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(**kw)).float().eval()


def small_config(**overrides: Any) -> AGAConfig:
    """Config sized for the tiny model."""
    kw: dict[str, Any] = dict(hidden_dim=HIDDEN, bottleneck_dim=16, max_slots=32,
                              gate2_top_k=4, value_norm_target=50.0, encoder_steps=60,
                              event_buffer_size=100,
                              # generous limits: the shared test machine can stall a
                              # thread for tens of ms; timeouts are tested explicitly
                              max_forward_timeout_ms=10_000.0, retriever_timeout_ms=10_000.0)
    kw.update(overrides)
    return AGAConfig(**kw)


def random_ids(n: int, length: int, seed: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, VOCAB, (length,), generator=g).tolist() for _ in range(n)]


def logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """The model's logits for ``ids``, without autograd."""
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.fixture(scope="session")
def llama() -> torch.nn.Module:
    return build_llama()


@pytest.fixture(scope="session")
def llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("aga-llama")
    build_llama().save_pretrained(d)
    return d
