"""The emit helpers produce exactly the fields the event contract documents."""

from __future__ import annotations

from agentic_llm.observability.events import Event, EventBus
from agentic_llm.observability.kinds import EVENT_SPECS

from .drive import emit_every_kind


def test_helpers_match_the_contract() -> None:
    bus = EventBus()
    got: list[Event] = []
    bus.subscribe(got.append)
    emit_every_kind(bus)
    seen = {e.kind for e in got}
    assert seen == set(EVENT_SPECS) - {"alert.resolved"} | {"alert.fired"}
    for e in got:
        spec = EVENT_SPECS[e.kind]
        assert set(spec.required) <= set(e.fields), (e.kind, spec.required, e.fields)
        assert set(e.fields) <= set(spec.fields), (e.kind, set(e.fields) - set(spec.fields))
