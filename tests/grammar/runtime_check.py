"""A test-side check of what the reference runtime would do with a generated document.

The reference's parse and graph build come from the package's model of them
(``agentic_llm.dsl.conformance.check_runtime``); on top of it, every string value is
checked with ``reads_as_string``, since the reference silently turns a quoted
``"2"`` into a number even where that refuses nothing. Library paths resolve only when
the caller passes them in ``loaded`` (the runtime holds them from the program the
document is appended to).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

from agentic_llm.dsl import Severity
from agentic_llm.dsl.conformance import check_runtime
from agentic_llm.dsl.conformance.scalars import reads_as_string
from agentic_llm.errors import ErrorCode


def _strings(value: Any, where: str) -> Iterable[tuple[str, str]]:
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{where}[{i}]")


def _body(text: str) -> str:
    return text.split("# --- BEGIN AgenticDSL ---\n", 1)[1].split("# --- END AgenticDSL ---", 1)[0]


def problems(text: str, loaded: Iterable[str] = ()) -> dict[str, list[str]]:
    """What the reference would refuse or misread in a generated document, by kind:
    ``end_soft`` (a reference to ``/end_soft``), ``misread`` (a string it reads as a
    number, boolean or null), ``oversized`` (a block it crashes on), ``unresolved``
    (any other refusal or silent drop of its parse and graph build)."""
    out: dict[str, list[str]] = {"end_soft": [], "misread": [], "oversized": [], "unresolved": []}
    for d in check_runtime(text, loaded=loaded):
        if d.severity is not Severity.ERROR:
            continue
        if "Next node not found: /end_soft" in d.message:
            out["end_soft"].append(d.message)
        elif d.code is ErrorCode.RUNTIME_CRASH:
            out["oversized"].append(d.message)
        else:
            out["unresolved"].append(d.message)
    if not out["oversized"]:
        for where, s in _strings(yaml.safe_load(_body(text)), ""):
            if not reads_as_string(s):
                out["misread"].append(f"{where}={s!r}")
    return out


def conforms(text: str, loaded: Iterable[str] = ()) -> bool:
    return not any(problems(text, loaded).values())
