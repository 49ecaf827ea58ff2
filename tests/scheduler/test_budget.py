"""Budget stops leave a valid document or a clear ERR_BUDGET_EXCEEDED, never a truncated one."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from agentic_llm import dsl
from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.scheduler.budget import (
    BudgetOutcome,
    BudgetProgress,
    GenerationBudget,
    GenerationController,
)

REPO = Path(__file__).resolve().parents[2]
REQUESTS = REPO / "bench" / "validity_requests.jsonl"


@pytest.fixture(scope="module")
def gen() -> Any:
    import torch

    from agentic_llm.models import shipped_model_dir
    from agentic_llm.models.generation import SubgraphGenerator

    torch.set_num_threads(1)
    g = SubgraphGenerator.from_model_dir(shipped_model_dir(), max_num_seqs=4, num_blocks=256)
    yield g
    g.close()


@pytest.fixture(scope="module")
def the_plan() -> Any:
    from agentic_llm.planner import GenerateRequest, plan

    raw = json.loads(REQUESTS.read_text(encoding="utf-8").splitlines()[0])
    raw["budget"] = {"max_nodes": 3, "max_tokens": 1024, "timeout_sec": 30}
    return plan(GenerateRequest.from_json(raw))


def run(gen: Any, p: Any, budget: GenerationBudget, **kw: Any) -> tuple[BudgetOutcome, list[BudgetProgress]]:
    seen: list[BudgetProgress] = []
    c = GenerationController(gen.engine, budget, matcher=gen.compiler.matcher_for(p),
                             validation_policy=p.validation_policy(), on_progress=seen.append, **kw)
    out = c.run(p.render_prompt())
    assert not gen.engine.has_unfinished_requests()
    return out, seen


def check_verdict(out: BudgetOutcome, p: Any) -> None:
    """The invariant: valid means a complete document that validates; else a clear error."""
    if out.valid:
        assert out.error is None
        assert not [d for d in dsl.check_text(out.text, p.validation_policy()) if d.is_error]
    else:
        assert out.error is not None and out.error.code is ErrorCode.BUDGET_EXCEEDED
        assert out.stopped_by in ("max_tokens", "timeout_sec")


def test_budget_is_validated() -> None:
    for bad in ({"max_tokens": 0}, {"max_nodes": 0}, {"timeout_sec": -1.0}, {"timeout_sec": float("nan")}):
        with pytest.raises(AgenticError) as exc:
            GenerationBudget(**bad)  # type: ignore[arg-type]
        assert exc.value.code is ErrorCode.INVALID_REQUEST


def test_max_nodes_closes_the_document_validly(gen: Any, the_plan: Any) -> None:
    out, seen = run(gen, the_plan, GenerationBudget.from_plan(the_plan))
    assert out.valid and out.error is None
    assert out.progress.node_count <= 3
    assert out.stopped_by in (None, "max_nodes")
    check_verdict(out, the_plan)
    # progress is reported as generation proceeds, never going backwards
    tokens = [s.tokens_used for s in seen]
    assert len(seen) > 2 and tokens == sorted(tokens) and seen[-1].finished
    assert [s.node_count for s in seen] == sorted(s.node_count for s in seen)
    assert out.progress.masked_tool_attempts >= 0


def test_max_tokens_cut_is_a_budget_error_not_a_document(gen: Any, the_plan: Any) -> None:
    out, _ = run(gen, the_plan, GenerationBudget(max_tokens=20, max_nodes=3))
    assert not out.valid
    assert out.error is not None and out.error.code is ErrorCode.BUDGET_EXCEEDED
    assert out.error.details["budget"] == "max_tokens" and out.progress.tokens_used == 20
    assert dsl.check_text(out.text, the_plan.validation_policy())  # the partial text really is broken


def test_max_tokens_near_the_end_closes_with_forced_text(gen: Any, the_plan: Any) -> None:
    full, _ = run(gen, the_plan, GenerationBudget(max_tokens=1024, max_nodes=3))
    n = full.progress.tokens_used
    outs = [run(gen, the_plan, GenerationBudget(max_tokens=m, max_nodes=3))[0] for m in (n - 1, n - 3, n // 2)]
    for o in outs:
        check_verdict(o, the_plan)
    assert outs[0].valid and outs[0].closed_by_force and outs[0].stopped_by == "max_tokens"
    assert outs[0].text == full.text  # forced closing text is what the model would have written
    assert not outs[2].valid


def test_timeout_stops_with_a_budget_error(gen: Any, the_plan: Any) -> None:
    ticks = itertools.count()
    out, _ = run(gen, the_plan, GenerationBudget(max_tokens=1024, max_nodes=3, timeout_sec=5.0),
                 clock=lambda: float(next(ticks)))
    assert out.stopped_by == "timeout_sec"
    check_verdict(out, the_plan)
    assert not out.valid and out.error is not None and out.error.details["budget"] == "timeout_sec"
    assert out.progress.tokens_used < 1024
