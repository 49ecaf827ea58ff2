"""Durable audit trail of knowledge and cache administration operations.

Three backends share one interface: in memory, JSONL file, SQLite. Retention keeps
records younger than ``retention_days`` and at most ``max_records`` (newest kept);
:meth:`AuditStorage.purge` applies it and :class:`AuditRecorder` calls it after each
flush. The recorder turns ``audit`` bus events into records, buffering up to
``batch_size`` records or ``flush_interval`` seconds, on its own thread.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.observability import kinds as K
from agentic_llm.observability.events import Event, EventBus, Subscription

__all__ = [
    "AuditRecord",
    "AuditStorage",
    "MemoryAuditStorage",
    "JsonlAuditStorage",
    "SqliteAuditStorage",
    "AuditRecorder",
    "open_storage",
]

_DAY = 86_400.0


@dataclass(frozen=True)
class AuditRecord:
    """One audited operation."""

    ts: float
    operation: str
    success: bool
    component: str = "aga"
    actor: str = ""
    target: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_event(cls, event: Event) -> AuditRecord:
        """Build from an ``audit`` bus event."""
        f = event.fields
        return cls(
            ts=event.ts, operation=str(f.get("operation", "")), success=bool(f.get("success")),
            component=str(f.get("component") or "aga"), actor=str(f.get("actor") or ""),
            target=str(f.get("target") or ""), details=dict(f.get("details") or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        d = asdict(self)
        d["details"] = dict(self.details)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AuditRecord:
        """Inverse of :meth:`to_dict`."""
        return cls(float(d["ts"]), str(d["operation"]), bool(d["success"]),
                   str(d.get("component", "aga")), str(d.get("actor", "")),
                   str(d.get("target", "")), dict(d.get("details") or {}))


class AuditStorage(ABC):
    """Where audit records live.

    Args:
        retention_days: drop records older than this on purge (None keeps all ages).
        max_records: keep at most this many, newest first (None: no cap).
    """

    def __init__(self, *, retention_days: float | None = None, max_records: int | None = None) -> None:
        if retention_days is not None and retention_days <= 0:
            raise ValueError("retention_days must be > 0 or None")
        if max_records is not None and max_records < 1:
            raise ValueError("max_records must be >= 1 or None")
        self.retention_days = retention_days
        self.max_records = max_records
        self._lock = threading.Lock()

    def _cutoff(self, now: float | None) -> float | None:
        if self.retention_days is None:
            return None
        return (time.time() if now is None else now) - self.retention_days * _DAY

    @abstractmethod
    def append(self, records: Iterable[AuditRecord]) -> None:
        """Store ``records``."""

    @abstractmethod
    def query(
        self, *, since: float | None = None, operation: str | None = None,
        component: str | None = None, limit: int | None = None,
    ) -> list[AuditRecord]:
        """Records matching every given filter, oldest first (the newest ``limit``)."""

    @abstractmethod
    def count(self) -> int:
        """How many records are stored."""

    @abstractmethod
    def purge(self, now: float | None = None) -> int:
        """Apply retention; returns how many records were removed."""

    def close(self) -> None:  # noqa: B027 - most backends hold nothing to release
        """Release files and connections."""
        return None


def _matches(r: AuditRecord, since: float | None, operation: str | None,
             component: str | None) -> bool:
    return ((since is None or r.ts >= since) and (operation is None or r.operation == operation)
            and (component is None or r.component == component))


def _tail(records: list[AuditRecord], limit: int | None) -> list[AuditRecord]:
    return records[-limit:] if limit is not None and limit >= 0 else records


class MemoryAuditStorage(AuditStorage):
    """Records in a list; lost at exit. The default backend."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._records: deque[AuditRecord] = deque()

    def append(self, records: Iterable[AuditRecord]) -> None:
        with self._lock:
            self._records.extend(records)

    def query(self, *, since: float | None = None, operation: str | None = None,
              component: str | None = None, limit: int | None = None) -> list[AuditRecord]:
        with self._lock:
            found = [r for r in self._records if _matches(r, since, operation, component)]
        return _tail(sorted(found, key=lambda r: r.ts), limit)

    def count(self) -> int:
        return len(self._records)

    def purge(self, now: float | None = None) -> int:
        cutoff = self._cutoff(now)
        with self._lock:
            before = len(self._records)
            kept = sorted((r for r in self._records if cutoff is None or r.ts >= cutoff),
                          key=lambda r: r.ts)
            if self.max_records is not None:
                kept = kept[-self.max_records:]
            self._records = deque(kept)
            return before - len(kept)


