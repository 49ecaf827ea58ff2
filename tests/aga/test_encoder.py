"""Knowledge encoder: text facts become keys/values the host model itself produces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from agentic_llm.aga import AGAPlugin
from agentic_llm.engine import LLMEngine, SamplingParams
from agentic_llm.errors import AgenticError

from .conftest import random_ids, small_config


def _top1(model: torch.nn.Module, ids: list[int]) -> int:
    with torch.no_grad():
        return int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())


def test_registered_facts_become_the_top1_and_leave_other_prompts_alone(llama: torch.nn.Module) -> None:
    facts = random_ids(4, 8, seed=40)
    others = random_ids(6, 8, seed=41)
    targets = [11, 22, 33, 44]
    before_other = [_top1(llama, p) for p in others]
    plugin = AGAPlugin(small_config(layers=(2,), gate2_min_score=0.9)).attach(llama)
    try:
        plugin.calibrate(random_ids(8, 12, seed=42))
        for i, (p, t) in enumerate(zip(facts, targets, strict=True)):
            plugin.register_text(f"fact{i}", p, t, namespace="kb")
        with plugin.using_namespaces("kb"):
            assert [_top1(llama, p) for p in facts] == targets
            assert [_top1(llama, p) for p in others] == before_other
        # outside the namespace the facts are invisible
        assert [_top1(llama, p) for p in facts] != targets
        meta = plugin.list_knowledge("kb")[0]["metadata"]
        assert meta["target_id"] == 11 and meta["encoder_margin"] > 0
        with pytest.raises(AgenticError, match="calibrate before"):
            plugin.calibrate(random_ids(2, 4, seed=43))
    finally:
        plugin.detach()


def test_text_facts_from_jsonl_work_in_the_engine(llama: torch.nn.Module, llama_dir: Path,
                                                  tmp_path: Path) -> None:
    prompt = random_ids(1, 7, seed=44)[0]
    target = 99
    path = tmp_path / "facts.jsonl"
    path.write_text(json.dumps({"id": "f", "prompt": prompt, "target": target}) + "\n")
    plugin = AGAPlugin(small_config(layers=(2,), gate2_min_score=0.9))
    plugin.attach(llama)  # encode with the transformers copy of the checkpoint
    try:
        assert plugin.load_from(path) == 1
    finally:
        plugin.detach()
    engine = LLMEngine.from_pretrained(llama_dir, num_blocks=64, block_size=16)
    params = SamplingParams(max_tokens=1, temperature=0.0)
    before = engine.generate([prompt], params)[0].output_token_ids
    plugin.attach(engine)
    try:
        after = engine.generate([prompt], params)[0].output_token_ids
    finally:
        plugin.detach()
    assert before != [target] and after == [target]


def test_text_needs_a_tokenizer(llama: torch.nn.Module) -> None:
    plugin = AGAPlugin(small_config()).attach(llama)
    try:
        with pytest.raises(AgenticError, match="tokenizer"):
            plugin.register_text("t", "The capital of France is", " Paris")
        with pytest.raises(AgenticError, match="outside the vocabulary"):
            plugin.register_text("t", [1, 2, 3], 10**6)
        assert plugin.knowledge_count == 0
    finally:
        plugin.detach()
