"""Plain in-memory metric values, rendered through prometheus-client at scrape time.

``prometheus_client``'s own metric objects take a lock and validate on every update,
which dominates the cost of turning events into metrics. The exporter updates these
lightweight values instead (one dict update, or a ``bisect`` for a histogram) under
one uncontended lock, and :class:`StoreCollector` turns them into standard
``prometheus_client`` metric families when ``/metrics`` is scraped, so the
exposition format and its parser are prometheus-client's.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from agentic_llm.observability.catalogue import MetricSpec

__all__ = ["CounterValue", "GaugeValue", "HistogramValue", "MetricStore", "StoreCollector"]

Labels = tuple[str, ...]


class CounterValue:
    """A monotonically increasing value per label tuple."""

    __slots__ = ("spec", "labelnames", "values")

    def __init__(self, spec: MetricSpec, labelnames: tuple[str, ...]) -> None:
        self.spec = spec
        self.labelnames = labelnames
        self.values: dict[Labels, float] = {} if labelnames else {(): 0.0}

    def inc(self, amount: float = 1.0, labels: Labels = ()) -> None:
        """Add ``amount`` (must be >= 0) to the series ``labels``."""
        if amount < 0:
            raise ValueError(f"{self.spec.name}: counters only go up (got {amount})")
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def family(self) -> Metric:
        fam = CounterMetricFamily(self.spec.base_name, self.spec.help, labels=self.labelnames)
        for labels, v in self.values.items():
            fam.add_metric(list(labels), v)
        return fam


class GaugeValue:
    """A value that can go up and down, per label tuple."""

    __slots__ = ("spec", "labelnames", "values")

    def __init__(self, spec: MetricSpec, labelnames: tuple[str, ...]) -> None:
        self.spec = spec
        self.labelnames = labelnames
        self.values: dict[Labels, float] = {} if labelnames else {(): 0.0}

    def set(self, value: float, labels: Labels = ()) -> None:
        """Set the series ``labels`` to ``value``."""
        self.values[labels] = float(value)

    def family(self) -> Metric:
        fam = GaugeMetricFamily(self.spec.name, self.spec.help, labels=self.labelnames)
        for labels, v in self.values.items():
            fam.add_metric(list(labels), v)
        return fam


class HistogramValue:
    """Bucket counts and a sum per label tuple."""

    __slots__ = ("spec", "labelnames", "bounds", "series")

    def __init__(self, spec: MetricSpec, labelnames: tuple[str, ...]) -> None:
        self.spec = spec
        self.labelnames = labelnames
        self.bounds = tuple(spec.buckets or ())
        # labels -> [per-bucket counts (last one is +Inf), sum]
        self.series: dict[Labels, list[Any]] = {}
        if not labelnames:
            self.series[()] = [[0] * (len(self.bounds) + 1), 0.0]

    def observe(self, value: float, labels: Labels = ()) -> None:
        """Record one observation in the series ``labels``."""
        s = self.series.get(labels)
        if s is None:
            s = self.series[labels] = [[0] * (len(self.bounds) + 1), 0.0]
        # bisect_left: the first bucket whose upper bound is >= value ("le" semantics)
        s[0][bisect_left(self.bounds, value)] += 1
        s[1] += value

    def family(self) -> Metric:
        fam = HistogramMetricFamily(self.spec.name, self.spec.help, labels=self.labelnames)
        for labels, (counts, total) in self.series.items():
            cumulative = 0
            buckets = []
            for bound, n in zip((*self.bounds, float("inf")), counts, strict=True):
                cumulative += n
                buckets.append(("+Inf" if bound == float("inf") else _fmt(bound), cumulative))
            fam.add_metric(list(labels), buckets, total)
        return fam


def _fmt(bound: float) -> str:
    return repr(float(bound))


class MetricStore:
    """The values of a set of catalogue metrics, guarded by one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values: dict[str, Any] = {}
        self.infos: dict[str, tuple[MetricSpec, Mapping[str, str]]] = {}

    def add(self, spec: MetricSpec, extra_labels: tuple[str, ...] = ()) -> None:
        """Create the value holder of ``spec`` (with ``extra_labels`` appended)."""
        names = tuple(spec.labels) + tuple(extra_labels)
        if spec.type == "counter":
            self.values[spec.name] = CounterValue(spec, names)
        elif spec.type == "gauge":
            self.values[spec.name] = GaugeValue(spec, names)
        elif spec.type == "histogram":
            self.values[spec.name] = HistogramValue(spec, names)
        else:
            raise ValueError(f"use add_info for {spec.name}")

    def add_info(self, spec: MetricSpec, value: Mapping[str, str]) -> None:
        """A constant info metric."""
        self.infos[spec.name] = (spec, dict(value))

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def families(self) -> list[Metric]:
        """Snapshot every metric as prometheus-client families."""
        with self.lock:
            out = [v.family() for v in self.values.values()]
        for spec, value in self.infos.values():
            out.append(InfoMetricFamily(spec.name, spec.help, value=dict(value)))
        return out


class StoreCollector(Collector):
    """Registers a :class:`MetricStore` in a ``CollectorRegistry``."""

    def __init__(self, store: MetricStore) -> None:
        self.store = store

    def collect(self) -> Iterable[Metric]:
        return self.store.families()
