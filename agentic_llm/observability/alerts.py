"""SLO alert rules evaluated over a sliding window of events.

:class:`SignalWindow` listens on the bus and keeps the recent values each signal
needs (cheap appends on the emitter's thread); :class:`AlertManager` evaluates the
rules every ``eval_interval_s`` seconds on its own thread, and sends a firing alert
(and later its resolution) to channels: the log, a webhook (HTTP POST of JSON) or any
callback. Each channel is fed through its own bounded queue and thread, so a slow
webhook delays nothing else. Fired and resolved alerts are also emitted on the bus
(``alert.fired`` / ``alert.resolved``), which the Prometheus exporter counts.
"""

from __future__ import annotations

import json
import logging
import operator
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from agentic_llm.observability import kinds as K
from agentic_llm.observability.events import Event, EventBus, Subscription

__all__ = [
    "SIGNALS",
    "default_rules",
    "Alert",
    "SignalWindow",
    "AlertManager",
    "LogChannel",
    "WebhookChannel",
]

_log = logging.getLogger("agentic_llm.alerts")

#: Signals a rule may test, with their meaning. None (no data) never fires.
SIGNALS: dict[str, str] = {
    "latency_p99": "p99 AGA forward latency in the window, microseconds",
    "knowledge_utilization": "last reported AGA knowledge store utilization (0..1)",
    "slot_change_rate": "last reported AGA slot change rate",
    "activation_rate": "share of AGA forwards in the window that injected knowledge",
    "entropy_mean": "mean AGA entropy in the window",
    "gate_mean": "mean AGA gate value in the window",
    "ttft_p99_s": "p99 time to first token in the window, seconds",
    "tpot_p99_s": "p99 time per output token in the window, seconds",
    "e2e_p99_s": "p99 end-to-end request latency in the window, seconds",
    "error_rate": "share of requests in the window that ended in error or timeout",
    "request_rate": "requests finished per second over the window",
    "queue_depth": "last reported number of waiting requests",
    "kv_utilization": "last reported KV pool utilization (0..1)",
    "prefix_cache_hit_rate": "prefix cache hit tokens / query tokens in the window",
    "subgraph_cache_hit_rate": "share of subgraph cache lookups that hit (exact or fuzzy)",
    "grammar_compile_p99_s": "p99 grammar compile time (misses) in the window, seconds",
}

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
    "==": operator.eq, "!=": operator.ne,
}


def default_rules() -> tuple[Any, ...]:
    """The built-in SLO rules (the AGA plugin's four plus two engine rules)."""
    from agentic_llm.observability.config import AlertRuleConfig

    return (
        AlertRuleConfig("slo_latency_p99", "latency_p99", ">", 1000.0, "warning",
                        "AGA forward p99 latency {value:.0f}us above {threshold:.0f}us"),
        AlertRuleConfig("slo_latency_critical", "latency_p99", ">", 5000.0, "critical",
                        "AGA forward p99 latency {value:.0f}us above {threshold:.0f}us"),
        AlertRuleConfig("high_utilization", "knowledge_utilization", ">", 0.95, "warning",
                        "knowledge store {value:.0%} full"),
        AlertRuleConfig("slot_thrashing", "slot_change_rate", ">", 0.5, "warning",
                        "knowledge slots changing at {value:.2f}"),
        AlertRuleConfig("kv_pages_exhausted", "kv_utilization", ">", 0.98, "warning",
                        "KV pool {value:.0%} full"),
        AlertRuleConfig("high_error_rate", "error_rate", ">", 0.05, "critical",
                        "{value:.1%} of recent requests failed"),
    )


def _p99(values: Iterable[float]) -> float | None:
    xs = sorted(values)
    if not xs:
        return None
    return xs[min(len(xs) - 1, int(round(0.99 * (len(xs) - 1))))]


def _mean(values: Iterable[float]) -> float | None:
    xs = list(values)
    return sum(xs) / len(xs) if xs else None


