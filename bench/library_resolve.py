"""Cost of library resolution in ``plan()``: without a resolver, with an empty LMDB
library, and with N archived solutions of the request's tenant (medians, in one run).

    python3 bench/library_resolve.py --entries 1000 --repeats 50
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time

from agentic_llm.config import LibraryConfig
from agentic_llm.library import open_library
from agentic_llm.planner import GenerateRequest, plan

DOC = ('### AgenticDSL `/dynamic/p`\n```yaml\n# --- BEGIN AgenticDSL ---\ngraph_type: subgraph\n'
       'entry: "start"\nnodes:\n  - id: "start"\n    type: start\n    next: ["/dynamic/p/end"]\n'
       '  - id: "end"\n    type: end\n# --- END AgenticDSL ---\n```\n')
WORDS = ["alpha", "beta", "gamma", "delta", "hotel", "city", "rank", "find", "plan", "trip", "book", "table", "weather", "report", "summary"]


def _median_ms(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1000.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--entries", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args()
    lib = open_library(LibraryConfig(store="lmdb", path=tempfile.mkdtemp() + "/lib"))
    assert lib is not None
    req = GenerateRequest.from_json({"target_path": "/dynamic/q", "prompt": "Find hotels in {{ city }}",
                                     "tenant": "t", "context": {"available_vars": {"city": "string"}}})
    base = _median_ms(lambda: plan(req), args.repeats)
    empty = _median_ms(lambda: plan(req, library=lib.resolver), args.repeats)
    rng = random.Random(0)
    for i in range(args.entries):
        prompt = " ".join(rng.sample(WORDS, 6)) + f" item{i} {{{{ city }}}}"
        r = GenerateRequest.from_json({"target_path": "/dynamic/p", "prompt": prompt, "tenant": "t",
                                       "context": {"available_vars": {"city": "string"}}})
        lib.archive.add(lib.resolver.served_record(plan(r), DOC, True))
    full = _median_ms(lambda: plan(req, library=lib.resolver), args.repeats)
    print(f"plan() without a library: {base:.3f} ms")
    print(f"with an empty library:    {empty:.3f} ms ({empty / base:.2f}x)")
    print(f"with {len(lib.archive.entries('t'))} archived entries: {full:.3f} ms ({full / base:.1f}x)")


if __name__ == "__main__":
    main()
