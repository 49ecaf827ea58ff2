"""Per-version A/B metrics of the library registry, read at scrape time.

    agentic_library_version_runs{path,version}            reported runs
    agentic_library_version_successes{path,version}       of which succeeded
    agentic_library_version_success_rate{path,version}    successes / runs
    agentic_library_version_latency_ms_mean{path,version} mean reported latency
    agentic_library_version_default{path,version}         1 for the current default
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["LibraryCollector"]


class LibraryCollector(Collector):
    """A Prometheus collector over a ``SubgraphRegistry``'s statistics."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["path", "version"]
        fams = {
            "runs": GaugeMetricFamily("agentic_library_version_runs",
                                      "Runs reported for a library version", labels=labels),
            "successes": GaugeMetricFamily("agentic_library_version_successes",
                                           "Successful runs reported for a library version", labels=labels),
            "rate": GaugeMetricFamily("agentic_library_version_success_rate",
                                      "Success rate of a library version", labels=labels),
            "latency": GaugeMetricFamily("agentic_library_version_latency_ms_mean",
                                         "Mean reported latency of a library version (ms)", labels=labels),
            "default": GaugeMetricFamily("agentic_library_version_default",
                                         "1 when the version is the path's default", labels=labels),
        }
        for path, version, stats, is_default in self.registry.all_stats():
            lv = [path, f"v{version}"]
            fams["runs"].add_metric(lv, stats.runs)
            fams["successes"].add_metric(lv, stats.successes)
            fams["rate"].add_metric(lv, stats.success_rate)
            fams["latency"].add_metric(lv, stats.mean_latency_ms)
            fams["default"].add_metric(lv, 1.0 if is_default else 0.0)
        yield from fams.values()
