"""The in-process event bus that every part of the engine emits into.

Emitters call ``bus.emit(kind, **fields)``; exporters (Prometheus, logs, audit,
alerts, tracing) subscribe. Two promises shape the design:

* Zero cost when nobody listens: ``emit`` checks one attribute and returns; no
  :class:`Event` is built. Emitters that would have to compute an expensive field can
  ask ``bus.wants(kind)`` first.
* Fail-open: a subscriber can never slow down or break the emitter. A subscriber that
  raises is counted and skipped for that event (the other subscribers still get it).
  A subscriber that may block (file or network I/O) is subscribed with
  ``threaded=True``: it gets its own daemon thread fed through a bounded queue, and
  events are dropped (and counted) when that queue is full instead of waiting.

The bus can also keep the last ``buffer_size`` events in a ring buffer (``recent``),
which is what the knowledge-injection plugin exposes as its in-memory event log.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Event",
    "EventBus",
    "Subscription",
    "BusStats",
    "get_default_bus",
    "set_default_bus",
]

_log = logging.getLogger(__name__)

Callback = Callable[["Event"], Any]

_seq = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened.

    Attributes:
        kind: dotted event name, e.g. ``"request.finished"`` (see ``kinds.py``).
        fields: the event's payload, keyword arguments of ``emit``.
        ts: wall-clock time of the emit, seconds since the epoch.
        seq: process-wide emit order, strictly increasing.
    """

    kind: str
    fields: Mapping[str, Any]
    ts: float
    seq: int

    def get(self, name: str, default: Any = None) -> Any:
        """``fields[name]`` or ``default``."""
        return self.fields.get(name, default)

    def to_dict(self) -> dict[str, Any]:
        """A flat JSON-friendly dict: ``kind``, ``ts``, ``seq`` and the fields."""
        out: dict[str, Any] = {"kind": self.kind, "ts": self.ts, "seq": self.seq}
        out.update(self.fields)
        return out


@dataclass(frozen=True, slots=True)
class BusStats:
    """Counters of a bus; all monotonically increasing except ``subscribers``."""

    emitted: int
    subscriber_errors: int
    dropped: int
    subscribers: int
    buffered: int
    buffer_size: int


