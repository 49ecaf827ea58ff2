"""Records of served requests waiting for their outcome (in-process stores): at most
``library.max_pending_outcomes`` of them, oldest dropped first, expired ones purged."""

from __future__ import annotations

import pytest

from agentic_llm.config import LibraryConfig, ServerConfig
from agentic_llm.errors import AgenticError
from agentic_llm.library import SubgraphRegistry, open_library


def _lib(**kw: object) -> SubgraphRegistry:
    reg = open_library(LibraryConfig(store="memory", **kw))  # type: ignore[arg-type]
    assert reg is not None
    return reg


def _record(i: int) -> dict[str, object]:
    return {"tenant": "t", "target_path": f"/dynamic/u_{i}", "versions": {}, "offered": [],
            "request": {"prompt": f"unique request {i}"}, "text": f"text {i}"}


def test_pending_records_stay_within_the_cap_after_many_unique_requests() -> None:
    lib = _lib(max_pending_outcomes=50)
    for i in range(5000):
        lib.note_served(f"req-{i}", _record(i))
    assert len(lib.pending_outcomes) == 50
    # the newest are kept, the oldest dropped
    assert lib.served("req-4999") == _record(4999)
    assert lib.served("req-4950") == _record(4950)
    assert lib.served("req-4949") is None
    assert lib.served("req-0") is None


def test_expired_records_are_purged_on_insert(monkeypatch: pytest.MonkeyPatch) -> None:
    import agentic_llm.library.pending as pending

    now = [1000.0]
    monkeypatch.setattr(pending.time, "time", lambda: now[0])
    lib = _lib(outcome_ttl_sec=10.0)
    for i in range(30):
        lib.note_served(f"old-{i}", _record(i))
    now[0] += 11.0
    lib.note_served("new", _record(99))
    assert lib.pending_outcomes.ids() == ["new"]
    assert lib.served("new") == _record(99)


def test_max_pending_outcomes_is_validated() -> None:
    with pytest.raises(AgenticError) as e:
        ServerConfig.from_dict({"library": {"max_pending_outcomes": 0}})
    assert "library.max_pending_outcomes" in e.value.message
    assert ServerConfig.from_dict({}).library.max_pending_outcomes == 10_000
