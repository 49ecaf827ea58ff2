"""Environment variables the project reads, declared once, typed, prefixed ``AGENTIC_``.

Read them through these functions, never with ``os.environ`` elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["model_dir", "require_all_components", "bench_results_dir", "compile_cache_dir"]


def _get(name: str, default: str) -> str:
    return os.environ.get(name, default)


def model_dir() -> Path | None:
    """AGENTIC_MODEL_DIR: a checkpoint directory to use instead of the shipped model."""
    v = _get("AGENTIC_MODEL_DIR", "")
    return Path(v) if v else None


def require_all_components() -> bool:
    """AGENTIC_REQUIRE_ALL_COMPONENTS=1: a test skipped for a missing part fails (CI)."""
    return _get("AGENTIC_REQUIRE_ALL_COMPONENTS", "0") == "1"


def bench_results_dir() -> Path:
    """AGENTIC_BENCH_RESULTS: where benchmarks write charts (default bench/results)."""
    return Path(_get("AGENTIC_BENCH_RESULTS", "bench/results"))


def compile_cache_dir() -> Path | None:
    """AGENTIC_COMPILE_CACHE_DIR: where compiled decode steps are kept across engine
    starts (default ``$XDG_CACHE_HOME/agentic-llm/compile``, else
    ``~/.cache/agentic-llm/compile``); ``off`` keeps none."""
    v = _get("AGENTIC_COMPILE_CACHE_DIR", "")
    if v.strip().lower() == "off":
        return None
    if v:
        return Path(v).expanduser()
    base = _get("XDG_CACHE_HOME", "") or str(Path.home() / ".cache")
    return Path(base) / "agentic-llm" / "compile"