class JsonlAuditStorage(AuditStorage):
    """One JSON object per line in ``path``; purge rewrites the file atomically."""

    def __init__(self, path: str | Path, **kw: Any) -> None:
        super().__init__(**kw)
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch(exist_ok=True)
        except OSError as exc:
            raise AgenticError(ErrorCode.INVALID_CONFIG,
                               f"cannot create audit file {self.path}: {exc}") from exc

    def _read(self) -> list[AuditRecord]:
        out = []
        with self.path.open(encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    out.append(AuditRecord.from_dict(json.loads(line)))
                except (ValueError, KeyError, TypeError):
                    continue  # a torn last line after a crash; skip it, keep the rest
        return out

    def append(self, records: Iterable[AuditRecord]) -> None:
        lines = "".join(json.dumps(r.to_dict(), default=str) + "\n" for r in records)
        if not lines:
            return
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write(lines)
            fh.flush()

    def query(self, *, since: float | None = None, operation: str | None = None,
              component: str | None = None, limit: int | None = None) -> list[AuditRecord]:
        with self._lock:
            found = [r for r in self._read() if _matches(r, since, operation, component)]
        return _tail(sorted(found, key=lambda r: r.ts), limit)

    def count(self) -> int:
        with self._lock:
            return len(self._read())

    def purge(self, now: float | None = None) -> int:
        cutoff = self._cutoff(now)
        with self._lock:
            records = self._read()
            kept = sorted((r for r in records if cutoff is None or r.ts >= cutoff),
                          key=lambda r: r.ts)
            if self.max_records is not None:
                kept = kept[-self.max_records:]
            removed = len(records) - len(kept)
            if removed:
                tmp = self.path.with_suffix(self.path.suffix + ".tmp")
                with tmp.open("w", encoding="utf-8") as fh:
                    fh.writelines(json.dumps(r.to_dict(), default=str) + "\n" for r in kept)
                os.replace(tmp, self.path)
            return removed


class SqliteAuditStorage(AuditStorage):
    """A SQLite table indexed by time and operation."""

    _SCHEMA = """
        CREATE TABLE IF NOT EXISTS audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            ts REAL NOT NULL, component TEXT NOT NULL, operation TEXT NOT NULL,
            success INTEGER NOT NULL, actor TEXT NOT NULL, target TEXT NOT NULL,
            details TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS audit_ts ON audit (ts);
        CREATE INDEX IF NOT EXISTS audit_op ON audit (operation);
    """

    def __init__(self, path: str | Path, **kw: Any) -> None:
        super().__init__(**kw)
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False)
            self._db.executescript(self._SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise AgenticError(ErrorCode.INVALID_CONFIG,
                               f"cannot open audit database {self.path}: {exc}") from exc

    def append(self, records: Iterable[AuditRecord]) -> None:
        rows = [(r.ts, r.component, r.operation, int(r.success), r.actor, r.target,
                 json.dumps(dict(r.details), default=str)) for r in records]
        if not rows:
            return
        with self._lock, self._db:
            self._db.executemany(
                "INSERT INTO audit (ts, component, operation, success, actor, target, details)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def query(self, *, since: float | None = None, operation: str | None = None,
              component: str | None = None, limit: int | None = None) -> list[AuditRecord]:
        where, args = [], []
        for col, val, op in (("ts", since, ">="), ("operation", operation, "="),
                             ("component", component, "=")):
            if val is not None:
                where.append(f"{col} {op} ?")
                args.append(val)
        sql = "SELECT ts, operation, success, component, actor, target, details FROM audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY ts DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [AuditRecord(ts, op, bool(ok), comp, actor, target, json.loads(details))
                for ts, op, ok, comp, actor, target, details in reversed(rows)]

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM audit").fetchone()[0])

    def purge(self, now: float | None = None) -> int:
        cutoff = self._cutoff(now)
        removed = 0
        with self._lock, self._db:
            if cutoff is not None:
                removed += self._db.execute("DELETE FROM audit WHERE ts < ?", (cutoff,)).rowcount
            if self.max_records is not None:
                removed += self._db.execute(
                    "DELETE FROM audit WHERE id NOT IN "
                    "(SELECT id FROM audit ORDER BY ts DESC, id DESC LIMIT ?)",
                    (self.max_records,)).rowcount
        return removed

    def close(self) -> None:
        with self._lock:
            self._db.close()


