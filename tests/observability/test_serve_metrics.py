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

#: AGA metrics exist only when AGA is on.
AGA_ONLY = re.compile(r"^aga_")
#: Gauges that are zero at rest: they are sampled while requests are in flight.
IN_FLIGHT = ("agentic_running_requests", "agentic_queue_depth")


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


class Peaks:
    """The largest value each metric showed over every scrape of one test, and
    whether every sample carried the served model's label."""

    def __init__(self) -> None:
        self.max: dict[str, float] = {}
        self.unlabelled: set[str] = set()

    def see(self, got: dict[str, list[Any]], model: str) -> dict[str, list[Any]]:
        for name, samples in got.items():
            self.max[name] = max([self.max.get(name, 0.0)] + [s.value for s in samples])
            if any(s.labels.get("model") != model for s in samples):
                self.unlabelled.add(name)
        return got


#: Gates that open for the test's knowledge on a random model (the defaults keep
#: them shut on random hidden states): every hooked layer injects. Retrieval: every
#: entry of the knowledge base matches (min_score -1), one slot is the retrieved
#: budget (8 * 0.125), so a retrieval of several entries replaces slots; time limits
#: sized for a loaded CPU, so no retrieval or forward is abandoned as too slow.
AGA_PROFILE = """\
tau_low: 0.0
tau_high: 0.001
gate2_min_score: -1.0
early_exit_enabled: false
gate1_unknown_uncertainty: 1.0
max_slots: 8
retriever_slot_ratio: 0.125
retriever_min_score: -1.0
retriever_timeout_ms: 5000.0
max_forward_timeout_ms: 5000.0
"""


def _obs_profile(tmp: Path) -> Path:
    """What an operator turns on: an alert rule a serving server crosses (any finished
    request), and audit records written to a full disk (every write fails)."""
    import yaml

    path = tmp / "observability.yaml"
    path.write_text(yaml.safe_dump({"observability": {
        "http_host": "127.0.0.1", "http_port": 0,
        "alert_enabled": True, "alert_default_rules": False, "alert_log": False,
        "alert_eval_interval_s": 0.2,
        "alert_rules": [{"name": "serving", "metric": "request_rate", "operator": ">",
                         "threshold": 0.0, "severity": "info"}],
        "audit_enabled": True, "audit_storage_backend": "file",
        "audit_storage_path": "/dev/full", "audit_batch_size": 1,
    }}), encoding="utf-8")
    return path


