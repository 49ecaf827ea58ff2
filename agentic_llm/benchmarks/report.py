"""Shared helpers for benchmarks: percentiles, tables, JSON output, charts.

Every benchmark measures a candidate and its baseline in the same run and reports
medians and ratios, because the machines are shared and noisy.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from agentic_llm.envs import bench_results_dir
from agentic_llm.observability.stats import percentile

__all__ = [
    "cpu_model",
    "percentile",
    "median",
    "summarize",
    "ratio",
    "print_table",
    "emit",
    "default_plot_path",
    "time_calls",
    "progress",
    "display_path",
]


def summarize(values: Sequence[float]) -> dict[str, float]:
    """p50 / p99 / max / mean / count of a sample."""
    return {
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "max": max(values) if values else math.nan,
        "mean": sum(values) / len(values) if values else math.nan,
        "count": float(len(values)),
    }


def median(values: Sequence[float]) -> float:
    """The median of a sample, nan when it is empty."""
    return statistics.median(values) if values else math.nan


def ratio(a: float, b: float) -> float:
    """``a / b``, nan when ``b`` is zero or either is nan."""
    if b == 0 or math.isnan(a) or math.isnan(b):
        return math.nan
    return a / b


def time_calls(fn: Callable[[], Any], repeat: int) -> list[float]:
    """Wall time in seconds of ``repeat`` calls of ``fn``."""
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.3g}"
        return f"{v:.3f}"
    return str(v)


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, file: Any = None) -> None:
    """Print an aligned plain-text table."""
    cells = [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    out = file or sys.stdout
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)), file=out)


def emit(result: dict[str, Any], *, as_json: bool) -> None:
    """Print ``result`` as one JSON object (``--json``) or leave printing to the caller."""
    if as_json:
        print(json.dumps(result, indent=2, sort_keys=True, default=_json_default))


def _json_default(o: Any) -> Any:
    if isinstance(o, float) and math.isnan(o):
        return None
    return str(o)


def default_plot_path(name: str) -> Path:
    """``bench/results/<name>.png`` under the current directory, created if needed."""
    path = bench_results_dir() / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def progress(iterable: Iterable[Any], *, total: int | None = None, desc: str = "", enabled: bool = True) -> Iterable[Any]:
    """A tqdm progress bar on stderr, off when ``enabled`` is False (e.g. with --json)."""
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, file=sys.stderr, leave=False)


def display_path(path: str | Path) -> str:
    """``path`` relative to the current directory when it lies below it (results
    files stay meaningful on another checkout), else as given."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (empty where it is not readable):
    figures are only comparable on one CPU, so results say which one gave them."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""