class Subscription:
    """A handle on one subscriber; ``close()`` (or ``bus.unsubscribe``) removes it.

    A threaded subscription hands events over through a bounded deque that its own
    thread drains in batches: the first event of a batch wakes the thread, which
    lets events gather for ``max_delay_s`` and then handles them all. The emitter
    only appends (one wake-up per batch, none per event), and an idle subscription
    costs no wake-ups at all.
    """

    __slots__ = (
        "callback", "kinds", "name", "errors", "delivered", "dropped",
        "_bus", "_on_error", "_on_drop", "_dq", "_max", "_delay", "_thread", "_wake", "_hurry",
        "_drained", "_busy", "_closed", "_stopping",
    )

    def __init__(
        self,
        bus: EventBus,
        callback: Callback,
        kinds: frozenset[str] | None,
        name: str,
        queue_size: int | None,
        max_delay_s: float = 0.05,
        *,
        on_error: Callable[[Subscription, Event], None] | None = None,
        on_drop: Callable[[], None] | None = None,
    ) -> None:
        self.callback = callback
        self.kinds = kinds
        self.name = name
        self.errors = 0
        self.delivered = 0
        self.dropped = 0
        self._bus = bus
        # the bus's accounting of a failed callback and of a dropped event
        self._on_error = on_error
        self._on_drop = on_drop
        self._closed = False
        self._stopping = False
        self._dq: deque[Event] | None = None
        self._max = queue_size or 0
        self._delay = max_delay_s
        self._busy = False
        self._wake = threading.Event()
        self._hurry = threading.Event()
        self._drained = threading.Condition()
        self._thread: threading.Thread | None = None
        if queue_size is not None:
            self._dq = deque()
            self._thread = threading.Thread(
                target=self._run, name=f"eventbus-{name}", daemon=True
            )
            self._thread.start()

    @property
    def threaded(self) -> bool:
        """True when events reach the callback on the subscription's own thread."""
        return self._dq is not None

    @property
    def backlog(self) -> int:
        """Events waiting for a threaded subscriber."""
        return len(self._dq) if self._dq is not None else 0

    @property
    def closed(self) -> bool:
        """True once :meth:`close` (or ``bus.unsubscribe``) removed it."""
        return self._closed

    def matches(self, kind: str) -> bool:
        """Whether events of ``kind`` go to this subscriber."""
        return self.kinds is None or kind in self.kinds

    def deliver(self, event: Event) -> None:
        """Hand ``event`` over; never raises, never blocks."""
        dq = self._dq
        if dq is None:
            self._call(event)
        elif not dq:
            dq.append(event)
            self._wake.set()
        elif len(dq) < self._max:
            dq.append(event)
        else:
            self.dropped += 1
            if self._on_drop is not None:
                self._on_drop()

    def _call(self, event: Event) -> None:
        try:
            self.callback(event)
        except Exception:  # noqa: BLE001 - fail-open: a broken exporter must not reach the emitter
            self.errors += 1
            if self._on_error is not None:
                self._on_error(self, event)
        else:
            self.delivered += 1

    def _run(self) -> None:
        dq = self._dq
        while dq is not None:
            # Woken by the first event of a batch; the timeout only covers the rare
            # race where that event lands just as the previous batch finished.
            self._wake.wait(1.0)
            self._wake.clear()
            if not self._stopping:
                self._hurry.wait(self._delay)  # let the batch gather (flush cuts it short)
                self._hurry.clear()
            # Set before popping, so flush() never sees "empty and idle" mid-batch.
            self._busy = True
            try:
                while dq:
                    self._call(dq.popleft())
            finally:
                self._busy = False
            with self._drained:
                self._drained.notify_all()
            if self._stopping:
                return

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event delivered so far was handled; False on timeout."""
        if self._dq is None:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._dq or self._busy:
            if self._thread is None or not self._thread.is_alive():
                return False
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            self._wake.set()
            self._hurry.set()
            with self._drained:
                self._drained.wait(0.01 if remaining is None else min(0.01, remaining))
        return True

    def close(self, timeout: float = 1.0) -> None:
        """Unsubscribe; a threaded subscriber gets ``timeout`` seconds to finish its queue."""
        if self._closed:
            return
        self._closed = True
        self._bus.unsubscribe(self)
        if self._thread is not None:
            self.flush(timeout)
            self._stopping = True
            self._wake.set()
            self._hurry.set()
            # A callback stuck forever leaves a daemon thread behind; never wait on it.
            self._thread.join(timeout)


class EventBus:
    """Publish/subscribe hub for :class:`Event` objects.

    Args:
        buffer_size: keep the last ``buffer_size`` events for :meth:`recent`
            (0, the default, keeps none and leaves ``emit`` free when unsubscribed).
        default_queue_size: queue length of threaded subscribers that give none.
    """

    def __init__(self, *, buffer_size: int = 0, default_queue_size: int = 10_000) -> None:
        if buffer_size < 0:
            raise ValueError(f"buffer_size must be >= 0, got {buffer_size}")
        if default_queue_size < 1:
            raise ValueError(f"default_queue_size must be >= 1, got {default_queue_size}")
        self._lock = threading.Lock()
        self._subs: tuple[Subscription, ...] = ()
        # kind -> subscribers of that kind; rebuilt lazily after (un)subscribe.
        self._routes: dict[str, tuple[Subscription, ...]] = {}
        self._buffer: deque[Event] | None = deque(maxlen=buffer_size) if buffer_size else None
        self._buffer_size = buffer_size
        self._default_queue_size = default_queue_size
        # Read by emit() without the lock: True when anything at all listens.
        self._active = self._buffer is not None
        self._emitted = 0
        self._errors = 0
        self._dropped = 0
        self._last_error_log = 0.0

    # -- subscribing -------------------------------------------------------------
    def subscribe(
        self,
        callback: Callback,
        kinds: Iterable[str] | str | None = None,
        *,
        threaded: bool = False,
        queue_size: int | None = None,
        max_delay_s: float = 0.05,
        name: str | None = None,
    ) -> Subscription:
        """Call ``callback(event)`` for every event of ``kinds`` (all kinds when None).

        Args:
            callback: receives one :class:`Event`; its return value is ignored and
                any exception it raises is counted, logged (rate-limited) and dropped.
            kinds: an event kind, an iterable of kinds, or None for every kind.
            threaded: deliver on a dedicated daemon thread through a bounded queue;
                use it for anything that does I/O or may block.
            queue_size: queue bound of a threaded subscriber (events beyond it are
                dropped and counted); defaults to the bus's ``default_queue_size``.
            max_delay_s: longest a threaded subscriber leaves events queued before
                handling them (they are handled in batches).
            name: a label for logs and the thread name.
        """
        if not callable(callback):
            raise TypeError("callback must be callable")
        if queue_size is not None and queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        if max_delay_s <= 0:
            raise ValueError(f"max_delay_s must be > 0, got {max_delay_s}")
        if isinstance(kinds, str):
            kind_set: frozenset[str] | None = frozenset((kinds,))
        else:
            kind_set = None if kinds is None else frozenset(kinds)
        label = name or getattr(callback, "__qualname__", None) or repr(callback)
        qsize = (queue_size or self._default_queue_size) if threaded else None
        sub = Subscription(self, callback, kind_set, label, qsize, max_delay_s,
                           on_error=self._count_error, on_drop=self._count_drop)
        with self._lock:
            self._subs = (*self._subs, sub)
            self._routes = {}
            self._active = True
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Remove ``sub``; a no-op when it is not subscribed."""
        with self._lock:
            self._subs = tuple(s for s in self._subs if s is not sub)
            self._routes = {}
            self._active = bool(self._subs) or self._buffer is not None
        if not sub.closed:
            sub.close()

    @property
    def subscribers(self) -> tuple[Subscription, ...]:
        """The current subscriptions, in subscription order."""
        return self._subs

    # -- emitting ----------------------------------------------------------------
    def wants(self, kind: str) -> bool:
        """True when an event of ``kind`` would reach a subscriber or the buffer."""
        if not self._active:
            return False
        return self._buffer is not None or bool(self._route(kind))

    def emit(self, kind: str, /, **fields: Any) -> None:
        """Publish an event; returns at once when nothing listens. Never raises."""
        if not self._active:
            return
        subs = self._routes.get(kind)
        if subs is None:
            subs = self._route(kind)
        buf = self._buffer
        if not subs and buf is None:
            return
        event = Event(kind, fields, time.time(), next(_seq))
        self._emitted += 1
        if buf is not None:
            buf.append(event)
        for sub in subs:
            sub.deliver(event)

    def _route(self, kind: str) -> tuple[Subscription, ...]:
        subs = tuple(s for s in self._subs if s.matches(kind))
        # A racing (un)subscribe may clear the dict after this; the next emit recomputes.
        self._routes[kind] = subs
        return subs

    # -- inspection ----------------------------------------------------------------
    def recent(self, kind: str | None = None, limit: int | None = None) -> list[Event]:
        """The buffered events (oldest first), optionally of one kind, at most ``limit``."""
        if self._buffer is None:
            return []
        events = list(self._buffer)
        if kind is not None:
            events = [e for e in events if e.kind == kind]
        if limit is not None:
            events = events[-limit:] if limit > 0 else []
        return events

    def stats(self) -> BusStats:
        """Counters: events emitted, subscriber errors, dropped events, buffer use."""
        return BusStats(
            emitted=self._emitted,
            subscriber_errors=self._errors,
            dropped=self._dropped,
            subscribers=len(self._subs),
            buffered=len(self._buffer) if self._buffer is not None else 0,
            buffer_size=self._buffer_size,
        )

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Wait for every threaded subscriber to drain its queue; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        ok = True
        for sub in self._subs:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ok = sub.flush(remaining) and ok
        return ok

    def close(self) -> None:
        """Unsubscribe everything, stopping threaded subscribers."""
        for sub in self._subs:
            sub.close()

    # -- accounting (called by subscriptions) --------------------------------------
    def _count_error(self, sub: Subscription, event: Event) -> None:
        self._errors += 1
        now = time.monotonic()
        # Rate-limit: a subscriber that fails on every event must not flood the log.
        if now - self._last_error_log >= 10.0:
            self._last_error_log = now
            _log.warning(
                "event subscriber %s raised on %s (%d errors so far)",
                sub.name, event.kind, sub.errors, exc_info=True,
            )

    def _count_drop(self) -> None:
        self._dropped += 1


_default_lock = threading.Lock()
_default_bus: EventBus | None = None


def get_default_bus() -> EventBus:
    """The process-wide bus that components emit into unless given another."""
    global _default_bus
    bus = _default_bus
    if bus is None:
        with _default_lock:
            if _default_bus is None:
                _default_bus = EventBus()
            bus = _default_bus
    return bus


def set_default_bus(bus: EventBus | None) -> EventBus | None:
    """Replace the process-wide bus (None: a fresh one on next use); returns the old one."""
    global _default_bus
    with _default_lock:
        old, _default_bus = _default_bus, bus
    return old

