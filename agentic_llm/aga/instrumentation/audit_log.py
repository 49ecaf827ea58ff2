"""AuditLog: every knowledge change, in memory, filterable, mirrored onto the event bus."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from agentic_llm.observability.events import EventBus
from agentic_llm.observability.kinds import AUDIT

__all__ = ["AuditLog", "AuditEntry"]

_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}


@dataclass(frozen=True)
class AuditEntry:
    """One knowledge operation."""

    operation: str
    target: str
    namespace: str
    success: bool
    timestamp: float
    actor: str = ""
    level: str = "INFO"
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"operation": self.operation, "target": self.target, "namespace": self.namespace,
                "success": self.success, "timestamp": self.timestamp, "actor": self.actor,
                "level": self.level, "details": dict(self.details)}


class AuditLog:
    """Bounded in-memory audit trail.

    Args:
        max_entries: oldest entries are dropped beyond this.
        level: entries below this level (DEBUG < INFO < WARNING < ERROR) are not kept.
        bus: where ``audit`` events are mirrored (None: nowhere).
    """

    def __init__(self, max_entries: int = 10000, level: str = "INFO",
                 bus: EventBus | None = None) -> None:
        self._entries: deque[AuditEntry] = deque(maxlen=max_entries)
        self._min_level = _LEVELS.get(level, 20)
        self._bus = bus
        self._lock = threading.Lock()
        self.total = 0

    def record(self, operation: str, target: str = "", *, namespace: str = "",
               success: bool = True, actor: str = "", level: str = "INFO",
               **details: Any) -> AuditEntry:
        """Record one operation; returns the entry (kept only at or above the log level)."""
        entry = AuditEntry(operation, target, namespace, success, time.time(), actor,
                           level, details)
        if _LEVELS.get(level, 20) >= self._min_level:
            with self._lock:
                self._entries.append(entry)
                self.total += 1
        if self._bus is not None:
            self._bus.emit(AUDIT, operation=operation, success=success, component="aga",
                           actor=actor, target=target,
                           details={"namespace": namespace, **details})
        return entry

    def query(self, *, operation: str | None = None, namespace: str | None = None,
              target: str | None = None, since: float | None = None,
              success: bool | None = None, limit: int | None = None) -> list[AuditEntry]:
        """Entries (oldest first) matching every given filter, the last ``limit`` of them."""
        with self._lock:
            out = [e for e in self._entries
                   if (operation is None or e.operation == operation)
                   and (namespace is None or e.namespace == namespace)
                   and (target is None or e.target == target)
                   and (since is None or e.timestamp >= since)
                   and (success is None or e.success == success)]
        if limit is not None:
            out = out[-limit:] if limit > 0 else []
        return out

    def __len__(self) -> int:
        return len(self._entries)
