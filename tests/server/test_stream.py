"""GenerateSubgraphStream: node events before the final response, token deltas,
cancellation mid-stream frees the request's pages and slot."""

from __future__ import annotations

import time
from typing import Any

from agentic_llm.serving import NodeEvent, ServingResult, TokenDelta
from tests.server.conftest import LONG_REQUEST, MULTI_NODE_REQUEST


def test_node_events_arrive_before_the_final_response(client: Any) -> None:
    items = []
    arrival = []
    for item in client.stream(LONG_REQUEST):  # sampled: several nodes under any target
        items.append(item)
        arrival.append(time.perf_counter())
    assert isinstance(items[-1], ServingResult)
    final = items[-1]
    events = [i for i in items if isinstance(i, NodeEvent)]
    assert len(events) >= 2 and final.valid
    assert [e.index for e in events] == list(range(len(events)))
    assert [e.node.id for e in events] == [n.id for n in final.nodes]
    # The first node was complete, and sent, well before the document was.
    assert events[0].elapsed_ms < final.timings.total_ms
    assert arrival[items.index(events[0])] < arrival[-1]
    assert all(isinstance(i, NodeEvent) for i in items[:-1])


def test_token_deltas_on_request(client: Any) -> None:
    items = list(client.stream(dict(MULTI_NODE_REQUEST, target_path="/dynamic/deltas"), tokens=True))
    deltas = [i for i in items if isinstance(i, TokenDelta)]
    final = items[-1]
    assert isinstance(final, ServingResult)
    assert "".join(d.text for d in deltas) == final.text
    assert sum(len(d.token_ids) for d in deltas) == final.counts.completion_tokens
    # Node events come interleaved with the deltas, not only at the end.
    first_node = next(i for i, x in enumerate(items) if isinstance(x, NodeEvent))
    last_delta = max(i for i, x in enumerate(items) if isinstance(x, TokenDelta))
    assert first_node < last_delta


def _wait(pred: Any, timeout: float = 15.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


def test_cancel_mid_stream_frees_pages_and_slot(server: Any, client: Any, pipeline: Any) -> None:
    engine = pipeline.engine
    admission = server.pipeline.admission
    stream = client.stream(LONG_REQUEST, tokens=True)
    first = next(stream)
    assert isinstance(first, TokenDelta)
    assert admission.stats().running == 1
    assert engine.stats()["blocks_used"] > 0
    stream.close()  # cancels the call
    assert _wait(lambda: admission.stats().running == 0)
    assert _wait(lambda: engine.stats()["running"] == 0 and engine.stats()["waiting"] == 0)
    # Every page the request held is free again once the prefix cache lets go of
    # the prompt pages it indexed.
    engine.prefix_cache.evict(engine.stats()["blocks_total"])
    assert _wait(lambda: engine.stats()["blocks_used"] == 0)
    assert engine.stats()["blocks_free"] == engine.stats()["blocks_total"]
    # The engine was stopped early: far fewer steps than a full generation needs.
    assert pipeline.loop.in_flight == 0
