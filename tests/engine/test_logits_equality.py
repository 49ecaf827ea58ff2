"""Our model's logits equal transformers' own, prefill and 50 decode steps, pages scattered."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from agentic_llm.engine.attention import get_backend
from agentic_llm.engine.forward import build_forward_batch
from agentic_llm.engine.kv import PagedKVPool
from agentic_llm.engine.loader import load_model

from .conftest import FAMILIES, VOCAB, build_hf, save

DECODE_STEPS = 50
BLOCK = 4


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def run_family(family: str, tmp_path: Path, device: str = "cpu") -> list[float]:
    hf = build_hf(family, seed=1)
    d = save(hf, tmp_path / family)
    loaded = load_model(d, device=device)
    cfg = loaded.config
    # shuffled free list + interleaved sequences: every table is scattered; a third
    # sequence joins at step 10 with a long prefill mixed into the others' decode
    pool = PagedKVPool(
        96, BLOCK, cfg.num_hidden_layers, cfg.num_key_value_heads, cfg.head_dim, device=device, shuffle_seed=7
    )
    backend = get_backend("torch_sdpa")
    g = torch.Generator().manual_seed(3)
    prompt_lens = [13, 6, 40]
    join_at = [0, 0, 10]
    seqs = [torch.randint(0, VOCAB, (n + DECODE_STEPS,), generator=g) for n in prompt_lens]
    with torch.no_grad():
        refs = [hf(s[None]).logits[0] for s in seqs]  # [len, vocab]; causal = incremental
    tables: list[list[int]] = [[], [], []]
    errs: list[float] = []
    starts = [0, 0, 0]
    for step in range(DECODE_STEPS + 1):
        chunks = []
        active = [r for r in range(3) if join_at[r] <= step and starts[r] < len(seqs[r])]
        for r in active:
            end = prompt_lens[r] if starts[r] == 0 else starts[r] + 1
            need = -(-end // BLOCK) - len(tables[r])
            if need > 0:
                tables[r].extend(pool.allocate(need))
            chunks.append((seqs[r][starts[r] : end].tolist(), starts[r], tables[r]))
            starts[r] = end
        logits = loaded.model(build_forward_batch(chunks, BLOCK, device), pool, backend).cpu()
        for i, r in enumerate(active):
            errs.append(rel_err(logits[i], refs[r][starts[r] - 1]))
    pool.check_integrity()
    return errs


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_logits_match_transformers(family: str, tmp_path: Path) -> None:
    errs = run_family(family, tmp_path)
    assert len(errs) == 3 * (DECODE_STEPS + 1) - 10
    assert max(errs) < 1e-4, f"{family}: max relative error {max(errs):.2e}"


@pytest.mark.gpu
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_logits_match_transformers_cuda(family: str, tmp_path: Path) -> None:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    errs = run_family(family, tmp_path, device="cuda")
    assert max(errs) < 1e-4, f"{family}: max relative error {max(errs):.2e}"
