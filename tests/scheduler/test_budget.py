"""Budget stops leave a valid document or a clear ERR_BUDGET_EXCEEDED, never a truncated one.

Run on the serving pipeline (what ``serve`` runs) with the shipped model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentic_llm import dsl
from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.scheduler.budget import budget_stop, close_forced

REPO = Path(__file__).resolve().parents[2]
REQUESTS = REPO / "bench" / "validity_requests.jsonl"


@pytest.fixture(scope="module")
def pipeline() -> Iterator[Any]:
    import torch

    from agentic_llm.config import ServerConfig
    from agentic_llm.models import shipped_model_dir
    from agentic_llm.serving import build_pipeline

    torch.set_num_threads(1)
    cfg = ServerConfig.from_dict({"model": {"dir": str(shipped_model_dir()), "num_blocks": 256},
                                  "cache": {"store": "memory"}})
    p = build_pipeline(cfg)
    yield p
    p.close()


def request(max_tokens: int, timeout_sec: float = 30.0) -> Any:
    from agentic_llm.planner import GenerateRequest

    raw = json.loads(REQUESTS.read_text(encoding="utf-8").splitlines()[0])
    raw["budget"] = {"max_nodes": 3, "max_tokens": max_tokens, "timeout_sec": timeout_sec}
    raw["flags"] = {"bypass_cache": True}
    return GenerateRequest.from_json(raw)


def policy() -> Any:
    from agentic_llm.planner import plan

    return plan(request(1024)).validation_policy()


def test_max_nodes_closes_the_document_validly(pipeline: Any) -> None:
    res = pipeline.run(request(1024))
    assert res.valid and res.counts.node_count <= 3
    assert res.budget_stop in ("", "max_nodes")
    assert not [d for d in dsl.check_text(res.text, policy()) if d.is_error]


def test_every_max_tokens_gives_a_valid_document_within_it_or_a_refusal(pipeline: Any) -> None:
    # The grammar closes the document within max_tokens (hard budget); a budget too
    # small for any valid subgraph is refused with ERR_BUDGET_EXCEEDED.
    full = pipeline.run(request(1024))
    n = full.counts.completion_tokens
    for m in (40, 60, n // 2, n - 3, n - 1):
        try:
            res = pipeline.run(request(m))
        except AgenticError as exc:
            assert exc.code is ErrorCode.BUDGET_EXCEEDED
            continue
        assert res.valid and res.counts.completion_tokens <= m
        assert not [d for d in dsl.check_text(res.text, policy()) if d.is_error]
    assert pipeline.engine.has_unfinished_requests() is False


def test_timeout_is_err_timeout_and_frees_the_engine(pipeline: Any) -> None:
    with pytest.raises(AgenticError) as exc:
        pipeline.run(request(1024, timeout_sec=0.001))
    assert exc.value.code is ErrorCode.TIMEOUT
    st = pipeline.loop.stats()
    assert pipeline.loop.in_flight == 0 and st["running"] == 0


class _Forced:
    """A matcher whose remaining text is forced, then complete."""

    def __init__(self, parts: list[str], stuck: bool = False) -> None:
        self.parts, self.stuck, self.accepted = list(parts), stuck, ""

    def is_completed(self) -> bool:
        return not self.parts and not self.stuck

    def find_jump_forward_string(self) -> str:
        return self.parts[0] if self.parts else ""

    def accept_string(self, s: str) -> bool:
        self.accepted += self.parts.pop(0)
        return True


def test_close_forced_and_budget_stop() -> None:
    assert close_forced(_Forced(["a", "b"])) == "ab"
    assert close_forced(_Forced([])) == ""
    assert close_forced(_Forced(["a"], stuck=True)) is None  # a choice remains
    assert budget_stop("length", True, 2, 3) == "max_tokens"
    assert budget_stop("stop", False, 3, 3) == "max_nodes"
    assert budget_stop("stop", False, 2, 3) == ""
