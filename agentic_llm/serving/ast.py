"""Turn ``agentic_llm.dsl`` AST objects into JSON-ready block and node records, and
check a generated document against a plan's policy."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

from agentic_llm.serving.result import AstBlockInfo, AstNodeInfo, DiagnosticInfo

__all__ = ["to_jsonable", "node_info", "document_blocks", "diagnostic_info", "check_document",
           "shown"]

# Source positions and bookkeeping that are not part of the program.
_SKIP = frozenset({"line", "field_lines", "extra"})


def to_jsonable(value: Any) -> Any:
    """A JSON-compatible copy of an AST value (dataclasses, tuples, enums, signatures)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, enum.Enum):
        return value.value
    to_string = getattr(value, "to_string", None)
    if callable(to_string):  # Signature: the runtime reads the string form
        return to_string()
    items = getattr(value, "items", None)
    if type(value).__name__ == "Permissions" and isinstance(items, tuple):
        return list(items)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            if f.name in _SKIP:
                continue
            v = getattr(value, f.name)
            if v is not None:
                out[f.name] = to_jsonable(v)
        extra = getattr(value, "extra", None)
        if isinstance(extra, Mapping):
            for k, v in extra.items():
                out.setdefault(str(k), to_jsonable(v))
        return out
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    return str(value)


def node_info(node: Any, path: str) -> AstNodeInfo:
    """The record of one ``dsl`` node at ``path``."""
    data = to_jsonable(node)
    if not isinstance(data, dict):
        data = {}
    node_id = str(data.pop("id", "") or path.rsplit("/", 1)[-1])
    nxt = data.pop("next", None) or []
    return AstNodeInfo(
        id=node_id,
        type=str(getattr(node, "type", "") or data.pop("type", "")),
        path=path,
        next=tuple(str(t) for t in nxt),
        fields=data,
    )


def document_blocks(doc: Any) -> tuple[AstBlockInfo, ...]:
    """Every block of a ``dsl.Document`` as an :class:`AstBlockInfo`."""
    out: list[AstBlockInfo] = []
    for block in getattr(doc, "blocks", ()):
        kind = type(block).__name__
        if kind == "Subgraph":
            nodes = tuple(node_info(n, f"{block.path}/{n.id}") for n in block.nodes)
            fields = to_jsonable(block)
            fields.pop("nodes", None)
            fields.pop("path", None)
            entry = str(fields.pop("entry", "") or "")
            out.append(AstBlockInfo(block.path, "subgraph", entry, nodes, fields))
        elif kind == "NodeBlock":
            out.append(AstBlockInfo(block.path, "node", "", (node_info(block.node, block.path),)))
        else:
            fields = to_jsonable(block)
            fields.pop("path", None)
            out.append(AstBlockInfo(block.path, "meta" if kind == "Meta" else "resources", "", (), fields))
    return tuple(out)


def diagnostic_info(diag: Any) -> DiagnosticInfo:
    """The record of one ``dsl.Diagnostic``."""
    code = getattr(diag, "code", "")
    sev = getattr(diag, "severity", "")
    return DiagnosticInfo(
        code=str(getattr(code, "value", code)),
        severity=str(getattr(sev, "value", sev)).lower(),
        message=str(getattr(diag, "message", "")),
        block=str(getattr(diag, "block", "") or ""),
        line=getattr(diag, "line", None),
    )


def check_document(text: str, policy: Any) -> tuple[Any, list[DiagnosticInfo]]:
    """Parse and validate; (None, parse diagnostics) when the text does not parse."""
    from agentic_llm.dsl import DSLParseError, parse, validate

    try:
        doc = parse(text)
    except DSLParseError as exc:
        return None, [diagnostic_info(d) for d in exc.diagnostics]
    return doc, [diagnostic_info(d) for d in validate(doc, policy)]


def shown(diags: list[DiagnosticInfo], all_severities: bool) -> tuple[DiagnosticInfo, ...]:
    """The diagnostics a result carries: errors, or every severity on request."""
    return tuple(d for d in diags if all_severities or d.is_error)
