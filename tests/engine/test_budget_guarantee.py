"""The token budget is a hard guarantee (grammar.budget): a model that never closes
the document on its own (random weights) still gets a valid document within
``max_tokens``, and so does the shipped model when a long prompt leaves little of its
context window. Never ERR_BUDGET_EXCEEDED once generation has started."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest

from agentic_llm.models import shipped_model_dir

from .conftest import build_hf


def _request(rng: random.Random, n_tools: int, max_nodes: int) -> dict[str, Any]:
    tools = [{"name": f"api_{i}_{'x' * rng.randint(0, 12)}",
              "description": "returns the records of the given kind " * rng.randint(1, 3),
              "arguments": [{"name": f"arg_{j}", "type": "string", "required": rng.random() < 0.6}
                            for j in range(rng.randint(0, 4))]}
             for i in range(n_tools)]
    return {"target_path": f"/dynamic/plan_{rng.randint(0, 99)}",
            "prompt": "Plan the steps to answer the question with the tools",
            "context": {"available_vars": {"city": "string", "n": "integer"},
                        "permissions": ["tool:*", "llm_call", "generate_subgraph"]},
            "tools": tools,
            "budget": {"max_nodes": max_nodes, "max_tokens": 4096}}


@pytest.fixture(scope="module")
def random_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Random Llama and Qwen2 checkpoints over the shipped tokenizer."""
    src = shipped_model_dir()
    vocab = json.loads((src / "config.json").read_text())["vocab_size"]
    out = {}
    for family in ("llama", "qwen2"):
        d = tmp_path_factory.mktemp(f"budget-{family}")
        build_hf(family, seed=3, vocab_size=vocab, max_position_embeddings=2048,
                 bos_token_id=1, eos_token_id=2).save_pretrained(d)
        for name in ("tokenizer.json", "generation_config.json"):
            shutil.copy(src / name, d / name)
        out[family] = d
    return out


def _check(results: list[Any], limits: list[int]) -> None:
    for r, limit in zip(results, limits, strict=True):
        assert r.error is None, r.error
        assert r.valid, ([str(d) for d in r.errors[:3]], r.text[-300:])
        assert r.timings.output_tokens <= limit, (r.timings.output_tokens, limit)


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_random_model_closes_within_max_tokens(random_dirs: dict[str, Path], family: str) -> None:
    from agentic_llm.serving.local import LocalGenerator

    rng = random.Random(7)
    gen = LocalGenerator(random_dirs[family], max_num_seqs=4, num_blocks=512)
    try:
        limits = [64, 96, 128, 200, 256, 384, 512, rng.randint(64, 512)]
        reqs = []
        for limit in limits:
            req = _request(rng, rng.randint(0, 6), rng.randint(2, 12))
            req["budget"]["max_tokens"] = limit
            req["sampling"] = {"temperature": 1.0, "seed": rng.randint(0, 999)}
            reqs.append(req)
        _check(gen.generate(reqs, honour_timeouts=False), limits)
    finally:
        gen.close()


def test_shipped_model_closes_within_the_context_window() -> None:
    """30-60 granted tools and a prompt that leaves 64..512 tokens of the 2,048-token
    window: the output limit is what the window leaves, and the document fits it."""
    from agentic_llm.planner import GenerateRequest, plan
    from agentic_llm.serving.local import LocalGenerator

    rng = random.Random(11)
    gen = LocalGenerator(shipped_model_dir(), max_num_seqs=4, num_blocks=1024)
    tok = gen.pipeline.tokenizer
    try:
        reqs, limits = [], []
        for want in (64, 128, 256, 512):
            req = _request(rng, rng.randint(30, 60), 8)
            req["budget"]["max_tokens"] = 1024
            # pad the prompt until the window leaves about ``want`` tokens
            base = len(tok.encode(plan(GenerateRequest.from_json(req)).render_prompt()).ids)
            words = max(0, (2048 - want - base))
            req["prompt"] += " and" * words
            while True:
                n = len(tok.encode(plan(GenerateRequest.from_json(req)).render_prompt()).ids)
                if n <= 2048 - want:
                    break
                req["prompt"] = req["prompt"][:-4]
            left = 2048 - n
            assert 48 <= left <= 640
            reqs.append(req)
            limits.append(left)
        _check(gen.generate(reqs, honour_timeouts=False), limits)
    finally:
        gen.close()
