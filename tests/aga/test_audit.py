"""The audit trail records every knowledge change, and mirrors it onto the event bus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from agentic_llm.aga import AGAPlugin, EventBus
from agentic_llm.errors import AgenticError

from .conftest import small_config


def test_every_knowledge_change_is_audited(tmp_path: Path) -> None:
    bus = EventBus()
    seen: list[str] = []
    bus.subscribe(lambda e: seen.append(e.fields["operation"]), "audit")
    plugin = AGAPlugin(small_config(max_slots=4, gate2_top_k=2, pin_registered=False), event_bus=bus)
    plugin.register("a", torch.randn(16), torch.randn(64), actor="alice")
    plugin.register("a", torch.randn(16), torch.randn(64))  # overwrite -> update
    plugin.register_batch([{"id": f"b{i}", "key": torch.randn(16), "value": torch.randn(64)}
                           for i in range(3)])
    plugin.pin("a")
    plugin.register("c", torch.randn(16), torch.randn(64))  # full: evicts the LRU unpinned entry
    plugin.unpin("a")
    path = tmp_path / "k.jsonl"
    path.write_text(json.dumps({"id": "j", "key": [1.0] * 16, "value": [0.5] * 64,
                                "namespace": "ns"}) + "\n")
    plugin.load_from(path)
    plugin.remove("c")
    plugin.clear("ns")
    session = plugin.create_streaming_session()
    session.update_knowledge("live", torch.randn(16), torch.randn(64))
    with pytest.raises(AgenticError):
        plugin.register("bad", torch.randn(3), torch.randn(64))
    ops = [e["operation"] for e in plugin.get_audit_trail()]
    assert ops[:3] == ["register", "update", "register"]
    for op in ("pin", "evict", "unpin", "load_from", "remove", "clear", "update"):
        assert op in ops
    failed = plugin.get_audit_trail(success=False)
    assert [e["target"] for e in failed] == ["bad"]
    assert plugin.get_audit_trail(operation="register", success=True, limit=1)[0]["target"] == "j"
    assert plugin.get_audit_trail(namespace="ns", operation="clear")[0]["details"]["count"] == 1
    assert seen == ops  # every audit entry was also emitted as an event
    assert plugin.get_audit_trail(operation="register")[0]["actor"] == "alice"


def test_text_and_bad_jsonl_records(tmp_path: Path) -> None:
    plugin = AGAPlugin(small_config())
    p = tmp_path / "bad.jsonl"
    p.write_text('{"id": "x", "key": [1.0]}\n')
    with pytest.raises(AgenticError, match="needs either"):
        plugin.load_from(p)
    p.write_text("not json\n")
    with pytest.raises(AgenticError, match=":1: not valid JSON"):
        plugin.load_from(p)
    with pytest.raises(AgenticError, match="transformers model"):
        plugin.register_batch([{"id": "t", "prompt": "a", "target": "b"}])
