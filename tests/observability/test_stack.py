"""The stack wires every exporter from one config and shuts down cleanly."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from agentic_llm.errors import AgenticError
from agentic_llm.observability import emit
from agentic_llm.observability.config import ObservabilityConfig
from agentic_llm.observability.events import EventBus
from agentic_llm.observability.stack import ObservabilityStack


def test_full_stack(tmp_path: Path) -> None:
    bus = EventBus()
    fired = []
    cfg = ObservabilityConfig(
        log_enabled=True, log_file=str(tmp_path / "events.log"),
        audit_enabled=True, audit_storage_backend="sqlite",
        audit_storage_path=str(tmp_path / "audit.db"), audit_max_records=10,
        alert_enabled=True, alert_log=False, prometheus_labels={"instance_group": "test"},
    )
    with ObservabilityStack(cfg, bus=bus, alert_callbacks=(fired.append,)) as stack:
        stack.bind_engine(lambda: {"pages_used": 2, "pages_free": 6, "running": 1, "waiting": 0})
        stack.bind_cache_store(lambda: False)
        stack.bind_aga(lambda: {"utilization": 0.1})
        for i in range(12):
            emit.audit("register", True, target=f"fact_{i}", bus=bus)
        emit.aga_store(100, utilization=0.99, bus=bus)
        emit.request_finished("r", "success", e2e_s=0.1, bus=bus)
        stack.alerts.evaluate()
        assert stack.flush(5)

        with urllib.request.urlopen(stack.url + "/health") as r:
            body = json.loads(r.read())
        assert r.status == 200 and body["status"] == "degraded"
        assert body["checks"]["cache_store"]["status"] == "degraded"
        with urllib.request.urlopen(stack.url + "/metrics") as r:
            text = r.read().decode()
        assert 'agentic_requests_total{error_code="none",instance_group="test",outcome="success"} 1.0' in text
        assert 'agentic_alerts_fired_total{instance_group="test",rule="high_utilization",severity="warning"} 1.0' in text
        assert [a.rule for a in fired] == ["high_utilization"]
        assert fired[0].labels == {"instance_group": "test"}
        dash = stack.generate_dashboard(tmp_path / "dash.json")
        assert json.loads(dash.read_text())["panels"]
    # shutdown flushed the audit buffer and applied count retention
    from agentic_llm.observability.audit import SqliteAuditStorage

    st = SqliteAuditStorage(tmp_path / "audit.db")
    assert st.count() == 10
    st.close()
    assert (tmp_path / "events.log").read_text().count('"event": "audit"') == 12
    assert bus.stats().subscribers == 0


def test_disabled_stack_subscribes_nothing() -> None:
    bus = EventBus()
    stack = ObservabilityStack(ObservabilityConfig(enabled=False), bus=bus).start()
    assert stack.url is None and bus.stats().subscribers == 0
    stack.shutdown()


def test_yaml_config(tmp_path: Path) -> None:
    p = tmp_path / "obs.yaml"
    p.write_text(
        "observability:\n"
        "  http_port: 0\n"
        "  log_format: text\n"
        "  request_labels: [tenant]\n"
        "  alert_rules:\n"
        "    - {name: slow_ttft, metric: ttft_p99_s, operator: '>', threshold: 2.0}\n"
    )
    cfg = ObservabilityConfig.from_yaml(p)
    assert cfg.request_labels == ("tenant",) and cfg.alert_rules[0].name == "slow_ttft"
    with pytest.raises(AgenticError, match="request_labels"):
        ObservabilityConfig(request_labels=("request_id",))
    with pytest.raises(AgenticError, match="audit_storage_path"):
        ObservabilityConfig(audit_enabled=True, audit_storage_backend="file")
    with pytest.raises(AgenticError, match="http_port"):
        ObservabilityConfig(http_port=70000)


def test_busy_port_is_a_clear_error() -> None:
    bus = EventBus()
    first = ObservabilityStack(ObservabilityConfig(), bus=bus).start()
    try:
        port = first.server.port
        with pytest.raises(AgenticError, match="http_port"):
            ObservabilityStack(ObservabilityConfig(http_port=port), bus=EventBus()).start()
    finally:
        first.shutdown()
