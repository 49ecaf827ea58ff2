"""What ``serve`` runs, driven over loopback gRPC: every metric the shipped Grafana
dashboard queries moves (AGA on and off), idle servers stay live, a stuck loop does not."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agentic_llm.client import Client
from agentic_llm.errors import AgenticError, ErrorCode
from tests.server.conftest import REQUEST

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "agentic-llm.json"

#: Dashboard metrics whose healthy value is zero: they are checked to be exported
#: (with the model label), not to be non-zero.
ZERO_WHEN_HEALTHY = {
    "agentic_alerts_fired_total": "no alert rule fires on a healthy server",
    "agentic_alerts_firing": "no alert rule fires on a healthy server",
    "agentic_observability_events_dropped_total": "no subscriber queue overflows",
    "agentic_observability_subscriber_errors_total": "no exporter raises",
    "agentic_queue_depth": "nothing waits once the requests are answered",
    "agentic_budget_stops_total": "the grammar closes every document within max_tokens "
                                  "(hard budget): no stop on a healthy run",
    "agentic_running_requests": "nothing runs once the requests are answered",
}
#: Retrieval runs only with a retriever backed by a knowledge base built in code
#: (``KVStoreRetriever``); ``serve``'s configuration has none (backend ``null``).
NEEDS_RETRIEVER = {"aga_retrieval_total", "aga_retrieval_injected_total", "aga_retrieval_score_count",
                   "aga_slot_change_rate"}
#: AGA metrics exist only when AGA is on.
AGA_ONLY = re.compile(r"^aga_")


def dashboard_metrics() -> set[str]:
    exprs: list[str] = []

    def walk(o: Any) -> None:
        if isinstance(o, dict):
            for k, v in o.items():
                (exprs.append(v) if k == "expr" and isinstance(v, str) else walk(v))
        elif isinstance(o, list):
            for v in o:
                walk(v)

    walk(json.loads(DASHBOARD.read_text(encoding="utf-8")))
    names = {n for e in exprs for n in re.findall(r"\b((?:agentic|aga)_[a-z0-9_]+)", e)}
    return {re.sub(r"_bucket$", "_count", n) for n in names}


def scrape(url: str) -> dict[str, list[Any]]:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    out: dict[str, list[Any]] = {}
    for fam in text_string_to_metric_families(text):
        # a labelled family with no series yet is exported as HELP/TYPE only
        out.setdefault(fam.name + ("_total" if fam.type == "counter" else ""), [])
        for s in fam.samples:
            out.setdefault(s.name, []).append(s)
    return out


#: Gates that open for the test's knowledge on a random model (the defaults keep
#: them shut on random hidden states): every hooked layer injects.
AGA_PROFILE = """\
tau_low: 0.0
tau_high: 0.001
gate2_min_score: -1.0
early_exit_enabled: false
gate1_unknown_uncertainty: 1.0
"""


def _serve(model_dir: Path, aga: bool, **loop: float) -> tuple[Any, Any, Any]:
    """Pipeline, observability stack and gRPC server, built the way ``serve`` builds them."""
    from agentic_llm.cli.serve import _observability
    from agentic_llm.config import ServerConfig
    from agentic_llm.server import AgenticServer
    from agentic_llm.serving import build_pipeline

    cfg = ServerConfig.from_dict({
        "listen": "127.0.0.1:0",
        "model": {"dir": str(model_dir), "num_blocks": 96},
        "cache": {"store": "memory"},
        "aga": {"enabled": aga, "config": str(_aga_profile(model_dir)) if aga else ""},
        "observability": {"enabled": True, "http_listen": "127.0.0.1:0"},
    })
    pipeline = build_pipeline(cfg)
    for k, v in loop.items():
        setattr(pipeline.loop, k, v)
    stack = _observability(cfg, pipeline)
    srv = AgenticServer(cfg, pipeline, health_registry=stack.health).start()
    return pipeline, stack, srv


def _aga_profile(model_dir: Path) -> Path:
    import yaml

    hidden = json.loads((model_dir / "config.json").read_text())["hidden_size"]
    path = model_dir.parent / "aga.yaml"
    path.write_text(AGA_PROFILE + yaml.safe_dump({"hidden_dim": hidden}), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.server.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("served-model"))


def _drive(c: Client, pipeline: Any, aga: bool) -> None:
    ns: list[str] = []
    if aga:
        cfg = pipeline.parts.knowledge.plugin.config
        for i in range(3):
            c.register_knowledge(namespace="hotels", key=f"fact {i}",
                                 key_vector=[0.1 * (i + 1)] * cfg.bottleneck_dim,
                                 value_vector=[0.05 * (i + 1)] * cfg.hidden_dim)
        ns = ["hotels"]
    base = {**REQUEST, "namespaces": ns,
            "budget": {"max_nodes": 4, "max_tokens": 600, "timeout_sec": 60}}

    def gen(i: int) -> None:
        # distinct prompts fill the small KV pool: the radix cache evicts
        req = {**base, "target_path": f"/dynamic/m_{i}",
               "prompt": f"{REQUEST['prompt']} (variant {i} " + "x" * 200 + ")"}
        try:
            assert c.generate_subgraph(req).valid
        except AgenticError as exc:  # a random model may not finish within the budget
            assert exc.code is ErrorCode.BUDGET_EXCEEDED

    for i in (0, 1, 2, 0):
        gen(i)
    try:  # a budget stop: max_tokens ends generation (closed by forced text, or refused)
        c.generate_subgraph({**base, "target_path": "/dynamic/cut",
                             "budget": {"max_nodes": 4, "max_tokens": 60, "timeout_sec": 60},
                             "flags": {"bypass_cache": True}})
    except AgenticError as exc:
        assert exc.code is ErrorCode.BUDGET_EXCEEDED
    list(c.fork([{**base, "target_path": f"/dynamic/f_{i}", "flags": {"bypass_cache": True}}
                          for i in range(2)], dag_id="dag-m"))
    c.invalidate_cache(path_prefix="/dynamic/m_1")


@pytest.mark.parametrize("aga", [False, True], ids=["aga-off", "aga-on"])
def test_every_dashboard_metric_moves_in_serve(model_dir: Path, aga: bool) -> None:
    pipeline, stack, srv = _serve(model_dir, aga)
    try:
        with Client(srv.address) as c:
            _drive(c, pipeline, aga)
        stack.flush()
        got = scrape(stack.url)
    finally:
        srv.stop()
        stack.shutdown()
        pipeline.close()
    wanted = {n for n in dashboard_metrics() if aga or not AGA_ONLY.match(n)}
    missing = sorted(n for n in wanted if n not in got)
    assert not missing, f"not exported by serve: {missing}"
    zero = sorted(n for n in wanted - set(ZERO_WHEN_HEALTHY) - NEEDS_RETRIEVER
                  if not any(s.value > 0 for s in got[n]))
    assert not zero, f"still zero after requests: {zero}"
    model = pipeline.model_name
    assert model and all(s.labels.get("model") == model for n in wanted for s in got[n])


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_idle_serve_stays_live_and_a_stuck_loop_fails_within_ten_seconds(model_dir: Path) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    # Shortened: the loop counts as stuck after 1.5 s without a beat (default 8 s).
    pipeline, stack, srv = _serve(model_dir, False, stall_after_s=1.5)
    release = threading.Event()
    try:
        with Client(srv.address) as c:
            assert c.generate_subgraph(REQUEST).valid
        with grpc.insecure_channel(srv.address) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            t0 = time.monotonic()
            while time.monotonic() - t0 < 6.0:  # 4x the stall limit, idle
                assert _get(stack.url + "/livez") == 200
                assert _get(stack.url + "/readyz") == 200
                resp = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
                assert resp.status == health_pb2.HealthCheckResponse.SERVING
                time.sleep(0.5)
        # Injected stall: a step that does not return.
        class Stall:
            def before_step(self) -> None:
                release.wait(30)

            def after_step(self, outputs: Any, duration_s: float) -> None:
                pass

        pipeline.loop.add_observer(Stall())
        pipeline.loop.submit([1, 2, 3], _params())
        t0 = time.monotonic()
        while _get(stack.url + "/livez") == 200 and time.monotonic() - t0 < 15:
            time.sleep(0.1)
        took = time.monotonic() - t0
        assert _get(stack.url + "/livez") == 503 and took < 10.0
        release.set()
        t0 = time.monotonic()
        while _get(stack.url + "/livez") != 200 and time.monotonic() - t0 < 5:
            time.sleep(0.1)
        assert _get(stack.url + "/livez") == 200  # live again once the step returns
    finally:
        release.set()
        srv.stop()
        stack.shutdown()
        pipeline.close()


def _params() -> Any:
    from agentic_llm.engine import SamplingParams

    return SamplingParams(max_tokens=2)

