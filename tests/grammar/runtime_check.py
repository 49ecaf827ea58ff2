"""A test-side check of what the reference runtime would do with a generated document.

Built on the shared model of its scalar reading (``reads_as_string``) and on its graph
build (``TopoScheduler::build_dag``: every ``next`` and ``wait_for`` path must be a
registered node, i.e. a node of the document or one of its ``/__system__`` nodes).
Library paths count as registered only when the caller passes them in ``loaded``
(the runtime has them only when their blocks are loaded beside the document).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

from agentic_llm.dsl.conformance.scalars import reads_as_string

SYSTEM_NODES = frozenset({"/__system__/budget_exceeded", "/__system__/end_soft", "/__system__/noop"})
CRASH_BLOCK_BYTES = 27 * 1024  # the smallest block size reported to crash the reference


def _strings(value: Any, where: str) -> Iterable[tuple[str, str]]:
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{where}[{i}]")


def _block(text: str) -> tuple[str, str]:
    head = text.split("\n", 1)[0]
    path = head.split("`")[1]
    body = text.split("# --- BEGIN AgenticDSL ---\n", 1)[1].split("# --- END AgenticDSL ---", 1)[0]
    return path, body


def problems(text: str, loaded: Iterable[str] = ()) -> dict[str, list[str]]:
    """What the reference would refuse in a one-block generated document, by kind:
    ``end_soft`` (a reference to ``/end_soft``), ``misread`` (a string it reads as a
    number, boolean or null), ``oversized`` (a block over the crash size),
    ``unresolved`` (any other reference its graph build cannot resolve)."""
    out: dict[str, list[str]] = {"end_soft": [], "misread": [], "oversized": [], "unresolved": []}
    path, body = _block(text)
    if len(body.encode()) > CRASH_BLOCK_BYTES:
        out["oversized"].append(f"{len(body.encode())} bytes")
    data = yaml.safe_load(body)
    for where, s in _strings(data, ""):
        if not reads_as_string(s):
            out["misread"].append(f"{where}={s!r}")
    nodes = data.get("nodes") or []
    registered = {f"{path}/{n['id']}" for n in nodes if isinstance(n.get("id"), str)}
    registered |= SYSTEM_NODES | set(loaded)
    for n in nodes:
        refs = list(n.get("next") or [])
        refs += list((n.get("join") or {}).get("wait_for") or [])
        for r in refs:
            if r == "/end_soft":
                out["end_soft"].append(f"{n['id']} -> {r}")
            elif r not in registered:
                out["unresolved"].append(f"{n['id']} -> {r}")
    return out


def conforms(text: str, loaded: Iterable[str] = ()) -> bool:
    return not any(problems(text, loaded).values())
