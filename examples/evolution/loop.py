"""One turn of the evolution loop against a running server (see docs/evolution.md).

    python3 examples/evolution/loop.py --address 127.0.0.1:50077 --runs 24

Publishes two versions of ``/lib/text/shout``, splits traffic 50/50 by ``dag_id``,
generates ``--runs`` subgraphs that may call it, reports each run's outcome, lists the
per-version statistics, promotes the winner, then reports one solved request so the
archive holds it. This script stands in for the agent runtime: a run "succeeds" when
the generated subgraph is valid and, for v1, when its dag number is even (v1 is the
weaker version on purpose), so the numbers it prints show the mechanism, not a model's
quality.
"""

from __future__ import annotations

import argparse
import json

from agentic_llm.client import Client

TENANT = "demo"
DOC = """### AgenticDSL `/lib/text/shout`
```yaml
# --- BEGIN AgenticDSL ---
graph_type: subgraph
signature: "(text: string) -> loud: string"
entry: "up"
nodes:
  - id: "up"
    type: assign
    assign:
      "loud": "{{ inputs.text }}{SUFFIX}"
    next: ["/lib/text/shout/done"]
  - id: "done"
    type: end
    output_keys: ["loud"]
# --- END AgenticDSL ---
```
"""
USE = {
    "target_path": "/dynamic/plan_1",
    "prompt": "Make {{ message }} louder and return it",
    "context": {"available_vars": {"message": "string"}, "values": {"message": "hello"}},
    "library": [{"path": "/lib/text/shout"}],
    "budget": {"max_nodes": 4, "max_tokens": 256},
    "tenant": TENANT,
}
SOLVE = {
    "target_path": "/dynamic/plan_1",
    "prompt": "Find three hotels in {{ city }} and rank them",
    "context": {"available_vars": {"city": "string"}, "values": {"city": "Rome"}},
    "budget": {"max_nodes": 4, "max_tokens": 256},
    "tenant": TENANT,
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--address", default="127.0.0.1:50077")
    ap.add_argument("--runs", type=int, default=24)
    args = ap.parse_args()
    with Client(args.address, timeout=120) as c:
        for suffix in ("", "!"):
            d = c.publish_library("/lib/text/shout", DOC.replace("{SUFFIX}", suffix), tenant=TENANT)
            print(f"published {d.path}@v{d.version} signature {d.signature!r}")
        print("split", c.set_library_split("/lib/text/shout", {1: 0.5, 2: 0.5}, tenant=TENANT))
        for i in range(args.runs):
            r = c.generate_subgraph({**USE, "dag_id": f"dag-{i}"})
            version = dict(r.library_versions)["/lib/text/shout"]
            # The stand-in runtime: v2 runs succeed when the subgraph is valid, v1 runs
            # only on even dags as well.
            ok = r.valid and (version == 2 or i % 2 == 0)
            rep = c.report_outcome(r.request_id, success=ok, latency_ms=r.timings.total_ms, tenant=TENANT)
            print(f"run {i:2d} v{version} cache={r.cache.value:6s} valid={r.valid} success={ok} "
                  f"archived={rep['archived_path'] or '-'}")
        for v in c.list_versions("/lib/text/shout", tenant=TENANT)["versions"]:
            print(f"v{v['document'].version}: runs {v['runs']} success {v['success_rate']:.2f} "
                  f"latency {v['mean_latency_ms']:.1f} ms default={v['is_default']}")
        print("promoted", c.promote_version("/lib/text/shout", tenant=TENANT))
        r = c.generate_subgraph(SOLVE)
        rep = c.report_outcome(r.request_id, success=r.valid, latency_ms=r.timings.total_ms, tenant=TENANT)
        print("solved request archived as", rep["archived_path"])
        print(json.dumps([{k: e[k] for k in ("path", "prompts", "tools", "successes")}
                          for e in c.list_solved(tenant=TENANT)], indent=1))


if __name__ == "__main__":
    main()
