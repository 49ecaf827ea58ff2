"""``agentic-llm bench soak``: a long run of concurrent clients, watching memory and
calls that never come back.

Starts ``agentic-llm serve`` as a child process (or uses ``--address``), then runs
``--clients`` threads sending requests back to back for ``--duration`` seconds, each
with a deadline of ``--deadline`` seconds. With ``--unique`` every request is new: its
own target path, values and prompt, so no cache answers it and every call plans,
compiles a matcher and generates. The server's resident memory (VmRSS) is sampled
every second and reported per minute.

A call is **lost** when it ends without a response or an ERR_* status (a transport
failure), and **hung** when its answer (of either kind) comes later than its
deadline plus one second. The run passes when nothing was lost or hung and RSS at
the end is within ``--rss-tolerance`` of RSS at the reference point (minute 5, or a
quarter of the run when it is shorter than 20 minutes).
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from agentic_llm.benchmarks.load import rss_kb
from agentic_llm.benchmarks.report import emit, print_table, summarize

__all__ = ["add_arguments", "run", "run_soak", "unique_request"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="DIR", default=None,
                   help="checkpoint the server loads (default: the shipped model)")
    p.add_argument("--address", default=None, help="use a running server instead of starting one")
    p.add_argument("--pid", type=int, default=None,
                   help="with --address: the server's process id, to sample its RSS")
    p.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    p.add_argument("--duration", type=float, default=1200.0, help="seconds (default 1200)")
    p.add_argument("--deadline", type=float, default=30.0, help="per-call deadline (default 30 s)")
    p.add_argument("--unique", action="store_true",
                   help="every request new (own path, values, prompt): nothing is cached")
    p.add_argument("--max-tokens", type=int, default=160, help="budget.max_tokens per request")
    p.add_argument("--max-concurrent", type=int, default=16, help="server limits.max_concurrent")
    p.add_argument("--max-queue", type=int, default=32, help="server limits.max_queue")
    p.add_argument("--num-blocks", type=int, default=2048, help="server KV pages")
    p.add_argument("--no-heap-bound", action="store_true",
                   help="start the server with limits.malloc_arena_max, "
                        "malloc_trim_interval_sec and tokenizer_cache_words at 0 (the "
                        "glibc and tokenizer defaults: the baseline)")
    p.add_argument("--rss-tolerance", type=float, default=0.10,
                   help="allowed RSS growth from the reference minute to the end (default 0.10)")


_PROMPTS = (
    "Find {{ n }} hotels in {{ city }} under {{ budget }} and rank them",
    "Summarize the {{ n }} latest reports about {{ city }} for a {{ budget }} review",
    "Plan a {{ n }}-step check of the {{ city }} invoices above {{ budget }}",
)


def unique_request(i: int, *, unique: bool, max_tokens: int, deadline: float) -> dict[str, Any]:
    """Request number ``i`` of the soak: with ``unique``, its path, values and
    wording are its own."""
    k = i if unique else i % 8
    return {
        "target_path": f"/dynamic/soak_{k}",
        "prompt": _PROMPTS[k % len(_PROMPTS)] + (f" (case {k})" if unique else ""),
        "context": {"available_vars": {"n": "number", "city": "string", "budget": "number"},
                    "values": {"n": 3 + k % 5, "city": f"city-{k}", "budget": 100 + k}},
        "budget": {"max_nodes": 4, "max_tokens": max_tokens, "timeout_sec": deadline},
        "sampling": {"temperature": 0.0},
        "flags": {"bypass_cache": unique},
    }


def _per_minute(samples: list[tuple[float, int]], duration: float) -> list[float]:
    """RSS (MB) at the end of each whole minute, plus the end of the run."""
    out = []
    marks = [60.0 * m for m in range(1, int(duration // 60) + 1)]
    if not marks or marks[-1] < duration:
        marks.append(duration)
    for mark in marks:
        before = [kb for t, kb in samples if t <= mark]
        if before:
            out.append(round(before[-1] / 1024, 1))
    return out


def run_soak(args: argparse.Namespace, address: str, pid: int | None) -> dict[str, Any]:
    """Drive the soak against ``address``; returns the figures."""
    from agentic_llm.client import Client, RetryPolicy, ServiceError

    counter = itertools.count()
    lock = threading.Lock()
    latencies: list[float] = []
    codes: Counter[str] = Counter()
    lost: list[str] = []
    hung: list[float] = []
    start = time.monotonic()
    stop_at = start + args.duration
    samples: list[tuple[float, int]] = []

    def client_loop() -> None:
        with Client(address, timeout=args.deadline, retry=RetryPolicy(max_attempts=1)) as c:
            while time.monotonic() < stop_at:
                i = next(counter)
                req = unique_request(i, unique=args.unique, max_tokens=args.max_tokens,
                                     deadline=args.deadline)
                t0 = time.monotonic()
                code = ""
                try:
                    c.generate_subgraph(req, timeout=args.deadline)
                    code = "OK"
                except ServiceError as exc:
                    code = exc.code.value
                except Exception as exc:  # noqa: BLE001 - a transport failure: lost
                    with lock:
                        lost.append(f"{type(exc).__name__}: {exc}"[:200])
                    continue
                took = time.monotonic() - t0
                with lock:
                    codes[code] += 1
                    latencies.append(took)
                    if took > args.deadline + 1.0:
                        hung.append(took)

    def sampler() -> None:
        while time.monotonic() < stop_at + 0.5:
            samples.append((time.monotonic() - start, rss_kb(pid)))
            time.sleep(1.0)

    rss_start = rss_kb(pid)
    threads = [threading.Thread(target=client_loop, daemon=True) for _ in range(args.clients)]
    s = threading.Thread(target=sampler, daemon=True)
    s.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(args.duration + args.deadline + 30)
    s.join(5)
    still_running = sum(t.is_alive() for t in threads)
    per_minute = _per_minute(samples, args.duration)
    ref_t = 300.0 if args.duration >= 1200 else args.duration / 4
    ref = [kb for t, kb in samples if t <= ref_t]
    ref_mb = ref[-1] / 1024 if ref else 0.0
    end_mb = samples[-1][1] / 1024 if samples else 0.0
    growth = (end_mb - ref_mb) / ref_mb if ref_mb else 0.0
    answered = sum(codes.values())
    return {
        "clients": args.clients, "duration_s": args.duration, "deadline_s": args.deadline,
        "unique": bool(args.unique), "calls": answered + len(lost),
        "answered": answered, "throughput_rps": answered / args.duration,
        "outcomes": dict(codes), "lost": len(lost) + still_running, "lost_examples": lost[:5],
        "hung": len(hung), "hung_max_s": max(hung) if hung else 0.0,
        "latency_s": summarize(latencies),
        "rss_mb": {"start": rss_start / 1024, "reference": ref_mb, "reference_at_s": ref_t,
                   "end": end_mb, "growth_from_reference": growth,
                   "per_minute": per_minute},
        "passed": (not lost and not hung and not still_running
                   and (pid is None or growth <= args.rss_tolerance)),
    }


def _start_server(args: argparse.Namespace, tmp: Path) -> tuple[subprocess.Popen[str], str]:
    from agentic_llm.benchmarks.load import start_server

    limits: dict[str, Any] = {"max_concurrent": args.max_concurrent, "max_queue": args.max_queue,
                              "drain_timeout_sec": 60}
    if args.no_heap_bound:
        limits.update(malloc_arena_max=0, malloc_trim_interval_sec=0, tokenizer_cache_words=0)
    return start_server(args.model, args.num_blocks, limits, tmp)


def run(args: argparse.Namespace) -> int:
    proc = None
    with tempfile.TemporaryDirectory(prefix="agentic-soak-") as tmp:
        if args.address:
            address, pid = args.address, args.pid
        else:
            proc, address = _start_server(args, Path(tmp))
            pid = proc.pid
        try:
            out = run_soak(args, address, pid)
        finally:
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
    out["heap_bound"] = not args.no_heap_bound
    emit(out, as_json=args.json)
    if not args.json:
        rss = out["rss_mb"]
        print_table(["figure", "value"], [
            ["calls answered", out["answered"]], ["lost", out["lost"]], ["hung", out["hung"]],
            ["outcomes", out["outcomes"]],
            ["RSS per minute (MB)", rss["per_minute"]],
            ["RSS growth after reference", f"{100 * rss['growth_from_reference']:.1f}%"],
            ["passed", out["passed"]],
        ])
    return 0 if out["passed"] else 1