def _serve(model_dir: Path, aga: str = "", obs_config: Path | None = None,
           **loop: float) -> tuple[Any, Any, Any]:
    """Pipeline, observability stack and gRPC server, built the way ``serve`` builds
    them; ``aga``: "" (off), ``null`` (knowledge in the slots) or ``kvstore``
    (knowledge base searched by the retriever)."""
    from agentic_llm.cli.serve import _observability
    from agentic_llm.config import ServerConfig
    from agentic_llm.server import AgenticServer
    from agentic_llm.serving import build_pipeline

    cfg = ServerConfig.from_dict({
        "listen": "127.0.0.1:0",
        "model": {"dir": str(model_dir), "num_blocks": 96},
        "cache": {"store": "memory"},
        "library": {"store": "memory"},  # nothing archived by other runs is offered
        "aga": {"enabled": bool(aga), "retriever": aga or "null",
                "config": str(_aga_profile(model_dir)) if aga else ""},
        "observability": {"enabled": True, "http_listen": "127.0.0.1:0",
                          "config": str(obs_config or "")},
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


def _generate(c: Client, req: dict[str, Any]) -> None:
    try:
        assert c.generate_subgraph(req).valid
    except AgenticError as exc:  # a random model may not finish within the budget
        assert exc.code is ErrorCode.BUDGET_EXCEEDED


def _drive(c: Client, pipeline: Any, stack: Any, peaks: Peaks, aga: bool) -> None:
    ns: list[str] = []
    if aga:
        cfg = pipeline.parts.knowledge.plugin.config
        for i in range(3):
            # keys far apart (cosine -1/3): retrieval never takes one for another's copy
            key = [1.0 if j % 3 == i else -1.0 for j in range(cfg.bottleneck_dim)]
            c.register_knowledge(namespace="hotels", key=f"fact {i}", key_vector=key,
                                 value_vector=[0.05 * (i + 1)] * cfg.hidden_dim)
        ns = ["hotels"]
    base = {**REQUEST, "namespaces": ns,
            "budget": {"max_nodes": 4, "max_tokens": 600, "timeout_sec": 60}}

    def variant(name: str, i: int, pad: int = 200, **extra: Any) -> dict[str, Any]:
        # distinct prompts fill the small KV pool: the radix cache evicts
        return {**base, "target_path": f"/dynamic/{name}_{i}",
                "prompt": f"{REQUEST['prompt']} ({name} {i} " + "x" * pad + ")", **extra}

    for i in (0, 1, 2, 0):
        _generate(c, variant("m", i))
    # In flight: a long generation holds most of the 96-page KV pool (about 670 output
    # tokens; no namespaces, so knowledge never changes them), then three requests
    # with long prompts (about 1,200 tokens, 530 shared) arrive and wait for pages;
    # /metrics is sampled until all are done.
    blocker = {**variant("c", 0, pad=0, flags={"bypass_cache": True},
                         sampling={"temperature": 1.0, "seed": 2},
                         budget={"max_nodes": 8, "max_tokens": 800, "timeout_sec": 60}),
               "namespaces": []}
    wide = {"flags": {"bypass_cache": True},
            "budget": {"max_nodes": 4, "max_tokens": 250, "timeout_sec": 60}}
    for burst in range(3):  # bounded: a loaded machine may hide a short window
        first = threading.Thread(target=_generate, args=(c, blocker))
        first.start()
        while first.is_alive():  # until the long generation runs
            got = peaks.see(scrape(stack.url), pipeline.model_name)
            if any(x.value > 0 for x in got["agentic_running_requests"]):
                break
            time.sleep(0.01)
        threads = [first, *(threading.Thread(target=_generate, args=(
            c, variant("w", 3 * burst + i, pad=550, **wide))) for i in range(3))]
        for t in threads[1:]:
            t.start()
        while any(t.is_alive() for t in threads):
            peaks.see(scrape(stack.url), pipeline.model_name)
            time.sleep(0.03)
        for t in threads:
            t.join()
        if all(peaks.max.get(g, 0) > 0 for g in IN_FLIGHT):
            break
    # a budget stop: the request's time budget runs out mid-generation
    with pytest.raises(AgenticError) as stopped:
        c.generate_subgraph(variant("t", 0, flags={"bypass_cache": True},
                                    budget={"max_nodes": 4, "max_tokens": 600,
                                            "timeout_sec": 0.05}))
    assert stopped.value.code is ErrorCode.TIMEOUT
    list(c.fork([{**base, "target_path": f"/dynamic/f_{i}", "flags": {"bypass_cache": True}}
                 for i in range(2)], dag_id="dag-m"))
    c.invalidate_cache(path_prefix="/dynamic/m_1")


def _serve_and_drive(model_dir: Path, tmp: Path, aga: str, peaks: Peaks) -> None:
    pipeline, stack, srv = _serve(model_dir, aga, _obs_profile(tmp))
    # a slow subscriber with a one-event queue, as a custom exporter would subscribe:
    # a burst of serving events overflows it
    slow = stack.bus.subscribe(lambda _e: time.sleep(0.005), threaded=True, queue_size=1,
                               name="slow-exporter")
    try:
        with Client(srv.address) as c:
            _drive(c, pipeline, stack, peaks, bool(aga))
        stack.flush()
        t0 = time.monotonic()  # the alert rule is evaluated every 0.2 s
        while True:
            peaks.see(scrape(stack.url), pipeline.model_name)
            if peaks.max.get("agentic_alerts_fired_total", 0) > 0 or time.monotonic() - t0 > 10:
                break
            time.sleep(0.1)
        # the exporter itself never failed on what serve emitted
        assert stack.prometheus.errors == 0
    finally:
        slow.close()
        srv.stop()
        stack.shutdown()
        pipeline.close()
    assert pipeline.model_name and not peaks.unlabelled, f"no model label: {peaks.unlabelled}"


@pytest.mark.parametrize("aga", [False, True], ids=["aga-off", "aga-on"])
def test_every_dashboard_metric_moves_in_serve(model_dir: Path, tmp_path: Path,
                                               aga: bool) -> None:
    """Every metric the dashboard queries is exported with the model label and shows
    a non-zero value. AGA on runs both ways ``serve`` keeps knowledge: in the slots
    (registered entries pinned there) and in a knowledge base its retriever searches
    (retrieval, injection by the retriever, slot changes)."""
    peaks = Peaks()
    for mode in (("null", "kvstore") if aga else ("",)):
        _serve_and_drive(model_dir, tmp_path, mode, peaks)
    wanted = {n for n in dashboard_metrics() if aga or not AGA_ONLY.match(n)}
    missing = sorted(n for n in wanted if n not in peaks.max)
    assert not missing, f"not exported by serve: {missing}"
    zero = sorted(n for n in wanted if not peaks.max[n] > 0)
    assert not zero, f"still zero after requests: {zero}"


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
    pipeline, stack, srv = _serve(model_dir, stall_after_s=1.5)
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

