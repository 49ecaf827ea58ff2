"""Metrics, health, structured logs, audit storage, alerts, dashboards and traces.

Everything hangs off one :class:`~agentic_llm.observability.events.EventBus`: parts of
the engine emit events, exporters subscribe. Importing this package is cheap; the
Prometheus, OpenTelemetry and HTTP pieces are imported by their own modules.
"""

from __future__ import annotations

from agentic_llm.observability.events import (
    BusStats,
    Event,
    EventBus,
    Subscription,
    get_default_bus,
    set_default_bus,
)

__all__ = [
    "BusStats",
    "Event",
    "EventBus",
    "Subscription",
    "get_default_bus",
    "set_default_bus",
]
