"""The synthetic workload generator: valid requests, Zipf skew, fork groups, JSONL."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from agentic_llm.benchmarks.workloads import (
    WorkloadSpec,
    read_jsonl,
    synthetic_workload,
    write_jsonl,
)
from agentic_llm.errors import AgenticError
from agentic_llm.planner import GenerateRequest, plan


def test_every_request_plans_and_the_stream_is_deterministic() -> None:
    spec = WorkloadSpec(num_requests=60, seed=3)
    reqs = synthetic_workload(spec)
    assert reqs == synthetic_workload(spec)
    assert len(reqs) == 60
    arrivals = [r["arrival_s"] for r in reqs]
    assert arrivals == sorted(arrivals)
    for r in reqs:
        body = {k: v for k, v in r.items() if k != "arrival_s"}
        plan(GenerateRequest.from_json(body))


def test_popularity_is_skewed_and_fork_groups_share_a_dag() -> None:
    reqs = synthetic_workload(WorkloadSpec(num_requests=400, num_templates=8, fork_prob=0.2, seed=1))
    counts = Counter(r["target_path"] for r in reqs).most_common()
    assert counts[0][1] > 3 * counts[-1][1]  # Zipf: the head dominates the tail
    groups = Counter(r["dag_id"] for r in reqs if "dag_id" in r)
    assert groups and all(n <= 3 for n in groups.values())
    for dag in groups:
        members = [r for r in reqs if r.get("dag_id") == dag]
        assert len({r["target_path"] for r in members}) == 1
        assert len({r["branch_id"] for r in members}) == len(members)
    prompts = {r["library"][0]["path"] for r in reqs}
    assert prompts == {"/lib/math/add"}  # the shared listing is in front of every request


def test_jsonl_round_trip_and_errors(tmp_path: Path) -> None:
    reqs = synthetic_workload(WorkloadSpec(num_requests=5))
    path = tmp_path / "w.jsonl"
    write_jsonl(reqs, path)
    assert read_jsonl(path) == reqs
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"target_path": "/dynamic/a", "prompt": "x"}\n[1, 2]\n')
    with pytest.raises(AgenticError, match="bad.jsonl:2"):
        read_jsonl(bad)
    with pytest.raises(ValueError):
        WorkloadSpec(num_templates=0)
