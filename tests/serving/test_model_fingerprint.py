"""The subgraph cache's engine version covers the model: swap the model under an LMDB
cache and its entries miss; the same model finds them again."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from agentic_llm.engine.fingerprint import engine_version, model_fingerprint
from agentic_llm.errors import AgenticError, ErrorCode
from tests.server.conftest import REQUEST
from tests.server.tiny_model import build_tiny_model


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("fingerprint")
    return build_tiny_model(root / "a", seed=0), build_tiny_model(root / "b", seed=1)


def _run(model: Path, store: Path) -> Any:
    """The result, or the refusal (a random model may not finish within its budget)."""
    from agentic_llm.config import ServerConfig
    from agentic_llm.planner import GenerateRequest
    from agentic_llm.serving import build_pipeline

    cfg = ServerConfig.from_dict({"model": {"dir": str(model), "num_blocks": 256},
                                  "cache": {"store": "lmdb", "path": str(store)}})
    pipeline = build_pipeline(cfg)
    req = {**REQUEST, "budget": {"max_nodes": 4, "max_tokens": 1000, "timeout_sec": 60}}
    try:
        return pipeline.run(GenerateRequest.from_json(req))
    except AgenticError as exc:
        assert exc.code is ErrorCode.BUDGET_EXCEEDED
        return exc
    finally:
        pipeline.close()


def test_swapping_the_model_under_an_lmdb_cache_misses(models: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = models
    store = tmp_path / "lmdb"
    first = _run(a, store)
    assert first.valid and first.cache.value != "exact"
    assert _run(a, store).cache.value == "exact"  # same model: served from the cache
    swapped = tmp_path / "model"
    shutil.copytree(b, swapped)
    other = _run(swapped, store)  # other weights: generated (or refused), never a's answer
    assert isinstance(other, AgenticError) or other.cache.value != "exact"
    shutil.rmtree(swapped)
    shutil.copytree(a, swapped)  # the same path now holds model a again
    again = _run(swapped, store)  # b's run dropped a's entries
    assert isinstance(again, AgenticError) or again.cache.value != "exact"


def test_fingerprint_covers_weights_config_and_tokenizer(models: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = models
    assert model_fingerprint(a) == model_fingerprint(a)
    assert model_fingerprint(a) != model_fingerprint(b)  # weights differ
    c = tmp_path / "c"
    shutil.copytree(a, c)
    tok = c / "tokenizer.json"
    tok.write_text(tok.read_text(encoding="utf-8").replace("{", "{ ", 1), encoding="utf-8")
    assert model_fingerprint(c) != model_fingerprint(a)  # tokenizer differs
    assert engine_version(a).endswith(model_fingerprint(a))
