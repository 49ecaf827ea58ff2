"""Named health checks aggregated into healthy / degraded / unhealthy.

A check is a callable returning a :class:`CheckResult` (or a bare status string, or
a bool). Each check is marked for liveness (is the process worth keeping: the engine
loop) and/or readiness (can it take traffic: KV pool, stores) and as critical or not:
a non-critical check that fails only degrades the service. Checks run with a time
limit, so one hanging probe (an unreachable Redis) cannot hang ``/health``.

Ready-made checks cover the engine loop (a :class:`Heartbeat`), the KV pool, a cache
store's reachability and the AGA knowledge store. :class:`GrpcHealthAdapter` mirrors
the aggregate into a ``grpc_health`` servicer.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "Status",
    "HEALTHY",
    "DEGRADED",
    "UNHEALTHY",
    "CheckResult",
    "HealthReport",
    "HealthRegistry",
    "Heartbeat",
    "heartbeat_check",
    "kv_pool_check",
    "store_reachable_check",
    "aga_store_check",
    "GrpcHealthAdapter",
]

Status = Literal["healthy", "degraded", "unhealthy"]
HEALTHY: Status = "healthy"
DEGRADED: Status = "degraded"
UNHEALTHY: Status = "unhealthy"
_RANK = {HEALTHY: 0, DEGRADED: 1, UNHEALTHY: 2}


@dataclass(frozen=True)
class CheckResult:
    """What one check found."""

    status: Status
    detail: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        out: dict[str, Any] = {"status": self.status}
        if self.detail:
            out["detail"] = self.detail
        if self.data:
            out["data"] = dict(self.data)
        return out


CheckFn = Callable[[], "CheckResult | str | bool"]


@dataclass(frozen=True)
class _Check:
    name: str
    fn: CheckFn
    critical: bool
    liveness: bool
    readiness: bool


@dataclass(frozen=True)
class HealthReport:
    """The aggregate of a set of checks."""

    status: Status
    checks: Mapping[str, CheckResult]
    ts: float

    @property
    def ok(self) -> bool:
        """True when the service can answer (healthy or degraded): HTTP 200."""
        return self.status != UNHEALTHY

    def to_dict(self) -> dict[str, Any]:
        """JSON body of ``/health``."""
        return {
            "status": self.status,
            "ts": self.ts,
            "checks": {k: v.to_dict() for k, v in self.checks.items()},
        }


def _coerce(value: CheckResult | str | bool) -> CheckResult:
    if isinstance(value, CheckResult):
        return value
    if isinstance(value, bool):
        return CheckResult(HEALTHY if value else UNHEALTHY)
    if value in _RANK:
        return CheckResult(value)  # type: ignore[arg-type]
    return CheckResult(UNHEALTHY, f"check returned {value!r}")


class HealthRegistry:
    """A set of named checks.

    Args:
        timeout_s: time limit of one check; a check that takes longer is unhealthy.
    """

    def __init__(self, *, timeout_s: float = 2.0) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        self.timeout_s = timeout_s
        self._checks: dict[str, _Check] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="health")
        self._ready = True

    def register(
        self, name: str, fn: CheckFn, *,
        critical: bool = True, liveness: bool = False, readiness: bool = True,
    ) -> None:
        """Add (or replace) check ``name``.

        Args:
            fn: returns a CheckResult, a status string or a bool (True healthy).
            critical: when False, an unhealthy result only degrades the aggregate.
            liveness: counted by ``/livez`` (restart the process when it fails).
            readiness: counted by ``/readyz`` and ``/health``.
        """
        if not name:
            raise ValueError("a health check needs a name")
        with self._lock:
            self._checks[name] = _Check(name, fn, critical, liveness, readiness)

    def unregister(self, name: str) -> None:
        """Remove check ``name`` if present."""
        with self._lock:
            self._checks.pop(name, None)

    @property
    def names(self) -> tuple[str, ...]:
        """Registered check names."""
        return tuple(self._checks)

    def set_ready(self, ready: bool) -> None:
        """Mark the service (not) ready, e.g. while loading a model or draining."""
        self._ready = ready

    def _run(self, check: _Check) -> CheckResult:
        try:
            future = self._pool.submit(check.fn)
            result = _coerce(future.result(timeout=self.timeout_s))
        except FutureTimeout:
            result = CheckResult(UNHEALTHY, f"check timed out after {self.timeout_s}s")
        except Exception as exc:  # noqa: BLE001 - a failing probe is a result, not a crash
            result = CheckResult(UNHEALTHY, f"{type(exc).__name__}: {exc}")
        if result.status == UNHEALTHY and not check.critical:
            result = CheckResult(DEGRADED, result.detail or "non-critical check failed",
                                 result.data)
        return result

    def _evaluate(self, select: Callable[[_Check], bool], extra: Status = HEALTHY) -> HealthReport:
        with self._lock:
            checks = [c for c in self._checks.values() if select(c)]
        results = {c.name: self._run(c) for c in checks}
        worst = max([extra, *(r.status for r in results.values())], key=_RANK.__getitem__)
        return HealthReport(worst, results, time.time())

    def check(self) -> HealthReport:
        """Run the readiness checks: the full picture served at ``/health``."""
        return self._evaluate(lambda c: c.readiness or c.liveness)

    def liveness(self) -> HealthReport:
        """Run only the liveness checks (``/livez``)."""
        return self._evaluate(lambda c: c.liveness)

    def readiness(self) -> HealthReport:
        """Run the readiness checks plus the ready flag (``/readyz``)."""
        return self._evaluate(lambda c: c.readiness, HEALTHY if self._ready else UNHEALTHY)

    def close(self) -> None:
        """Stop the probe threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)


