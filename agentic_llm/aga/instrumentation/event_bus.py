"""The plugin's EventBus is the project's observability bus; every emit goes through here.

Re-exported as ``agentic_llm.aga.EventBus`` so code written against the seed API
(``plugin.event_bus.subscribe(...)``) keeps working. Event kinds and fields follow
``agentic_llm.observability.kinds`` (``forward``, ``retrieval``, ``audit``, ``aga.store``).
"""

from __future__ import annotations

from typing import Any

from agentic_llm.observability.events import EventBus, get_default_bus

__all__ = ["EventBus", "emit_event", "resolve_bus", "wants"]


def resolve_bus(bus: EventBus | None, buffer_size: int = 0) -> EventBus:
    """The bus a plugin emits into: ``bus`` if given, else a private ring-buffered bus
    when ``buffer_size`` > 0, else the process-wide default bus."""
    if bus is not None:
        return bus
    if buffer_size > 0:
        return EventBus(buffer_size=buffer_size)
    return get_default_bus()


def wants(bus: EventBus, kind: str) -> bool:
    """Whether an event of ``kind`` would reach anyone (lets callers skip costly fields)."""
    return bus.wants(kind)


def emit_event(bus: EventBus, kind: str, /, **fields: Any) -> None:
    """Emit one event; never raises (the bus is fail-open itself)."""
    bus.emit(kind, **fields)
