"""The cache benchmark end to end on the shipped model: hits, transparency, counters."""

from __future__ import annotations

import copy

import pytest

from agentic_llm.benchmarks.cache import run_benchmark
from agentic_llm.benchmarks.workloads import WorkloadSpec, synthetic_workload
from agentic_llm.models import shipped_model_dir


@pytest.mark.slow
def test_exact_and_fuzzy_hits_are_transparent_and_counted() -> None:
    first = synthetic_workload(WorkloadSpec(num_requests=1, num_templates=1, fork_prob=0.0, seed=0))[0]
    other = copy.deepcopy(first)
    other["context"]["values"] = {"city": "Quito", "budget": 260}
    if other["context"]["values"] == first["context"]["values"]:
        other["context"]["values"]["budget"] = 95
    requests = [first, other, copy.deepcopy(first)]
    out = run_benchmark(requests, modes=("none", "fuzzy"), num_blocks=256, show_progress=False,
                        model=str(shipped_model_dir()))
    none, fuzzy = out["modes"]["none"], out["modes"]["fuzzy"]
    assert none["request_hit_rate"] == 0.0 and none["invalid_generations"] == 0
    assert fuzzy["exact_hits"] == 1 and fuzzy["fuzzy_hits"] == 1
    assert fuzzy["oracle_hit_rate"] == 2 / 3
    assert fuzzy["prefill_tokens"] < none["prefill_tokens"]
    tr = out["transparency"]
    assert {k: tr[k] for k in ("exact_hits_checked", "exact_false_hits", "fuzzy_hits_checked",
                               "fuzzy_invalid")} == {"exact_hits_checked": 1, "exact_false_hits": 0,
                                                     "fuzzy_hits_checked": 1, "fuzzy_invalid": 0}
