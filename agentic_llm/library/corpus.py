"""Write the solved archive as a training corpus in the format ``training/`` reads.

Each archived solution becomes one JSON line ``{"request", "prompt", "answer"}``
(``train.jsonl``): the request that produced it, the prompt the planner renders for
it today (without library resolution, as ``training.corpus`` does) and the canonical
form of the subgraph (``dsl.dumps``). A solution that no longer validates against its
request's plan is skipped and counted. ``python -m training.train --corpus DIR``
fine-tunes on it.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentic_llm import dsl
from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["ExportReport", "parse_since", "export_corpus", "example_for"]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, *, now: float | None = None) -> float:
    """Unix seconds from ``all``, a duration back from now (``7d``, ``12h``), an ISO
    date or time (``2026-12-01``, ``2026-12-01T08:00:00Z``) or Unix seconds.

    Raises:
        AgenticError: ERR_INVALID_REQUEST for anything else.
    """
    now = time.time() if now is None else now
    t = text.strip()
    if t in ("", "all", "0"):
        return 0.0
    m = _DURATION.fullmatch(t)
    if m:
        return now - float(m.group(1)) * _UNIT[m.group(2)]
    try:
        return float(t)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise AgenticError(ErrorCode.INVALID_REQUEST,
                           f"--since {text!r}: use 'all', a duration (7d, 12h), an ISO date or Unix seconds",
                           field="since") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


@dataclass(frozen=True)
class ExportReport:
    path: Path
    written: int
    skipped: int
    since: float


def example_for(entry: Any) -> dict[str, Any] | None:
    """The corpus record of one archived solution, or None when it no longer validates."""
    from agentic_llm.planner import GenerateRequest, PlanRefusal, plan

    try:
        req = GenerateRequest.from_json(entry.request)
        p = plan(req)
    except (AgenticError, PlanRefusal):
        return None
    diags = dsl.check_text(entry.text, p.validation_policy())
    if dsl.has_errors(diags):
        return None
    answer = dsl.dumps(dsl.parse(entry.text))
    return {"request": req.to_json(), "prompt": p.render_prompt(), "answer": answer,
            "source": {"path": entry.path, "successes": entry.successes, "uses": entry.uses,
                       "use_successes": entry.use_successes, "updated": entry.updated}}


def export_corpus(registry: Any, out: Path, *, since: float = 0.0, tenant: str | None = None) -> ExportReport:
    """Write ``out/train.jsonl`` (and ``out/manifest.json``) from archived solutions
    created or updated at or after ``since``; ``tenant`` None exports every tenant."""
    out.mkdir(parents=True, exist_ok=True)
    entries = registry.archive.all_entries() if tenant is None else registry.archive.entries(tenant)
    written = skipped = 0
    with (out / "train.jsonl").open("w", encoding="utf-8") as fh:
        for e in entries:
            if max(e.created, e.updated) < since:
                continue
            rec = example_for(e)
            if rec is None:
                skipped += 1
                continue
            fh.write(json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n")
            written += 1
    (out / "manifest.json").write_text(json.dumps(
        {"source": "solved-archive", "since": since, "examples": written, "skipped": skipped,
         "exported_at": time.time()}, indent=2) + "\n", encoding="utf-8")
    return ExportReport(out, written, skipped, since)
