"""Parsing knowledge records (``register_batch`` items, JSONL lines) into register() calls."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["iter_jsonl", "split_record"]

_VECTOR_FIELDS = ("id", "key", "value")
_TEXT_FIELDS = ("id", "prompt", "target")
_OPTIONAL = ("reliability", "pinned", "metadata", "namespace")


def split_record(item: Mapping[str, Any], where: str) -> tuple[str, dict[str, Any]]:
    """(``"vector"`` or ``"text"``, keyword arguments) for one knowledge record."""
    if not isinstance(item, Mapping):
        raise AgenticError(ErrorCode.INVALID_REQUEST, f"{where}: a knowledge record must be an object")
    if all(f in item for f in _VECTOR_FIELDS):
        kind, fields = "vector", _VECTOR_FIELDS
    elif all(f in item for f in _TEXT_FIELDS):
        kind, fields = "text", _TEXT_FIELDS
    else:
        raise AgenticError(
            ErrorCode.MISSING_FIELD,
            f"{where}: a knowledge record needs either {list(_VECTOR_FIELDS)} or "
            f"{list(_TEXT_FIELDS)}; got {sorted(item)}",
        )
    unknown = set(item) - set(fields) - set(_OPTIONAL)
    if unknown:
        raise AgenticError(ErrorCode.INVALID_FIELD,
                           f"{where}: unknown knowledge fields {sorted(unknown)}")
    return kind, {k: item[k] for k in (*fields, *_OPTIONAL) if k in item}


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for every non-empty line of a JSONL file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise AgenticError(ErrorCode.RESOURCE_UNAVAILABLE, f"cannot read knowledge file {p}: {exc}") from exc
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AgenticError(ErrorCode.INVALID_REQUEST,
                               f"{p}:{n}: not valid JSON: {exc.msg}", line=n) from exc
        yield n, rec
