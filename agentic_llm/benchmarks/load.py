"""``agentic-llm bench load``: many concurrent clients against a real server process.

Starts ``agentic-llm serve`` as a child process on a free loopback port (or uses
``--address``), then runs ``--clients`` threads, each sending requests back to back
for ``--duration`` seconds. Requests come from the synthetic workload generator
(a Zipf mix of task templates and values, so some repeat exactly, some differ only
in values and some are new); every request carries a unique ``dag_id`` that the
server echoes, which is how lost and duplicated responses are counted.

Reported: throughput (responses/s), p50/p99 latency overall and for cache hits and
generated answers, refusals by ERR_* code, lost / duplicated / invalid responses,
and the server's resident memory (VmRSS) after warm-up and at the end, plus its
trend over the measured window. Warm-up traffic (``--warmup`` seconds) is excluded
from the latency figures but counted for lost/duplicated responses.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentic_llm.benchmarks.report import default_plot_path, emit, print_table, summarize

__all__ = ["add_arguments", "run", "run_load"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="DIR", default=None,
                   help="checkpoint the server loads (default: the shipped model)")
    p.add_argument("--address", default=None, help="use a running server instead of starting one")
    p.add_argument("--clients", type=int, default=64, help="concurrent clients (default 64)")
    p.add_argument("--duration", type=float, default=60.0, help="measured seconds (default 60)")
    p.add_argument("--warmup", type=float, default=10.0, help="seconds before measuring (default 10)")
    p.add_argument("--requests", type=int, default=400, help="distinct requests in the workload")
    p.add_argument("--templates", type=int, default=8, help="task templates in the workload")
    p.add_argument("--bypass-fraction", type=float, default=0.1,
                   help="share of requests sent with bypass_cache, so the model keeps "
                        "generating after the cache has warmed up (default 0.1)")
    p.add_argument("--max-concurrent", type=int, default=32, help="server limits.max_concurrent")
    p.add_argument("--max-queue", type=int, default=64, help="server limits.max_queue")
    p.add_argument("--num-blocks", type=int, default=4096, help="server KV pages")
    p.add_argument("--seed", type=int, default=0, help="random seed of the workload (default 0)")


@dataclass
class _Result:
    t_sent: float
    latency_s: float
    ok: bool
    valid: bool = False
    cache: str = ""
    code: str = ""
    note: str = ""


def rss_kb(pid: int | None) -> int:
    """Resident set size of process ``pid`` in KiB (0 when unknown)."""
    if pid is None:
        return 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _start_server(args: argparse.Namespace, tmp: Path) -> tuple[subprocess.Popen[str], str]:
    limits = {"max_concurrent": args.max_concurrent, "max_queue": args.max_queue,
              "drain_timeout_sec": 60}
    return start_server(args.model, args.num_blocks, limits, tmp)


def start_server(model: str | None, num_blocks: int | None, limits: dict[str, Any],
                 tmp: Path) -> tuple[subprocess.Popen[str], str]:
    """``agentic-llm serve`` in a subprocess on a loopback port, with an LMDB cache in
    ``tmp``; returns the process and the address it printed."""
    import yaml

    cfg: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "model": {"dir": model or "", "num_blocks": num_blocks},
        "cache": {"store": "lmdb", "path": str(tmp / "subgraphs.lmdb")},
        "limits": limits,
        "log_level": "warning",
    }
    path = tmp / "server.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentic_llm.cli.main", "serve", "--config", str(path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert proc.stderr is not None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        if "serving on" in line:
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, line.strip().rsplit(" ", 1)[-1]
    proc.kill()
    raise RuntimeError("the server did not start; run `agentic-llm serve` by hand to see why")


def run_load(args: argparse.Namespace, address: str, server_pid: int | None) -> dict[str, Any]:
    """Drive the load against ``address``; returns the figures."""
    from agentic_llm.benchmarks.workloads import WorkloadSpec, synthetic_workload
    from agentic_llm.client import Client, RetryPolicy, ServiceError

    workload = [{k: v for k, v in r.items() if k != "arrival_s"} for r in synthetic_workload(
        WorkloadSpec(num_requests=args.requests, num_templates=args.templates, seed=args.seed))]
    lock = threading.Lock()
    rng = random.Random(args.seed)
    next_index = 0
    sent: dict[str, int] = {}
    answered: Counter[str] = Counter()
    results: list[_Result] = []
    mismatched = 0
    start = time.perf_counter()
    stop_at = start + args.warmup + args.duration
    rss: list[tuple[float, int]] = []

    def client_loop() -> None:
        nonlocal next_index, mismatched
        with Client(address, timeout=120, retry=RetryPolicy(max_attempts=1)) as c:
            while time.perf_counter() < stop_at:
                with lock:
                    req = dict(workload[next_index % len(workload)])
                    next_index += 1
                    tag = uuid.uuid4().hex
                    sent[tag] = sent.get(tag, 0) + 1
                    bypass = rng.random() < args.bypass_fraction
                req["dag_id"] = tag
                if bypass:
                    req["flags"] = {**req.get("flags", {}), "bypass_cache": True}
                t0 = time.perf_counter()
                try:
                    r = c.generate_subgraph(req)
                    note = "" if r.valid else (
                        f"{r.target_path} finish={r.finish_reason} "
                        + "; ".join(f"{d.code}: {d.message}" for d in r.diagnostics[:2]))
                    res = _Result(t0, time.perf_counter() - t0, True, r.valid, r.cache.value, note=note)
                    key = r.dag_id
                    if r.target_path != req["target_path"]:
                        with lock:
                            mismatched += 1
                except ServiceError as exc:
                    res = _Result(t0, time.perf_counter() - t0, False, code=exc.code.value)
                    key = tag
                with lock:
                    answered[key] += 1
                    results.append(res)

    def sample_rss() -> None:
        while time.perf_counter() < stop_at + 1 and server_pid is not None:
            rss.append((time.perf_counter() - start, rss_kb(server_pid)))
            time.sleep(1.0)

    rss_before = rss_kb(server_pid) if server_pid else 0
    threads = [threading.Thread(target=client_loop, daemon=True) for _ in range(args.clients)]
    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sampler.join(5)
    elapsed = time.perf_counter() - start

    measured = [r for r in results if r.t_sent - start >= args.warmup]
    ok = [r for r in measured if r.ok]
    lost = sum(1 for tag in sent if answered[tag] == 0)
    duplicated = sum(n - 1 for n in answered.values() if n > 1) + sum(1 for k in answered if k not in sent)
    window = [kb for t, kb in rss if t >= args.warmup]
    rss_warm = window[0] if window else 0
    rss_end = window[-1] if window else 0
    rss_peak = max(window) if window else 0
    out: dict[str, Any] = {
        "clients": args.clients,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "requests_sent": len(sent),
        "responses": sum(answered.values()),
        "measured_responses": len(measured),
        "throughput_rps": len(ok) / args.duration if args.duration else 0.0,
        "latency_s": summarize([r.latency_s for r in ok]),
        "bypass_fraction": args.bypass_fraction,
        "latency_hit_s": summarize([r.latency_s for r in ok if r.cache in ("exact", "fuzzy")]),
        "latency_generated_s": summarize([r.latency_s for r in ok if r.cache not in ("exact", "fuzzy")]),
        "cache_outcomes": dict(Counter(r.cache for r in ok)),
        "refusals": dict(Counter(r.code for r in measured if not r.ok)),
        "lost": lost,
        "duplicated": duplicated,
        "invalid": sum(1 for r in results if r.ok and not r.valid) + mismatched,
        "invalid_examples": [r.note for r in results if r.ok and not r.valid][:5],
        "server_rss_mb": {"start": rss_before / 1024, "after_warmup": rss_warm / 1024,
                          "end": rss_end / 1024, "peak_measured": rss_peak / 1024},
        "rss_series": rss,
        "wall_s": elapsed,
    }
    return out


def run(args: argparse.Namespace) -> int:
    proc = None
    with tempfile.TemporaryDirectory(prefix="agentic-load-") as tmp:
        try:
            if args.address:
                address, pid = args.address, None
            else:
                if not args.json:
                    print("starting the server ...", file=sys.stderr, flush=True)
                proc, address = _start_server(args, Path(tmp))
                pid = proc.pid
            if not args.json:
                print(f"{args.clients} clients for {args.warmup:.0f}+{args.duration:.0f} s "
                      f"against {address} ...", file=sys.stderr, flush=True)
            res = run_load(args, address, pid)
        finally:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(90)
                except subprocess.TimeoutExpired:
                    proc.kill()
    series = res.pop("rss_series")
    if args.json:
        emit(res, as_json=True)
    else:
        lat, hit, gen = res["latency_s"], res["latency_hit_s"], res["latency_generated_s"]
        print_table(["metric", "value"], [
            ["throughput (responses/s)", res["throughput_rps"]],
            ["latency p50 / p99 (s)", f"{lat['p50']:.3f} / {lat['p99']:.3f}"],
            ["cache-hit p50 / p99 (s)", f"{hit['p50']:.3f} / {hit['p99']:.3f}"],
            ["generated p50 / p99 (s)", f"{gen['p50']:.3f} / {gen['p99']:.3f}"],
            ["cache outcomes", res["cache_outcomes"]],
            ["refusals", res["refusals"] or "none"],
            ["sent / answered", f"{res['requests_sent']} / {res['responses']}"],
            ["lost / duplicated / invalid", f"{res['lost']} / {res['duplicated']} / {res['invalid']}"],
            ["server RSS MB start / warm / end / peak",
             "{start:.0f} / {after_warmup:.0f} / {end:.0f} / {peak_measured:.0f}".format(**res["server_rss_mb"])],
        ])
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        path = default_plot_path("load") if args.plot == "auto" else Path(args.plot)
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.plot([t for t, _ in series], [kb / 1024 for _, kb in series])
        ax.axvline(args.warmup, linestyle="--", color="grey")
        ax.set_xlabel("seconds")
        ax.set_ylabel("server RSS (MB)")
        ax.set_title(f"{args.clients} clients: {res['throughput_rps']:.1f} responses/s")
        fig.tight_layout()
        fig.savefig(path)
    return 0 if res["lost"] == 0 and res["duplicated"] == 0 and res["invalid"] == 0 else 1
