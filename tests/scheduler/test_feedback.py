"""Feedback batch sizing: converge on the target TPOT, shrink when slow, keep results."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from agentic_llm.engine import LLMEngine, SamplingParams
from agentic_llm.engine.loop import EngineLoop
from agentic_llm.scheduler.feedback import BatchSizeController, FeedbackConfig, FeedbackObserver


def plant(batch: int, per_seq: float = 0.002) -> float:
    """A decode step that costs a fixed overhead plus a per-sequence share."""
    return 0.001 + per_seq * batch


def test_config_is_validated() -> None:
    for bad in ({"target_tpot_s": 0.0}, {"target_tpot_s": 0.1, "min_seqs": 0},
                {"target_tpot_s": 0.1, "min_seqs": 9, "max_seqs": 4}, {"target_tpot_s": 0.1, "shrink": 1.0},
                {"target_tpot_s": 0.1, "smoothing": 0.0}, {"target_tpot_s": float("nan")}):
        with pytest.raises(ValueError):
            FeedbackConfig(**bad)  # type: ignore[arg-type]


def test_converges_near_the_target_and_tracks_a_slower_plant() -> None:
    c = BatchSizeController(FeedbackConfig(target_tpot_s=0.021, max_seqs=64), initial=2)
    for _ in range(200):
        c.observe(plant(c.batch_size), c.batch_size)
    assert 6 <= c.batch_size <= 12  # the plant meets 21 ms at 10 sequences
    settled = [b for _, b in c.history[-50:]]
    assert max(settled) - min(settled) <= 6
    for _ in range(200):  # the model got twice as expensive per sequence
        c.observe(plant(c.batch_size, per_seq=0.004), c.batch_size)
    assert 3 <= c.batch_size <= 6


def test_grows_only_when_the_batch_is_full_and_ignores_steps_without_decode() -> None:
    c = BatchSizeController(FeedbackConfig(target_tpot_s=1.0), initial=8)
    for _ in range(10):
        c.observe(0.01, 3)  # fast, but only 3 of 8 slots used: more slots would not help
    assert c.batch_size == 8
    c.observe(50.0, 0)  # a prefill-only step says nothing about TPOT
    assert c.batch_size == 8 and c.avg_step_s == pytest.approx(0.01)
    c.observe(0.01, 8)
    assert c.batch_size == 10
    c2 = BatchSizeController(FeedbackConfig(target_tpot_s=0.001, min_seqs=2), initial=3)
    for _ in range(10):
        c2.observe(1.0, 3)
    assert c2.batch_size == 2  # never below min_seqs


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import transformers

    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                   num_key_value_heads=1, vocab_size=64, max_position_embeddings=128,
                                   bos_token_id=None, eos_token_id=None, pad_token_id=None)
    path = tmp_path_factory.mktemp("tiny") / "llama"
    transformers.LlamaForCausalLM(cfg).float().eval().save_pretrained(path)
    return path


def test_feedback_loop_limits_the_engine_batch_without_changing_outputs(tiny_dir: Path) -> None:
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(0, 64, (5 + i % 4,), generator=g).tolist() for i in range(10)]
    params = SamplingParams(max_tokens=6, ignore_eos=True)
    plain = LLMEngine.from_pretrained(tiny_dir, block_size=4, num_blocks=128)
    expected = [o.output_token_ids for o in plain.generate(prompts, params)]
    plain.close()

    engine = LLMEngine.from_pretrained(tiny_dir, block_size=4, num_blocks=128, max_num_seqs=10)
    now = [0.0]

    def clock() -> float:
        # simulated time: each step costs 10 ms per running request
        now[0] += 0.005 * max(1, len(engine.scheduler.running))
        return now[0]

    feedback = FeedbackObserver(
        engine, BatchSizeController(FeedbackConfig(target_tpot_s=0.03, tolerance=0.0), initial=8), clock=clock)
    loop = EngineLoop(engine, observers=[feedback], thread=False)
    ids = [loop.submit(p, params).request_id for p in prompts]
    outs: dict[str, list[int]] = {}
    peak_after_shrink = 0
    while engine.has_unfinished_requests() or loop.in_flight:
        for o in loop.run_once():
            if o.finished:
                outs[o.request_id] = o.output_token_ids
        if engine.scheduler.max_num_seqs < 8:
            peak_after_shrink = max(peak_after_shrink, len(engine.scheduler.running))
    engine.close()
    assert [outs[i] for i in ids] == expected
    assert min(b for _, b in feedback.controller.history) <= 4
    assert peak_after_shrink <= 8