def open_storage(
    backend: str, path: str | Path | None = None, *,
    retention_days: float | None = None, max_records: int | None = None,
) -> AuditStorage:
    """A storage for ``backend`` (``memory``, ``file`` or ``sqlite``)."""
    kw: dict[str, Any] = {"retention_days": retention_days, "max_records": max_records}
    if backend == "memory":
        return MemoryAuditStorage(**kw)
    if path is None:
        raise AgenticError(ErrorCode.INVALID_CONFIG, f"audit backend {backend!r} needs a path")
    if backend == "file":
        return JsonlAuditStorage(path, **kw)
    if backend == "sqlite":
        return SqliteAuditStorage(path, **kw)
    raise AgenticError(ErrorCode.INVALID_CONFIG,
                       f"unknown audit backend {backend!r}; choose memory, file or sqlite")


class AuditRecorder:
    """Writes ``audit`` bus events to a storage in batches.

    Args:
        bus: the bus to subscribe to.
        storage: where records go.
        batch_size: write as soon as this many records are buffered.
        flush_interval: and at least this often (seconds) while any are buffered.

    A failed write keeps its records (up to ``queue_size``) and raises; until the
    next interval flush, full batches wait instead of retrying the whole backlog on
    every new record.
    """

    def __init__(self, bus: EventBus, storage: AuditStorage, *, batch_size: int = 100,
                 flush_interval: float = 10.0, queue_size: int = 10_000) -> None:
        self.bus = bus
        self.storage = storage
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.queue_size = queue_size
        self.write_errors = 0
        self._failing = False  # the last write failed: only the interval flush retries
        self._buffer: list[AuditRecord] = []
        self._lock = threading.Lock()
        self._sub: Subscription | None = None
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None

    def start(self) -> AuditRecorder:
        """Subscribe (threaded) and start the interval flusher."""
        if self._sub is None:
            self._sub = self.bus.subscribe(self.record, kinds=K.AUDIT, threaded=True,
                                           queue_size=self.queue_size, name="audit")
            self._stop.clear()
            self._timer = threading.Thread(target=self._loop, name="audit-flush", daemon=True)
            self._timer.start()
        return self

    def record(self, event: Event) -> None:
        """Buffer one event; write the batch when it is full."""
        with self._lock:
            self._buffer.append(AuditRecord.from_event(event))
            full = len(self._buffer) >= self.batch_size and not self._failing
        if full:
            self.flush()

    def flush(self) -> int:
        """Write what is buffered, then apply retention; returns records written."""
        with self._lock:
            batch, self._buffer = self._buffer, []
        if not batch:
            return 0
        try:
            self.storage.append(batch)
            self.storage.purge()
        except (OSError, sqlite3.Error) as exc:
            self.write_errors += 1
            self._failing = True
            with self._lock:  # keep them for the next try, bounded by the queue size
                self._buffer = (batch + self._buffer)[-self.queue_size:]
            raise AgenticError(ErrorCode.INTERNAL, f"audit write failed: {exc}") from exc
        self._failing = False
        return len(batch)

    def _loop(self) -> None:
        while not self._stop.wait(self.flush_interval):
            try:
                self.flush()
            except AgenticError:
                continue

    def stop(self) -> None:
        """Unsubscribe, write what is left, stop the flusher."""
        if self._sub is not None:
            self._sub.close(timeout=5.0)
            self._sub = None
        self._stop.set()
        if self._timer is not None:
            self._timer.join(2)
            self._timer = None
        self.flush()
