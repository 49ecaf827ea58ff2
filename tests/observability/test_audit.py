"""Audit storage backends, retention by age and count, and the batching recorder."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from agentic_llm.errors import AgenticError
from agentic_llm.observability import emit
from agentic_llm.observability.audit import (
    AuditRecord,
    AuditRecorder,
    AuditStorage,
    JsonlAuditStorage,
    MemoryAuditStorage,
    SqliteAuditStorage,
    open_storage,
)
from agentic_llm.observability.events import EventBus

DAY = 86_400.0


def make(kind: str, tmp_path: Path, **kw) -> AuditStorage:  # noqa: ANN003
    if kind == "memory":
        return MemoryAuditStorage(**kw)
    if kind == "file":
        return JsonlAuditStorage(tmp_path / "audit.jsonl", **kw)
    return SqliteAuditStorage(tmp_path / "audit.db", **kw)


BACKENDS = ("memory", "file", "sqlite")


@pytest.mark.parametrize("kind", BACKENDS)
def test_retention_by_age(kind: str, tmp_path: Path) -> None:
    st = make(kind, tmp_path, retention_days=7)
    now = time.time()
    st.append([AuditRecord(now - 30 * DAY, "register", True, target="ancient"),
               AuditRecord(now - 8 * DAY, "remove", True, target="old"),
               AuditRecord(now - 6 * DAY, "pin", True, target="recent"),
               AuditRecord(now, "register", False, target="new", details={"why": "dup"})])
    assert st.count() == 4
    assert st.purge(now) == 2
    kept = st.query()
    assert [r.target for r in kept] == ["recent", "new"]
    assert kept[1].details == {"why": "dup"} and kept[1].success is False
    assert st.purge(now) == 0
    st.close()


@pytest.mark.parametrize("kind", BACKENDS)
def test_retention_by_count_keeps_newest(kind: str, tmp_path: Path) -> None:
    st = make(kind, tmp_path, max_records=3)
    now = time.time()
    st.append([AuditRecord(now + i, "register", True, target=f"k{i}") for i in range(10)])
    assert st.purge(now) == 7
    assert [r.target for r in st.query()] == ["k7", "k8", "k9"]
    st.close()


@pytest.mark.parametrize("kind", BACKENDS)
def test_query_filters(kind: str, tmp_path: Path) -> None:
    st = make(kind, tmp_path)
    now = time.time()
    st.append([AuditRecord(now - 10, "register", True, component="aga"),
               AuditRecord(now - 5, "clear", True, component="cache"),
               AuditRecord(now - 1, "register", True, component="aga", actor="ops")])
    assert len(st.query(operation="register")) == 2
    assert [r.operation for r in st.query(component="cache")] == ["clear"]
    assert [r.actor for r in st.query(since=now - 2)] == ["ops"]
    assert [r.ts for r in st.query(limit=1)] == [now - 1]
    st.close()


def test_file_backends_persist_across_reopen(tmp_path: Path) -> None:
    for kind in ("file", "sqlite"):
        a = make(kind, tmp_path)
        a.append([AuditRecord(time.time(), "register", True, target="x")])
        a.close()
        b = make(kind, tmp_path)
        assert [r.target for r in b.query()] == ["x"]
        b.close()


def test_jsonl_skips_a_torn_line(tmp_path: Path) -> None:
    st = JsonlAuditStorage(tmp_path / "a.jsonl")
    st.append([AuditRecord(time.time(), "register", True)])
    with (tmp_path / "a.jsonl").open("a") as fh:
        fh.write('{"ts": 1, "operat')  # a crash mid-write
    assert st.count() == 1


def test_recorder_batches_and_flushes_on_stop(tmp_path: Path) -> None:
    bus = EventBus()
    st = SqliteAuditStorage(tmp_path / "a.db", max_records=100)
    rec = AuditRecorder(bus, st, batch_size=4, flush_interval=60).start()
    for i in range(6):
        emit.audit("register", True, target=f"fact_{i}", actor="admin", bus=bus)
    emit.audit("invalidate", True, component="cache", target="/dynamic/x", bus=bus)
    bus.emit("forward", layer=0, applied=True)  # not an audit event: ignored
    assert bus.flush(5)
    assert st.count() == 4  # one full batch written, three buffered
    rec.stop()
    assert st.count() == 7
    assert st.query(component="cache")[0].target == "/dynamic/x"
    st.close()


def test_recorder_interval_flush(tmp_path: Path) -> None:
    bus = EventBus()
    st = MemoryAuditStorage()
    rec = AuditRecorder(bus, st, batch_size=1000, flush_interval=0.05).start()
    emit.audit("register", True, bus=bus)
    deadline = time.monotonic() + 5
    while st.count() == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    rec.stop()
    assert st.count() == 1


def test_failing_storage_counts_once_per_interval_and_keeps_the_records() -> None:
    class Full(MemoryAuditStorage):
        broken = True

        def append(self, records: Any) -> None:
            if self.broken:
                raise OSError(28, "No space left on device")
            super().append(records)

    bus = EventBus()
    st = Full()
    rec = AuditRecorder(bus, st, batch_size=1, flush_interval=60).start()
    for i in range(50):
        emit.audit("register", True, target=f"fact_{i}", bus=bus)
    assert bus.flush(5)
    # the first write failed (a subscriber error); later records wait for the interval
    assert rec.write_errors == 1 and bus.stats().subscriber_errors == 1
    st.broken = False
    rec.stop()
    assert st.count() == 50


def test_open_storage_errors(tmp_path: Path) -> None:
    assert isinstance(open_storage("memory"), MemoryAuditStorage)
    with pytest.raises(AgenticError, match="needs a path"):
        open_storage("sqlite")
    with pytest.raises(AgenticError, match="unknown audit backend"):
        open_storage("postgres", tmp_path / "x")
    with pytest.raises(ValueError):
        MemoryAuditStorage(retention_days=0)