class SignalWindow:
    """Recent event values, enough to compute every signal in :data:`SIGNALS`.

    Args:
        window_s: how far back windowed signals look.
        max_samples: per-series cap, so a burst cannot grow memory without bound.
    """

    _SERIES = ("aga_latency", "aga_applied", "aga_entropy", "aga_gate", "ttft", "tpot",
               "e2e", "failed", "prefix_query", "prefix_hit", "subgraph_hit", "compile")

    def __init__(self, window_s: float = 60.0, max_samples: int = 10_000) -> None:
        self.window_s = window_s
        self._series: dict[str, deque[tuple[float, float]]] = {
            k: deque(maxlen=max_samples) for k in self._SERIES
        }
        self._last: dict[str, float] = {}
        self._sub: Subscription | None = None

    _KINDS = (K.AGA_FORWARD, K.AGA_STORE, K.REQUEST_FINISHED, K.ENGINE_STEP,
              K.PREFIX_CACHE_MATCH, K.SUBGRAPH_CACHE_LOOKUP, K.GRAMMAR_COMPILE)

    def attach(self, bus: EventBus) -> SignalWindow:
        """Start listening on ``bus``."""
        if self._sub is None:
            self._sub = bus.subscribe(self.observe, kinds=self._KINDS, threaded=True,
                                      name="alert-signals")
        return self

    def flush(self, timeout_s: float = 2.0) -> None:
        """Wait until the events emitted so far are recorded."""
        if self._sub is not None:
            self._sub.flush(timeout_s)

    def detach(self) -> None:
        """Stop listening."""
        if self._sub is not None:
            self._sub.close()
            self._sub = None

    def _add(self, series: str, ts: float, value: Any) -> None:
        if value is not None:
            self._series[series].append((ts, float(value)))

    def observe(self, event: Event) -> None:
        """Record what ``event`` says (the bus calls this)."""
        f, ts, kind = event.fields, event.ts, event.kind
        if kind == K.AGA_FORWARD:
            self._add("aga_latency", ts, f.get("latency_us"))
            self._add("aga_applied", ts, 1.0 if f.get("applied") else 0.0)
            self._add("aga_entropy", ts, f.get("entropy"))
            self._add("aga_gate", ts, f.get("gate_value"))
        elif kind == K.REQUEST_FINISHED:
            self._add("ttft", ts, f.get("ttft_s"))
            self._add("tpot", ts, f.get("tpot_s"))
            self._add("e2e", ts, f.get("e2e_s"))
            self._add("failed", ts, 1.0 if f.get("outcome") in ("error", "timeout") else 0.0)
        elif kind == K.ENGINE_STEP:
            self._last["queue_depth"] = float(f.get("waiting") or 0)
            used, free = f.get("kv_pages_used"), f.get("kv_pages_free")
            if used is not None and free is not None and used + free > 0:
                self._last["kv_utilization"] = used / (used + free)
        elif kind == K.AGA_STORE:
            for key in ("utilization", "slot_change_rate"):
                if f.get(key) is not None:
                    name = "knowledge_utilization" if key == "utilization" else key
                    self._last[name] = float(f[key])
        elif kind == K.PREFIX_CACHE_MATCH:
            self._add("prefix_query", ts, f.get("query_tokens"))
            self._add("prefix_hit", ts, f.get("hit_tokens"))
        elif kind == K.SUBGRAPH_CACHE_LOOKUP:
            self._add("subgraph_hit", ts, 1.0 if f.get("outcome") in ("exact", "fuzzy") else 0.0)
        elif kind == K.GRAMMAR_COMPILE and not f.get("cache_hit"):
            self._add("compile", ts, f.get("duration_s"))

    def _recent(self, series: str, now: float) -> list[float]:
        cutoff = now - self.window_s
        q = self._series[series]
        while q and q[0][0] < cutoff:
            q.popleft()
        return [v for _, v in list(q)]

    def values(self, now: float | None = None) -> dict[str, float | None]:
        """Every signal's current value (None when there is no data)."""
        self.flush()
        now = time.time() if now is None else now
        r = {k: self._recent(k, now) for k in self._SERIES}
        q, h = sum(r["prefix_query"]), sum(r["prefix_hit"])
        return {
            "latency_p99": _p99(r["aga_latency"]),
            "knowledge_utilization": self._last.get("knowledge_utilization"),
            "slot_change_rate": self._last.get("slot_change_rate"),
            "activation_rate": _mean(r["aga_applied"]),
            "entropy_mean": _mean(r["aga_entropy"]),
            "gate_mean": _mean(r["aga_gate"]),
            "ttft_p99_s": _p99(r["ttft"]),
            "tpot_p99_s": _p99(r["tpot"]),
            "e2e_p99_s": _p99(r["e2e"]),
            "error_rate": _mean(r["failed"]),
            "request_rate": len(r["failed"]) / self.window_s if r["failed"] else None,
            "queue_depth": self._last.get("queue_depth"),
            "kv_utilization": self._last.get("kv_utilization"),
            "prefix_cache_hit_rate": h / q if q > 0 else None,
            "subgraph_cache_hit_rate": _mean(r["subgraph_hit"]),
            "grammar_compile_p99_s": _p99(r["compile"]),
        }


@dataclass(frozen=True)
class Alert:
    """A rule changing state: ``state`` is ``firing`` or ``resolved``."""

    rule: str
    severity: str
    state: str
    value: float
    threshold: float
    message: str
    ts: float
    labels: Mapping[str, str]

    def to_dict(self) -> dict[str, Any]:
        """JSON body sent to webhooks."""
        d = asdict(self)
        d["labels"] = dict(self.labels)
        return d


