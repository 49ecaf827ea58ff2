"""Structured event logs: JSON and text lines, level filtering, rotation."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from agentic_llm.observability import emit
from agentic_llm.observability.config import ObservabilityConfig
from agentic_llm.observability.events import EventBus
from agentic_llm.observability.logs import LogExporter, configure_logging


def test_json_lines_and_level_filter(tmp_path: Path) -> None:
    path = tmp_path / "events.log"
    bus = EventBus()
    exp = LogExporter(bus, ObservabilityConfig(log_file=str(path), log_level="INFO")).start()
    # High-frequency kinds are not even subscribed at INFO.
    assert not bus.wants("engine.step") and bus.wants("request.finished")
    emit.engine_step(1, 0, bus=bus)
    emit.request_finished("r1", "success", output_tokens=3, bus=bus)
    emit.request_finished("r2", "error", error_code="ERR_TIMEOUT", bus=bus)
    emit.audit("register", True, target="fact", bus=bus)
    bus.flush(5)
    exp.stop()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["event"] for x in lines] == ["request.finished", "request.finished", "audit"]
    assert lines[0]["level"] == "INFO" and lines[0]["request_id"] == "r1"
    assert lines[1]["level"] == "WARNING" and lines[1]["error_code"] == "ERR_TIMEOUT"
    assert lines[2]["target"] == "fact" and "ts" in lines[2]


def test_text_format_and_debug_level(tmp_path: Path) -> None:
    path = tmp_path / "events.txt"
    bus = EventBus()
    cfg = ObservabilityConfig(log_file=str(path), log_format="text", log_level="DEBUG")
    exp = LogExporter(bus, cfg).start()
    emit.engine_step(2, 1, kv_pages_used=3, bus=bus)
    bus.flush(5)
    exp.stop()
    text = path.read_text()
    assert "DEBUG" in text and "engine.step" in text and "running=2" in text


def test_rotation_keeps_backups(tmp_path: Path) -> None:
    path = tmp_path / "events.log"
    bus = EventBus()
    cfg = ObservabilityConfig(log_file=str(path), log_max_bytes=1000, log_backup_count=2)
    exp = LogExporter(bus, cfg).start()
    for i in range(100):
        emit.request_finished(f"r{i}", "success", bus=bus)
    bus.flush(5)
    exp.stop()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["events.log", "events.log.1", "events.log.2"]
    for p in tmp_path.iterdir():
        assert p.stat().st_size <= 1000 + 400  # one line may tip it over
        for line in p.read_text().splitlines():
            json.loads(line)


def test_configure_logging_applies_formatter(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    logger = logging.getLogger("agentic_llm.test_logs_app")
    handlers = configure_logging(ObservabilityConfig(log_file=str(path)), logger)
    try:
        logger.info("loaded model", extra={"model": "tiny", "blocks": 64})
    finally:
        for h in handlers:
            logger.removeHandler(h)
            h.close()
    rec = json.loads(path.read_text())
    assert rec["message"] == "loaded model" and rec["model"] == "tiny" and rec["blocks"] == 64


def test_raising_handler_does_not_reach_emitter() -> None:
    class Broken(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            raise OSError("disk full")

        def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802
            raise OSError("disk full")

    bus = EventBus()
    exp = LogExporter(bus, ObservabilityConfig(), handlers=[Broken()]).start()
    for i in range(5):
        emit.request_finished(f"r{i}", "success", bus=bus)  # must not raise
    bus.flush(5)
    assert bus.stats().subscriber_errors == 5
    exp.stop()
