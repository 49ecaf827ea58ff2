"""The pipeline's per-request helpers: cancel tokens, the incremental decoder, the node stream."""

from __future__ import annotations

from agentic_llm.serving.nodes import NodeStream
from agentic_llm.serving.result import NodeEvent
from agentic_llm.serving.stream import CancelToken, TextDecoder


def test_cancel_reaches_bound_aborts_and_children_whenever_bound() -> None:
    calls: list[str] = []
    parent = CancelToken()
    early = parent.child()
    early.bind(lambda: calls.append("early"))
    parent.bind(lambda: calls.append("parent"))
    parent.cancel()
    assert calls == ["parent", "early"] and early.cancelled
    late = parent.child()  # a branch started after the cancel is cancelled at once
    assert late.cancelled
    late.bind(lambda: calls.append("late"))  # binding after the cancel aborts at once
    assert calls[-1] == "late"


class _Bytes:
    """A byte-level tokenizer: one id per UTF-8 byte, like a BPE's byte fallback."""

    def decode(self, ids: list[int]) -> str:
        return bytes(ids).decode("utf-8", errors="replace")


def test_decoder_holds_back_a_partial_utf8_character() -> None:
    dec = TextDecoder(_Bytes())
    raw = "plan_é!".encode()
    parts = [dec.add([b]) for b in raw]
    assert "".join(parts) == "plan_é!"
    assert "\ufffd" not in "".join(parts)  # never a replacement char for a split character
    assert dec.text() == "plan_é!"


def test_node_stream_emits_each_node_when_the_next_starts() -> None:
    events: list[NodeEvent] = []
    ns = NodeStream("/dynamic/p", events.append)
    doc = ('### AgenticDSL `/dynamic/p`\n```yaml\n# --- BEGIN AgenticDSL ---\nnodes:\n'
           '  - id: "start"\n    type: start\n    next: ["/end_soft"]\n'
           '  - id: "end_soft"\n    type: end\n# --- END AgenticDSL ---\n```\n')
    cut = doc.index('  - id: "end_soft"')
    ns.feed(doc[:cut])
    assert events == []  # the first node is not known complete yet
    line_end = doc.index("\n", cut) + 1
    ns.feed(doc[cut:line_end])  # the next item's first line is complete
    assert [e.node.id for e in events] == ["start"]
    ns.feed(doc[line_end:])
    ns.close()
    assert [e.node.id for e in events] == ["start", "end_soft"] and ns.count == 2
    assert all(isinstance(e.elapsed_ms, float) for e in events)