class LogChannel:
    """Writes alerts to the ``agentic_llm.alerts`` logger (critical as CRITICAL)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or _log

    def __call__(self, alert: Alert) -> None:
        level = logging.CRITICAL if alert.severity == "critical" else (
            logging.WARNING if alert.state == "firing" else logging.INFO)
        self.logger.log(level, "alert %s %s: %s", alert.rule, alert.state, alert.message)


class WebhookChannel:
    """POSTs each alert as JSON to ``url``; a failing POST raises (and is counted)."""

    def __init__(self, url: str, *, timeout_s: float = 5.0,
                 headers: Mapping[str, str] | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook url must be http(s), got {url!r}")
        self.url = url
        self.timeout_s = timeout_s
        self.headers = {"Content-Type": "application/json", **dict(headers or {})}
        self.sent = 0

    def __call__(self, alert: Alert) -> None:
        body = json.dumps(alert.to_dict()).encode()
        req = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310 - configured URL
            resp.read()
        self.sent += 1


class AlertManager:
    """Evaluates rules over a :class:`SignalWindow` and delivers state changes.

    Args:
        bus: where signals come from and where ``alert.*`` events go.
        rules: ``AlertRuleConfig`` objects.
        channels: callables taking an :class:`Alert`; each gets its own thread.
        window_s: signal window length.
        eval_interval_s: period of the background evaluation.
        labels: added to every alert (e.g. the instance name).
    """

    def __init__(
        self,
        bus: EventBus,
        rules: Iterable[Any],
        channels: Iterable[Callable[[Alert], Any]] = (),
        *,
        window_s: float = 60.0,
        eval_interval_s: float = 5.0,
        labels: Mapping[str, str] | None = None,
        queue_size: int = 1000,
    ) -> None:
        self.bus = bus
        self.rules = tuple(rules)
        self.labels = dict(labels or {})
        self.window = SignalWindow(window_s)
        self.eval_interval_s = eval_interval_s
        self._firing: dict[str, float] = {}  # rule -> time of the last notification
        # Channels are subscribers of a private bus: that gives each one a bounded
        # queue and its own thread, and counts its failures.
        self._delivery = EventBus(default_queue_size=queue_size)
        self.channels: list[Any] = []
        for ch in channels:
            self.add_channel(ch)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def add_channel(self, channel: Callable[[Alert], Any]) -> None:
        """Deliver future alerts to ``channel`` too."""
        name = type(channel).__name__

        def deliver(event: Event) -> None:
            channel(event.fields["alert"])

        self._delivery.subscribe(deliver, threaded=True, name=f"alert-{name}")
        self.channels.append(channel)

    @property
    def delivery_errors(self) -> int:
        """Deliveries that raised (e.g. a webhook that did not answer)."""
        return self._delivery.stats().subscriber_errors

    @property
    def firing(self) -> tuple[str, ...]:
        """Names of the rules firing now."""
        return tuple(self._firing)

    def start(self) -> AlertManager:
        """Listen on the bus and evaluate every ``eval_interval_s`` on a daemon thread."""
        self.window.attach(self.bus)
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="alert-eval", daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.eval_interval_s):
            try:
                self.evaluate()
            except Exception:  # noqa: BLE001 - a bad round must not end alerting
                _log.exception("alert evaluation failed")

    def evaluate(self, now: float | None = None) -> list[Alert]:
        """Check every rule now; deliver and return the state changes."""
        self.window.flush()
        now = time.time() if now is None else now
        values = self.window.values(now)
        changes: list[Alert] = []
        with self._lock:
            for rule in self.rules:
                value = values.get(rule.metric)
                if value is None:
                    continue
                holds = _OPS[rule.operator](value, rule.threshold)
                last = self._firing.get(rule.name)
                if holds and (last is None or now - last >= rule.cooldown_s):
                    self._firing[rule.name] = now
                    changes.append(self._alert(rule, "firing", value, now))
                elif not holds and last is not None:
                    del self._firing[rule.name]
                    changes.append(self._alert(rule, "resolved", value, now))
        for alert in changes:
            self._deliver(alert)
        return changes

    def _alert(self, rule: Any, state: str, value: float, now: float) -> Alert:
        try:
            msg = rule.message.format(value=value, threshold=rule.threshold, rule=rule.name)
        except (KeyError, ValueError, IndexError):
            msg = f"{rule.name}: {value} {rule.operator} {rule.threshold}"
        if state == "resolved":
            msg = f"resolved: {msg}"
        return Alert(rule.name, rule.severity, state, float(value), float(rule.threshold), msg,
                     now, self.labels)

    def _deliver(self, alert: Alert) -> None:
        self._delivery.emit("alert", alert=alert)
        if alert.state == "firing":
            self.bus.emit(K.ALERT_FIRED, rule=alert.rule, severity=alert.severity,
                          value=alert.value, threshold=alert.threshold, message=alert.message)
        else:
            self.bus.emit(K.ALERT_RESOLVED, rule=alert.rule, severity=alert.severity,
                          value=alert.value)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every channel has handled the alerts delivered so far."""
        return self._delivery.flush(timeout)

    def stop(self) -> None:
        """Stop evaluating and deliver what is queued (briefly)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.eval_interval_s + 1)
            self._thread = None
        self.window.detach()
        self._delivery.close()