class Heartbeat:
    """Beaten by a loop each iteration; read by :func:`heartbeat_check`."""

    __slots__ = ("last", "beats")

    def __init__(self) -> None:
        self.last = time.monotonic()
        self.beats = 0

    def beat(self) -> None:
        """Record that the loop is alive now."""
        self.last = time.monotonic()
        self.beats += 1

    def age(self) -> float:
        """Seconds since the last beat."""
        return time.monotonic() - self.last


def heartbeat_check(
    heartbeat: Heartbeat, *, stale_after_s: float = 30.0,
    thread: threading.Thread | None = None,
) -> CheckFn:
    """Unhealthy when ``thread`` died or ``heartbeat`` is older than ``stale_after_s``."""

    def check() -> CheckResult:
        if thread is not None and not thread.is_alive():
            return CheckResult(UNHEALTHY, f"thread {thread.name} is not running")
        age = heartbeat.age()
        data = {"last_beat_age_s": round(age, 3), "beats": heartbeat.beats}
        if age > stale_after_s:
            return CheckResult(UNHEALTHY, f"no heartbeat for {age:.1f}s", data)
        return CheckResult(HEALTHY, "", data)

    return check


def kv_pool_check(
    stats: Callable[[], Mapping[str, Any]], *, degraded_at: float = 0.95,
) -> CheckFn:
    """Degraded when the KV pool is at least ``degraded_at`` full; unhealthy when empty.

    ``stats()`` is e.g. ``engine.stats()``: ``blocks_used``/``blocks_free`` (or
    ``pages_*`` / ``kv_pages_*``).
    """
    from agentic_llm.observability.engine_probe import engine_pages

    def check() -> CheckResult:
        used, free = engine_pages(stats())
        if used is None or free is None:
            return CheckResult(UNHEALTHY, "KV pool stats missing blocks_used/blocks_free")
        total = used + free
        if total <= 0:
            return CheckResult(UNHEALTHY, "KV pool has no pages")
        util = used / total
        data = {"pages_used": used, "pages_free": free, "utilization": round(util, 4)}
        if util >= degraded_at:
            return CheckResult(DEGRADED, f"KV pool {util:.0%} full", data)
        return CheckResult(HEALTHY, "", data)

    return check


def store_reachable_check(ping: Callable[[], Any], *, name: str = "store") -> CheckFn:
    """Healthy when ``ping()`` returns a truthy value (or None) without raising."""

    def check() -> CheckResult:
        result = ping()
        if result is False:
            return CheckResult(UNHEALTHY, f"{name} did not answer")
        return CheckResult(HEALTHY)

    return check


def aga_store_check(
    stats: Callable[[], Mapping[str, Any]], *, degraded_at: float = 0.95,
) -> CheckFn:
    """AGA knowledge store: unhealthy on NaN values, degraded when nearly full.

    ``stats()`` may return ``utilization`` (0..1), ``knowledge_count`` and
    ``has_nan`` (True when stored vectors or gate parameters hold NaN).
    """

    def check() -> CheckResult:
        s = dict(stats())
        if s.get("has_nan"):
            return CheckResult(UNHEALTHY, "knowledge store or gates hold NaN", s)
        util = s.get("utilization")
        if isinstance(util, float) and math.isnan(util):
            return CheckResult(UNHEALTHY, "utilization is NaN", s)
        if util is not None and util >= degraded_at:
            return CheckResult(DEGRADED, f"knowledge store {util:.0%} full", s)
        return CheckResult(HEALTHY, "", s)

    return check


class GrpcHealthAdapter:
    """Mirrors a :class:`HealthRegistry` into a ``grpc_health.v1`` HealthServicer.

    healthy and degraded map to SERVING, unhealthy to NOT_SERVING. Call
    :meth:`refresh` on demand or :meth:`start` a background refresher.

    Args:
        registry: the checks.
        servicer: a ``grpc_health.v1.health.HealthServicer`` (created when None).
        services: gRPC service names to set besides the overall ``""``.
    """

    def __init__(
        self, registry: HealthRegistry, servicer: Any = None, *,
        services: tuple[str, ...] = (), interval_s: float = 5.0,
    ) -> None:
        from grpc_health.v1 import health, health_pb2

        self.registry = registry
        self.servicer = servicer if servicer is not None else health.HealthServicer()
        self.services = ("", *services)
        self.interval_s = interval_s
        self._pb = health_pb2
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last: HealthReport | None = None

    def serving_status(self, report: HealthReport) -> int:
        """The gRPC enum value for ``report``."""
        resp = self._pb.HealthCheckResponse
        return resp.SERVING if report.ok else resp.NOT_SERVING

    def refresh(self) -> HealthReport:
        """Run the readiness checks now and publish the result."""
        report = self.registry.readiness()
        status = self.serving_status(report)
        for svc in self.services:
            self.servicer.set(svc, status)
        self.last = report
        return report

    def start(self) -> GrpcHealthAdapter:
        """Refresh every ``interval_s`` seconds on a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="grpc-health", daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            # A failing round must not stop later rounds from publishing.
            with contextlib.suppress(Exception):
                self.refresh()
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        """Stop the refresher thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval_s + 1)
            self._thread = None
