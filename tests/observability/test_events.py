"""The event bus: routing, zero-cost idle path, fail-open delivery."""

from __future__ import annotations

import threading
import time

import pytest

from agentic_llm.observability.events import EventBus, get_default_bus, set_default_bus


def test_routes_by_kind_and_wildcard() -> None:
    bus = EventBus()
    only_a: list[str] = []
    every: list[str] = []
    bus.subscribe(lambda e: only_a.append(e.kind), "a")
    bus.subscribe(lambda e: every.append(e.kind))
    bus.emit("a", x=1)
    bus.emit("b", x=2)
    assert only_a == ["a"]
    assert every == ["a", "b"]
    assert bus.wants("a") and bus.wants("zzz")


def test_event_carries_fields_and_order() -> None:
    bus = EventBus()
    got = []
    bus.subscribe(got.append)
    bus.emit("k", a=1, b="two")
    bus.emit("k", a=2)
    assert got[0].fields == {"a": 1, "b": "two"}
    assert got[0].get("b") == "two" and got[1].get("b", "d") == "d"
    assert got[0].seq < got[1].seq
    assert got[0].to_dict()["kind"] == "k"


def test_idle_bus_builds_nothing() -> None:
    bus = EventBus()
    assert not bus.wants("a")
    bus.emit("a", x=1)
    assert bus.stats().emitted == 0
    sub = bus.subscribe(lambda e: None, "b")
    bus.emit("a")  # no subscriber of this kind: still free
    assert bus.stats().emitted == 0
    sub.close()
    assert not bus.wants("b")
    assert bus.stats().subscribers == 0


def test_raising_subscriber_is_counted_and_others_still_get_the_event() -> None:
    bus = EventBus()
    got: list[int] = []

    def broken(event):  # noqa: ANN001
        raise RuntimeError("exporter down")

    bad = bus.subscribe(broken)
    bus.subscribe(lambda e: got.append(e.fields["i"]))
    for i in range(5):
        bus.emit("x", i=i)  # must not raise
    assert got == [0, 1, 2, 3, 4]
    assert bad.errors == 5
    assert bus.stats().subscriber_errors == 5


def test_blocking_threaded_subscriber_never_blocks_the_emitter() -> None:
    bus = EventBus()
    release = threading.Event()
    seen: list[int] = []

    def stuck(event):  # noqa: ANN001
        release.wait(10)
        seen.append(event.fields["i"])

    sub = bus.subscribe(stuck, threaded=True, queue_size=4)
    t0 = time.monotonic()
    for i in range(200):
        bus.emit("x", i=i)
    elapsed = time.monotonic() - t0
    # The callback is stuck for 10 s; the emitter finished 200 emits without waiting.
    assert elapsed < 5.0
    assert sub.dropped >= 200 - 5  # at most queue_size + the one being handled
    assert bus.stats().dropped == sub.dropped
    release.set()
    assert bus.flush(5)
    assert len(seen) == 200 - sub.dropped
    sub.close()


def test_threaded_subscriber_delivers_everything_when_it_keeps_up() -> None:
    bus = EventBus()
    seen: list[int] = []
    sub = bus.subscribe(lambda e: seen.append(e.fields["i"]), threaded=True, queue_size=1000)
    for i in range(500):
        bus.emit("x", i=i)
    assert bus.flush(5)
    assert seen == list(range(500))
    assert sub.dropped == 0
    bus.close()
    assert bus.stats().subscribers == 0


def test_ring_buffer_keeps_recent_events() -> None:
    bus = EventBus(buffer_size=3)
    for i in range(5):
        bus.emit("a" if i % 2 else "b", i=i)
    assert [e.fields["i"] for e in bus.recent()] == [2, 3, 4]
    assert [e.fields["i"] for e in bus.recent("a")] == [3]
    assert [e.fields["i"] for e in bus.recent(limit=1)] == [4]
    assert bus.stats().buffered == 3


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        EventBus(buffer_size=-1)
    bus = EventBus()
    with pytest.raises(TypeError):
        bus.subscribe("not callable")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        bus.subscribe(lambda e: None, threaded=True, queue_size=0)


def test_default_bus_is_shared_and_replaceable() -> None:
    a = get_default_bus()
    assert get_default_bus() is a
    mine = EventBus()
    old = set_default_bus(mine)
    try:
        assert get_default_bus() is mine
    finally:
        set_default_bus(old)
    assert get_default_bus() is a


def test_concurrent_emitters_lose_nothing_below_the_bound() -> None:
    from agentic_llm.observability import emit
    from agentic_llm.observability.prometheus import PrometheusExporter

    bus = EventBus()
    exporter = PrometheusExporter(bus, queue_size=100_000).start()

    def work(n: int) -> None:
        for _ in range(n):
            emit.prefix_cache_match(16, 8, bus=bus)

    threads = [threading.Thread(target=work, args=(2000,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    text = exporter.exposition().decode()
    assert "agentic_prefix_cache_query_tokens_total 128000.0" in text
    assert "agentic_prefix_cache_hit_tokens_total 64000.0" in text
    assert bus.stats().dropped == 0
    exporter.stop()
