"""``agentic-llm bench NAME``: run one of the benchmarks in ``agentic_llm.benchmarks``.

Each benchmark module exposes ``add_arguments(parser)`` and ``run(args) -> int``.
Modules are imported only when their benchmark runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

from agentic_llm.errors import AgenticError, ErrorCode

BENCHMARKS: dict[str, tuple[str, str]] = {
    "grammar": ("agentic_llm.benchmarks.grammar", "grammar compile and mask cost on a 151k vocabulary"),
    "engine": ("agentic_llm.benchmarks.engine", "engine throughput, TTFT/TPOT against transformers"),
    "cache": ("agentic_llm.benchmarks.cache", "prefix and subgraph cache hit rates and latency"),
    "scheduler": ("agentic_llm.benchmarks.scheduler", "branch-aware against FCFS scheduling"),
    "aga": ("agentic_llm.benchmarks.aga", "knowledge-injection hook overhead and memory"),
    "observability": ("agentic_llm.benchmarks.observability", "throughput with exporters on and off"),
    "load": ("agentic_llm.benchmarks.load", "many concurrent gRPC clients against a server process"),
    "soak": ("agentic_llm.benchmarks.soak", "long run of unique requests: RSS per minute, lost and hung calls"),
    "quality": ("agentic_llm.benchmarks.quality", "plan usefulness on NESTFUL and held-out requests"),
}


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("bench", help="run a benchmark", description=__doc__)
    bench_sub = parser.add_subparsers(dest="bench", metavar="NAME")
    for name, (module, help_text) in BENCHMARKS.items():
        # Options (and --help) belong to the benchmark module's own parser, built
        # only when it runs: importing every benchmark for `bench --help` would pull
        # in torch.
        p = bench_sub.add_parser(name, help=help_text, description=help_text, add_help=False)
        p.set_defaults(func=_runner(module), takes_extra_args=True)
    parser.set_defaults(func=lambda _args: (parser.print_help(), 2)[1])


def bench_parser(name: str, module: Any) -> argparse.ArgumentParser:
    """The full parser of benchmark ``name`` (its module's options and the shared ones)."""
    from agentic_llm.cli.main import PlainHelpParser

    p = PlainHelpParser(
        prog=f"agentic-llm bench {name}", description=module.__doc__ or BENCHMARKS[name][1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print one JSON object, nothing else")
    p.add_argument("--plot", metavar="PNG", nargs="?", const="auto", default=None,
                   help=f"also write a PNG chart (without PNG: bench/results/{name}.png); "
                        "where it went is printed on stderr")
    module.add_arguments(p)
    return p


def _runner(module_name: str):  # type: ignore[no-untyped-def]
    def run(args: argparse.Namespace) -> int:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise AgenticError(
                ErrorCode.RESOURCE_UNAVAILABLE, f"benchmark {args.bench!r} cannot load: {exc}"
            ) from exc
        inner = bench_parser(args.bench, module).parse_args(args.extra_args)
        if inner.plot == "auto":
            from agentic_llm.benchmarks.report import default_plot_path

            inner.plot = str(default_plot_path(args.bench))
        before = _mtime(inner.plot)
        rc = int(module.run(inner))
        if inner.plot:
            written = _mtime(inner.plot) not in (None, before)
            print(f"agentic-llm bench {args.bench}: "
                  + (f"plot written to {inner.plot}" if written else "no plot written"),
                  file=sys.stderr)
        return rc

    return run


def _mtime(path: str | None) -> float | None:
    try:
        return Path(path).stat().st_mtime_ns if path else None
    except OSError:
        return None
