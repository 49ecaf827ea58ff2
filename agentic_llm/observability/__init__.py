"""Metrics, health, structured logs, audit storage, alerts, dashboards and traces.

Everything hangs off one :class:`~agentic_llm.observability.events.EventBus`: parts of
the engine emit events (through :mod:`agentic_llm.observability.emit`), exporters
subscribe. Importing this package is cheap; Prometheus, OpenTelemetry and the HTTP
server are imported only when an :class:`ObservabilityStack` starts them.
"""

from __future__ import annotations

from agentic_llm.observability import emit, kinds
from agentic_llm.observability.config import AlertRuleConfig, ObservabilityConfig
from agentic_llm.observability.events import (
    BusStats,
    Event,
    EventBus,
    Subscription,
    get_default_bus,
    set_default_bus,
)
from agentic_llm.observability.health import (
    CheckResult,
    HealthRegistry,
    Heartbeat,
)
from agentic_llm.observability.stack import ObservabilityStack

__all__ = [
    "AlertRuleConfig",
    "BusStats",
    "CheckResult",
    "Event",
    "EventBus",
    "HealthRegistry",
    "Heartbeat",
    "ObservabilityConfig",
    "ObservabilityStack",
    "Subscription",
    "emit",
    "get_default_bus",
    "kinds",
    "set_default_bus",
]
