"""Synthetic agent workloads for the cache benchmark.

An agent runtime asks the same kinds of questions again and again: every request
shares the system prompt and the library listing, a few task templates account for
most traffic (Zipf popularity), each request draws its own variable values, and
fork groups send sibling branches of one DAG together. :func:`synthetic_workload`
produces such a stream as request JSON objects (the format ``GenerateRequest``
reads) plus an optional ``arrival_s``; :func:`write_jsonl` / :func:`read_jsonl` store
it as JSON lines.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["WorkloadSpec", "synthetic_workload", "write_jsonl", "read_jsonl", "TEMPLATES"]

# A shared tool catalogue and library listing: the same text in front of every request.
_TOOLS: dict[str, dict[str, Any]] = {
    "web_search": {"description": "search the web",
                   "arguments": [{"name": "query", "type": "string", "required": True},
                                 {"name": "limit", "type": "integer", "required": False}],
                   "output": "results"},
    "rank": {"description": "rank items by a criterion",
             "arguments": [{"name": "items", "type": "string", "required": True},
                           {"name": "by", "type": "string", "required": False}],
             "output": "ranked"},
    "send_email": {"description": "send an email",
                   "arguments": [{"name": "to", "type": "string", "required": True},
                                 {"name": "body", "type": "string", "required": True}],
                   "output": "receipt"},
    "fetch_weather": {"description": "weather forecast for a place",
                      "arguments": [{"name": "place", "type": "string", "required": True}],
                      "output": "forecast"},
    "sql_query": {"description": "run a read-only SQL query",
                  "arguments": [{"name": "sql", "type": "string", "required": True}],
                  "output": "rows"},
}
_LIBRARY = [
    {"path": "/lib/math/add", "signature": "(a: number, b: number) -> sum: number",
     "description": "adds two numbers"},
    {"path": "/lib/text/summarize", "signature": "(text: string) -> summary: string",
     "description": "summarizes a text"},
    {"path": "/lib/reasoning/verify", "signature": "(claim: string) -> ok: boolean",
     "description": "checks a claim"},
]
_VALUES: dict[str, list[Any]] = {
    "city": ["Rome", "Paris", "Lima", "Oslo", "Kyoto", "Cairo", "Quito", "Perth"],
    "budget": [80, 95, 120, 150, 200, 260],
    "topic": ["solar power", "tide pools", "jazz history", "rust lifetimes", "bee colonies"],
    "person": ["ana@example.org", "li@example.org", "sam@example.org", "kofi@example.org"],
    "table": ["orders", "users", "invoices", "events"],
    "days": [1, 3, 5, 7],
}


@dataclass(frozen=True)
class _Template:
    name: str
    prompt: str
    variables: dict[str, str]
    tools: tuple[str, ...]


TEMPLATES: tuple[_Template, ...] = (
    _Template("hotels", "Find three hotels in {{ city }} under {{ budget }} and rank them",
              {"city": "string", "budget": "number"}, ("web_search", "rank")),
    _Template("weather_trip", "Check the weather in {{ city }} for {{ days }} days and summarize it",
              {"city": "string", "days": "number"}, ("fetch_weather",)),
    _Template("research", "Research {{ topic }} and email a summary to {{ person }}",
              {"topic": "string", "person": "string"}, ("web_search", "send_email")),
    _Template("report", "Count the rows of {{ table }} and email the number to {{ person }}",
              {"table": "string", "person": "string"}, ("sql_query", "send_email")),
    _Template("compare", "Compare prices of flights to {{ city }} under {{ budget }}",
              {"city": "string", "budget": "number"}, ("web_search", "rank")),
    _Template("digest", "Search news about {{ topic }} and rank the top results",
              {"topic": "string"}, ("web_search", "rank")),
    _Template("audit", "Query {{ table }} for anomalies and report them",
              {"table": "string"}, ("sql_query",)),
    _Template("outfit", "Suggest clothes for {{ city }} given the forecast",
              {"city": "string"}, ("fetch_weather",)),
    _Template("notify", "Tell {{ person }} about {{ topic }}",
              {"person": "string", "topic": "string"}, ("send_email",)),
    _Template("budget_split", "Split a budget of {{ budget }} across {{ days }} days",
              {"budget": "number", "days": "number"}, ()),
    _Template("city_facts", "Collect facts about {{ city }} and verify them",
              {"city": "string"}, ("web_search",)),
    _Template("table_digest", "Summarize recent rows of {{ table }}",
              {"table": "string"}, ("sql_query",)),
)


@dataclass(frozen=True)
class WorkloadSpec:
    """Shape of a synthetic workload.

    Attributes:
        num_requests: requests to produce.
        num_templates: task templates in use (the first ``num_templates`` of TEMPLATES).
        zipf_s: Zipf exponent of template popularity (higher: more skewed).
        fork_prob: chance that a request opens a fork group.
        fork_size: siblings per fork group (one DAG, same template, own values).
        tenants: distinct tenants, drawn uniformly.
        rate_per_s: mean Poisson arrival rate written as ``arrival_s``.
        max_tokens: output budget of every request.
        seed: random seed; the same spec always gives the same workload.
    """

    num_requests: int = 100
    num_templates: int = 8
    zipf_s: float = 1.1
    fork_prob: float = 0.15
    fork_size: int = 3
    tenants: int = 1
    rate_per_s: float = 4.0
    max_tokens: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_requests < 1:
            raise ValueError(f"num_requests must be at least 1, got {self.num_requests}")
        if not 1 <= self.num_templates <= len(TEMPLATES):
            raise ValueError(f"num_templates must be in 1..{len(TEMPLATES)}, got {self.num_templates}")
        if self.zipf_s <= 0 or self.rate_per_s <= 0:
            raise ValueError("zipf_s and rate_per_s must be positive")
        if not 0 <= self.fork_prob <= 1 or self.fork_size < 2:
            raise ValueError("fork_prob must be in [0, 1] and fork_size at least 2")
        if self.tenants < 1 or self.max_tokens < 16:
            raise ValueError("tenants must be >= 1 and max_tokens >= 16")


def _request(t: _Template, values: dict[str, Any], spec: WorkloadSpec, tenant: str) -> dict[str, Any]:
    return {
        "target_path": f"/dynamic/{t.name}",
        "prompt": t.prompt,
        "context": {"available_vars": dict(t.variables), "values": values},
        "tools": [{"name": n, **_TOOLS[n]} for n in t.tools],
        "library": list(_LIBRARY),
        "budget": {"max_nodes": 8, "max_tokens": spec.max_tokens},
        "sampling": {"temperature": 0.0},
        "tenant": tenant,
    }


def synthetic_workload(spec: WorkloadSpec) -> list[dict[str, Any]]:
    """Requests in arrival order, each a request JSON object plus ``arrival_s``."""
    rng = random.Random(spec.seed)
    templates = TEMPLATES[: spec.num_templates]
    weights = [1.0 / (rank + 1) ** spec.zipf_s for rank in range(len(templates))]
    out: list[dict[str, Any]] = []
    clock = 0.0
    dag = 0
    while len(out) < spec.num_requests:
        clock += rng.expovariate(spec.rate_per_s)
        t = rng.choices(templates, weights)[0]
        tenant = f"tenant{rng.randrange(spec.tenants)}" if spec.tenants > 1 else ""
        group = spec.fork_size if rng.random() < spec.fork_prob else 1
        group = min(group, spec.num_requests - len(out))
        for branch in range(group):
            values = {v: rng.choice(_VALUES[v]) for v in t.variables}
            req = _request(t, values, spec, tenant)
            if group > 1:
                req["dag_id"] = f"dag{dag}"
                req["branch_id"] = f"b{branch}"
            req["arrival_s"] = round(clock, 4)
            out.append(req)
        dag += group > 1
    return out


def write_jsonl(requests: Iterable[dict[str, Any]], path: str | Path) -> None:
    """One request JSON object per line."""
    with open(path, "w", encoding="utf-8") as f:
        for r in requests:
            f.write(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n")


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Requests from a JSON-lines file (blank lines skipped).

    Raises:
        AgenticError: ERR_INVALID_REQUEST naming the line that is not a JSON object.
    """
    out: list[dict[str, Any]] = []
    try:
        lines: Sequence[str] = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise AgenticError(ErrorCode.INVALID_REQUEST, f"cannot read workload {path}: {exc}") from exc
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AgenticError(ErrorCode.INVALID_REQUEST, f"{path}:{i}: not JSON ({exc.msg})") from exc
        if not isinstance(obj, dict):
            raise AgenticError(ErrorCode.INVALID_REQUEST, f"{path}:{i}: expected a JSON object")
        out.append(obj)
    return out
