"""End to end over a loopback server: publish, split, report, promote, archive, offer, export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentic_llm.errors import AgenticError
from tests.library.conftest import lib_doc

ROOT = Path(__file__).resolve().parents[2]
TENANT = "acme"
USE_LIB = {
    "target_path": "/dynamic/plan_1",
    "prompt": "Double the number {{ a }} with the library",
    "context": {"available_vars": {"a": "number"}, "values": {"a": 2}},
    "library": [{"path": "/lib/x"}],
    "budget": {"max_nodes": 4, "max_tokens": 200, "timeout_sec": 60},
    "tenant": TENANT,
}
SOLVE = {
    "target_path": "/dynamic/plan_1",
    "prompt": "Find three hotels in {{ city }} and rank them",
    "context": {"available_vars": {"city": "string"}, "values": {"city": "Rome"}},
    "budget": {"max_nodes": 4, "max_tokens": 200, "timeout_sec": 60},
    "tenant": TENANT,
}
SIMILAR = {**SOLVE, "prompt": "Find three good hotels in {{ city }} and rank them",
           "context": {"available_vars": {"city": "string"}, "values": {"city": "Oslo"}}}
UNRELATED = {**SOLVE, "prompt": "Summarise the weather report for {{ city }} tomorrow"}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "agentic_llm.cli.main", *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300)


def _plan_json(tmp_path: Path, request: dict[str, Any], library: Path) -> dict[str, Any]:
    req = tmp_path / "req.json"
    req.write_text(json.dumps(request))
    out = _cli("plan", "--request", str(req), "--json", "--library", str(library))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_ab_split_outcomes_promotion_and_cache_keys(lib_server: Any, lib_client: Any,
                                                    library_dir: Path, tmp_path: Path) -> None:
    from agentic_llm.cache.key import SubgraphKey
    from agentic_llm.planner import GenerateRequest, plan

    c = lib_client
    v1 = c.publish_library("/lib/x@v1", lib_doc(), tenant=TENANT, description="copy a")
    v2 = c.publish_library("/lib/x@v2", lib_doc(" "), tenant=TENANT)
    assert (v1.version, v2.version, v1.publisher, v1.signature) == (1, 2, TENANT, "(a: number) -> b: number")
    assert v1.created > 0
    split = c.set_library_split("/lib/x", {1: 0.5, 2: 0.5}, tenant=TENANT)
    assert split["weights"] == {1: 0.5, 2: 0.5} and split["sticky"] == "dag_id"

    lib = lib_server.pipeline.parts.library
    req_for = lambda dag: GenerateRequest.from_json({**USE_LIB, "dag_id": dag})  # noqa: E731
    key_before = {}
    seen: dict[int, int] = {1: 0, 2: 0}
    for i in range(24):
        dag = f"dag-{i}"
        r = c.generate_subgraph({**USE_LIB, "dag_id": dag})
        version = dict(r.library_versions)["/lib/x"]     # what the server pinned
        p = plan(req_for(dag), library=lib.resolver)
        assert p.library_versions == r.library_versions
        key_before[version] = SubgraphKey.from_plan(p).store_key()
        seen[version] += 1
        success = version == 2 or i % 4 == 0   # v2 always succeeds, v1 one time in four or so
        rep = c.report_outcome(r.request_id, success=success, latency_ms=100.0 + 10 * version,
                               cost=0.01, tenant=TENANT)
        assert rep["versions"] == [f"/lib/x@v{version}"]
    assert seen[1] >= 4 and seen[2] >= 4, seen   # the split sent traffic to both

    listed = {v["document"].version: v for v in c.list_versions("/lib/x", tenant=TENANT)["versions"]}
    assert listed[1]["runs"] == seen[1] and listed[2]["runs"] == seen[2]
    assert listed[2]["success_rate"] == 1.0 > listed[1]["success_rate"]
    assert listed[2]["mean_latency_ms"] == pytest.approx(120.0)
    assert listed[1]["is_default"] and not listed[2]["is_default"]
    metrics = lib.metrics_text()
    assert 'agentic_library_version_success_rate{path="/lib/x",version="v2"} 1.0' in metrics
    assert f'agentic_library_version_runs{{path="/lib/x",version="v1"}} {float(seen[1])}' in metrics
    served = _scraped_through_stack(lib_server.pipeline)  # what `serve` puts on /metrics
    assert served[("agentic_library_version_success_rate", "/lib/x", "v2")] == 1.0
    assert served[("agentic_library_version_runs", "/lib/x", "v1")] == float(seen[1])

    before = _plan_json(tmp_path, {**USE_LIB, "dag_id": "dag-0"}, library_dir)
    promo = c.promote_version("/lib/x", version=2, tenant=TENANT)
    assert (promo.version, promo.previous) == (2, 1)
    after = _plan_json(tmp_path, {**USE_LIB, "dag_id": "dag-0"}, library_dir)
    assert after["library_versions"] == {"/lib/x": "v2"}
    assert after["library"][0]["path"] == "/lib/x@v2"
    assert c.get_library("/lib/x", tenant=TENANT).version == 2
    for i in range(6):   # after the promotion every caller gets v2, with v2's cache key
        p = plan(req_for(f"dag-{i}"), library=lib.resolver)
        assert p.library_versions == (("/lib/x", 2),)
        assert SubgraphKey.from_plan(p).store_key() == key_before[2] != key_before[1]
    if before["library_versions"] == {"/lib/x": "v1"}:
        assert before["cache_key"] != after["cache_key"]


def test_promotion_is_refused_without_enough_runs(lib_client: Any) -> None:
    c = lib_client
    c.publish_library("/lib/y", lib_doc().replace("/lib/x", "/lib/y"), tenant=TENANT)
    c.publish_library("/lib/y", lib_doc(" ").replace("/lib/x", "/lib/y"), tenant=TENANT)
    c.set_library_split("/lib/y", {1: 1, 2: 1}, tenant=TENANT)
    with pytest.raises(AgenticError) as err:
        c.promote_version("/lib/y", tenant=TENANT)
    assert "not enough runs" in err.value.message
    with pytest.raises(AgenticError) as err:
        c.promote_version("/lib/y", tenant="someone-else")
    assert err.value.code.value == "ERR_PERMISSION_DENIED"
    with pytest.raises(AgenticError) as err:
        c.delete_library("/lib/y@v1", tenant=TENANT)
    assert err.value.code.value == "ERR_PERMISSION_DENIED"
    assert c.delete_library("/lib/y@v1", tenant="ops") == 1
    assert [d.version for d in c.list_library("/lib/y", tenant=TENANT)] == [2]


def test_success_is_archived_offered_to_a_similar_request_and_exported(
        lib_server: Any, lib_client: Any, library_dir: Path, tmp_path: Path) -> None:
    c = lib_client
    r = c.generate_subgraph(SOLVE)
    assert r.valid, r.diagnostics
    rep = c.report_outcome(r.request_id, success=True, latency_ms=250.0, tenant=TENANT)
    solved = rep["archived_path"]
    assert solved.startswith("/lib/solved/s")
    with pytest.raises(AgenticError) as err:   # one outcome per request
        c.report_outcome(r.request_id, success=True, tenant=TENANT)
    assert err.value.code.value == "ERR_NOT_FOUND"

    # A near-duplicate success merges into the same entry.
    r2 = c.generate_subgraph({**SOLVE, "prompt": "Find three hotels in {{ city }} and rank them!"})
    assert c.report_outcome(r2.request_id, success=True, tenant=TENANT)["archived_path"] == solved
    # (the successes of the A/B test above were archived too, under their own prompt)
    entries = [e for e in c.list_solved(tenant=TENANT) if e["context_types"] == {"city": "string"}]
    assert [e["path"] for e in entries] == [solved]
    assert entries[0]["successes"] == 2 and entries[0]["context_types"] == {"city": "string"}
    assert c.list_solved(tenant="other") == []

    # A similar later request is offered the archived subgraph; an unrelated one is not.
    assert r2.offered == (solved,)
    shown = _plan_json(tmp_path, SIMILAR, library_dir)
    assert shown["offered"] == [solved]
    assert solved in [e["path"] for e in shown["library"]]
    assert solved in shown["external_targets"]
    assert _plan_json(tmp_path, UNRELATED, library_dir)["offered"] == []
    assert _plan_json(tmp_path, {**SIMILAR, "tenant": "other"}, library_dir)["offered"] == []
    text = _cli("plan", "--request", str(tmp_path / "req.json"), "--library", str(library_dir))
    assert text.returncode == 0 and "offered" in text.stdout

    # The server offers it too (r2 above was already offered it) and counts how
    # the offers fared.
    r3 = c.generate_subgraph(SIMILAR)
    c.report_outcome(r3.request_id, success=False, tenant=TENANT)
    entry = {e["path"]: e for e in c.list_solved(tenant=TENANT)}[solved]
    assert (entry["uses"], entry["use_successes"]) == (2, 1)

    out = tmp_path / "corpus"
    done = _cli("corpus", "export", "--since", "1h", "--out", str(out), "--library", str(library_dir),
                "--json")
    assert done.returncode == 0, done.stderr
    examples = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert json.loads(done.stdout)["examples"] == len(examples) >= 1
    rec = next(e for e in examples if e["source"]["path"] == solved)
    assert rec["request"]["prompt"] == SOLVE["prompt"]
    assert rec["prompt"].rstrip().endswith("OUTPUT:") and "GOAL: Find three hotels" in rec["prompt"]
    assert rec["answer"].startswith("### AgenticDSL `/dynamic/plan_1`")
    assert rec["source"]["path"] == solved
    later = _cli("corpus", "export", "--since", "2099-01-01", "--out", str(tmp_path / "none"),
                 "--library", str(library_dir))
    assert later.returncode == 1


def test_server_health_names_the_library_store_and_async_sdk_reads_versions(lib_server: Any) -> None:
    import asyncio

    from agentic_llm.client import AsyncClient

    plugins = lib_server.health_checks.check().checks["plugins"]
    assert plugins.data["cache_store/library"] == "lmdb"
    assert plugins.data["cache_store/subgraph_cache"] == "memory"

    async def publish_and_read() -> Any:
        async with AsyncClient(lib_server.address, timeout=60) as c:
            doc = await c.publish_library("/lib/h", lib_doc().replace("/lib/x", "/lib/h"), tenant=TENANT)
            assert doc.version == 1
            return await c.list_library("/lib/h", versions=">=1", tenant=TENANT)

    docs = asyncio.run(publish_and_read())
    assert [(d.path, d.version, d.text) for d in docs] == [("/lib/h", 1, "")]


def _scraped_through_stack(pipeline: Any) -> dict[tuple[str, str, str], float]:
    """The library samples an ObservabilityStack bound to ``pipeline`` serves: the
    pipeline hands over its registry's collector (the stack never imports library)."""
    from prometheus_client.parser import text_string_to_metric_families

    from agentic_llm.observability.config import ObservabilityConfig
    from agentic_llm.observability.events import EventBus
    from agentic_llm.observability.stack import ObservabilityStack

    stack = ObservabilityStack(ObservabilityConfig(http_host="127.0.0.1", http_port=0),
                               bus=EventBus()).start()
    try:
        stack.bind_pipeline(pipeline, store="memory")
        text = stack.prometheus.exposition().decode()
    finally:
        stack.shutdown()
    return {(s.name, s.labels["path"], s.labels["version"]): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples
            if s.name.startswith("agentic_library_")}
