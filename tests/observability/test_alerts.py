"""Alert rules over the event window, delivered to a loopback webhook, log and callback."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agentic_llm.errors import AgenticError
from agentic_llm.observability import emit
from agentic_llm.observability.alerts import (
    SIGNALS,
    AlertManager,
    LogChannel,
    SignalWindow,
    WebhookChannel,
    default_rules,
)
from agentic_llm.observability.config import AlertRuleConfig, ObservabilityConfig
from agentic_llm.observability.events import EventBus


class _Hook(BaseHTTPRequestHandler):
    received: list[tuple[str, dict]] = []
    arrived = threading.Event()

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.headers["Content-Type"], json.loads(body)))
        type(self).arrived.set()
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def webhook() -> Iterator[tuple[str, type[_Hook]]]:
    handler = type("Hook", (_Hook,), {"received": [], "arrived": threading.Event()})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/alerts", handler
    finally:
        srv.shutdown()
        srv.server_close()


def test_webhook_receives_firing_and_resolved(webhook) -> None:  # noqa: ANN001
    url, hook = webhook
    bus = EventBus()
    events = []
    bus.subscribe(events.append, kinds=("alert.fired", "alert.resolved"))
    mgr = AlertManager(bus, default_rules(), [WebhookChannel(url)], window_s=0.4)
    mgr.window.attach(bus)
    for _ in range(50):
        emit.aga_forward(1, True, latency_us=2500.0, bus=bus)
    fired = mgr.evaluate()
    assert [a.rule for a in fired] == ["slo_latency_p99"]
    assert mgr.flush(5) and hook.arrived.wait(5)
    ctype, body = hook.received[0]
    assert ctype == "application/json"
    assert body["rule"] == "slo_latency_p99" and body["state"] == "firing"
    assert body["severity"] == "warning" and body["value"] == 2500.0
    assert body["threshold"] == 1000.0

    # Once the slow samples leave the window, fast ones resolve the alert.
    time.sleep(0.5)
    for _ in range(50):
        bus.emit("forward", layer=1, applied=True, latency_us=50.0)
    resolved = mgr.evaluate()
    assert [(a.rule, a.state) for a in resolved] == [("slo_latency_p99", "resolved")]
    assert mgr.flush(5)
    assert [b["state"] for _, b in hook.received] == ["firing", "resolved"]
    assert [e.kind for e in events] == ["alert.fired", "alert.resolved"]
    mgr.stop()


def test_critical_rule_and_cooldown() -> None:
    bus = EventBus()
    got = []
    rule = AlertRuleConfig("errors", "error_rate", ">", 0.5, "critical", cooldown_s=100)
    mgr = AlertManager(bus, [rule], [got.append])
    mgr.window.attach(bus)
    for i in range(4):
        emit.request_finished(f"r{i}", "error", error_code="ERR_INTERNAL", bus=bus)
    t = time.time()
    assert len(mgr.evaluate(t)) == 1
    assert mgr.evaluate(t + 1) == []  # still firing, inside the cooldown: no repeat
    assert mgr.firing == ("errors",)
    mgr.flush()
    assert got[0].severity == "critical" and "errors" in got[0].message
    mgr.stop()


def test_failing_webhook_never_blocks_evaluation(caplog) -> None:  # noqa: ANN001
    bus = EventBus()
    callback_got = []
    # Port 9 on loopback (discard) is closed here: every POST fails.
    mgr = AlertManager(bus, default_rules(), [WebhookChannel("http://127.0.0.1:9/x", timeout_s=1),
                                              callback_got.append,
                                              LogChannel()])
    mgr.window.attach(bus)
    emit.aga_store(10, utilization=0.99, slot_change_rate=0.9, bus=bus)
    with caplog.at_level(logging.WARNING, logger="agentic_llm.alerts"):
        t0 = time.monotonic()
        fired = mgr.evaluate()
        assert time.monotonic() - t0 < 1.0
        assert mgr.flush(5)
    assert {a.rule for a in fired} == {"high_utilization", "slot_thrashing"}
    assert {a.rule for a in callback_got} == {"high_utilization", "slot_thrashing"}
    assert mgr.delivery_errors == 2
    assert any("high_utilization" in r.getMessage() for r in caplog.records)
    mgr.stop()


def test_background_evaluation_thread() -> None:
    bus = EventBus()
    got = []
    rule = AlertRuleConfig("deep_queue", "queue_depth", ">=", 10)
    mgr = AlertManager(bus, [rule], [got.append], eval_interval_s=0.05).start()
    emit.engine_step(1, 12, bus=bus)
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.02)
    mgr.stop()
    assert got and got[0].rule == "deep_queue" and got[0].value == 12


def test_signals_cover_engine_and_aga() -> None:
    w = SignalWindow(60)
    bus = EventBus()
    w.attach(bus)
    emit.prefix_cache_match(100, 25, bus=bus)
    emit.subgraph_cache_lookup("miss", bus=bus)
    emit.subgraph_cache_lookup("exact", bus=bus)
    emit.engine_step(2, 3, kv_pages_used=30, kv_pages_free=70, bus=bus)
    emit.grammar_compile(0.3, cache_hit=False, bus=bus)
    emit.request_finished("r", "success", ttft_s=0.1, tpot_s=0.02, e2e_s=1.0, bus=bus)
    v = w.values()
    assert set(v) == set(SIGNALS)
    assert v["prefix_cache_hit_rate"] == 0.25
    assert v["subgraph_cache_hit_rate"] == 0.5
    assert v["kv_utilization"] == 0.3
    assert v["grammar_compile_p99_s"] == 0.3
    assert v["ttft_p99_s"] == 0.1 and v["error_rate"] == 0.0
    assert v["latency_p99"] is None  # no AGA data: rules on it never fire
    w.detach()


def test_rule_config_validation() -> None:
    with pytest.raises(AgenticError, match="unknown metric"):
        AlertRuleConfig("x", "no_such_signal", ">", 1)
    with pytest.raises(AgenticError, match="operator"):
        AlertRuleConfig("x", "error_rate", "=>", 1)
    with pytest.raises(AgenticError, match="severity"):
        AlertRuleConfig("x", "error_rate", ">", 1, "fatal")  # type: ignore[arg-type]
    with pytest.raises(AgenticError, match="unique"):
        ObservabilityConfig(alert_rules=(AlertRuleConfig("a", "error_rate", ">", 1),) * 2)
    with pytest.raises(AgenticError, match="http"):
        ObservabilityConfig(alert_webhook_url="ftp://x")
    cfg = ObservabilityConfig.from_dict({"alert_rules": [
        {"name": "custom_high_entropy", "metric": "entropy_mean", "operator": ">",
         "threshold": 5.0, "severity": "critical", "message": "entropy {value:.2f}"}]})
    assert cfg.alert_rules[0].severity == "critical"
    assert [r.name for r in default_rules()][:4] == [
        "slo_latency_p99", "slo_latency_critical", "high_utilization", "slot_thrashing"]
