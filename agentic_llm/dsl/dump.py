"""``dumps``: the canonical text form of a Document (docs/canonical-form.md)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from agentic_llm.dsl.document import Document, Meta, NodeBlock, Resources, Subgraph
from agentic_llm.dsl.emit import emit_mapping, emit_value, flow_list, key_text, quote
from agentic_llm.dsl.markdown import BEGIN_MARKER, END_MARKER
from agentic_llm.dsl.nodes import COMMON_FIELDS, Join, Node, UnknownNode

#: the largest block written for the reference runtime (its std::regex block pattern
#: overflows the stack at about 27-33 KB of block text; 16 KB leaves a factor of two)
MAX_BLOCK_BYTES = 16 * 1024

__all__ = ["dumps", "dump_block"]

# Values the spec fixes; written bare (rule 3) when they are one of these words.
KEYWORD_VALUES: dict[str, frozenset[str]] = {
    "termination_mode": frozenset({"hard", "soft"}),
    "signature_validation": frozenset({"strict", "warn", "ignore"}),
    "mode": frozenset({"dev", "prod"}),
    "merge_strategy": frozenset(
        {"error_on_conflict", "last_write_wins", "deep_merge", "array_concat", "array_merge_unique"}
    ),
}
# A resource's ``type`` (tool, runtime, network, ...) is a spec keyword: bare when it
# is a plain identifier YAML cannot misread.
_BARE_WORD = re.compile(r"^(?!(?:y|n|yes|no|on|off|true|false|null)\Z)[a-z_][a-z0-9_]*\Z")
# Fields that are lists of strings, always written as flow lists.
LIST_FIELDS = frozenset({"next", "output_keys", "branches", "wait_for"})
# Fields whose mapping keys are chosen by users: always quoted (rule 2).
USER_KEY_FIELDS = frozenset({"assign", "arguments", "metadata", "llm_params"})


def _keyword(name: str, value: str) -> str:
    return value if value in KEYWORD_VALUES.get(name, ()) else quote(value)


def _field(out: list[str], name: str, value: Any, indent: int) -> None:
    pad = " " * indent
    if value is None:
        return
    if name in LIST_FIELDS:
        out.append(f"{pad}{name}: {flow_list(value)}")
    elif name in KEYWORD_VALUES and isinstance(value, str):
        out.append(f"{pad}{name}: {_keyword(name, value)}")
    elif name == "signature":
        out.append(f"{pad}signature: {quote(value.to_string())}")
    elif name == "permissions":
        out.append(f"{pad}permissions: {flow_list(value.items)}")
    elif name in USER_KEY_FIELDS:
        emit_value(out, f"{pad}{name}:", value, indent + 2, bare_keys=False)
    else:
        emit_value(out, f"{pad}{name}:", value, indent + 2, bare_keys=True)


def _join_fields(out: list[str], node: Join, indent: int) -> None:
    if node.wait_for is None and node.merge_strategy is None:
        return
    pad = " " * indent
    out.append(f"{pad}join:")
    if node.wait_for is not None:
        if node.wait_mode is not None:
            out.append(f"{pad}  wait_for:")
            out.append(f"{pad}    {node.wait_mode}: {flow_list(node.wait_for)}")
        else:
            out.append(f"{pad}  wait_for: {flow_list(node.wait_for)}")
    if node.merge_strategy is not None:
        out.append(f"{pad}  merge_strategy: {_keyword('merge_strategy', node.merge_strategy)}")


def _extra(out: list[str], extra: Mapping[str, Any] | None, indent: int) -> None:
    if extra:
        emit_mapping(out, extra, indent, bare_keys=True)


def _node_body(out: list[str], node: Node, indent: int) -> None:
    """Node fields after ``id``, starting with ``type``."""
    pad = " " * indent
    if isinstance(node, UnknownNode):
        if node.unknown_type is not None:
            emit_value(out, f"{pad}type:", node.unknown_type, indent + 2, bare_keys=True)
    else:
        out.append(f"{pad}type: {node.type_name}")
    for name in node.own_fields:
        if name == "branches":
            if node.branches is not None:  # type: ignore[attr-defined]
                out.append(f"{pad}fork:")
                out.append(f"{pad}  branches: {flow_list(node.branches)}")  # type: ignore[attr-defined]
        elif isinstance(node, Join):
            if name == "wait_for":
                _join_fields(out, node, indent)
        else:
            _field(out, name, getattr(node, name), indent)
    for name in COMMON_FIELDS:
        _field(out, name, getattr(node, name), indent)
    _extra(out, node.extra, indent)
    _field(out, "next", node.next, indent)


def _subgraph(out: list[str], block: Subgraph) -> None:
    out.append("graph_type: subgraph")
    _field(out, "signature", block.signature, 0)
    _field(out, "permissions", block.permissions, 0)
    _field(out, "metadata", block.metadata, 0)
    if block.entry is not None:
        out.append(f"entry: {quote(block.entry)}")
    _extra(out, block.extra, 0)
    if not block.nodes:
        out.append("nodes: []")
        return
    out.append("nodes:")
    for node in block.nodes:
        start = len(out)
        if node.id is not None:
            out.append(f"  - id: {quote(node.id)}")
            _node_body(out, node, 4)
        else:
            _node_body(out, node, 4)
            out[start] = "  - " + out[start][4:]


def _meta(out: list[str], block: Meta) -> None:
    if block.version is not None:
        out.append(f"version: {quote(block.version)}")
    if block.mode is not None:
        out.append(f"mode: {_keyword('mode', block.mode)}")
    if block.entry_point is not None:
        out.append(f"entry_point: {quote(block.entry_point)}")
    if block.execution_budget is not None:
        items = list(block.execution_budget.items())
        if items:
            out.append("execution_budget:")
            out.extend(f"  {name}: {value}" for name, value in items)
        else:
            out.append("execution_budget: {}")
    _extra(out, block.extra, 0)


def _resources(out: list[str], block: Resources) -> None:
    out.append("type: resource_declare")
    if block.resources:
        out.append("resources:")
        for item in block.resources:
            start = len(out)
            for key, value in item.items():
                if key == "type" and isinstance(value, str) and _BARE_WORD.match(value):
                    out.append(f"    type: {value}")
                else:
                    emit_value(out, f"    {key_text(key, True)}:", value, 6, bare_keys=True)
            out[start] = "  - " + out[start][4:]
    else:
        out.append("resources: []")
    _extra(out, block.extra, 0)


def dump_block(block: Subgraph | NodeBlock | Meta | Resources) -> str:
    """One block in canonical form, without a trailing newline."""
    body: list[str] = []
    if isinstance(block, Subgraph):
        _subgraph(body, block)
    elif isinstance(block, NodeBlock):
        _node_body(body, block.node, 0)
    elif isinstance(block, Meta):
        _meta(body, block)
    elif isinstance(block, Resources):
        _resources(body, block)
    else:
        raise TypeError(f"not a block: {type(block).__name__}")
    if not body:
        # The runtime's block pattern needs at least one line between the markers.
        body = ["{}"]
    lines = [f"### AgenticDSL `{block.path}`", "```yaml", BEGIN_MARKER, *body, END_MARKER, "```"]
    return "\n".join(lines)


def dumps(doc: Document, *, runtime: str = "spec") -> str:
    """The canonical text of ``doc``: blocks separated by one empty line, ending in a
    single newline (empty string for a document without blocks).

    ``runtime="agenticrt"``: the text must run in the reference runtime, so a value it
    would misread (a string it reads as a number, boolean or null, such as ``""``,
    ``"2"`` or ``"true"``), a reference to ``/end_soft`` (it registers
    ``/__system__/end_soft`` only) or a block over ``MAX_BLOCK_BYTES`` is refused with
    ``ERR_INVALID_FIELD`` naming it, instead of being written.
    """
    if not doc.blocks:
        return ""
    blocks = [dump_block(b) for b in doc.blocks]
    if runtime == "agenticrt":
        for text in blocks:
            _check_runtime(text)
    elif runtime != "spec":
        raise ValueError(f"unknown runtime {runtime!r}: agenticrt or spec")
    return "\n\n".join(blocks) + "\n"


# a double-quoted scalar on one line, and whether a colon follows it (a mapping key)
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"(:?)')
_SOFT_END = re.compile(r'"/end_soft"')


def _check_runtime(block: str) -> None:
    from agentic_llm.dsl.conformance.scalars import reads_as_string
    from agentic_llm.errors import AgenticError, ErrorCode

    size = len(block.encode())
    if size > MAX_BLOCK_BYTES:
        raise AgenticError(ErrorCode.INVALID_FIELD,
                           f"block of {size} bytes; the agenticrt runtime takes at most "
                           f"{MAX_BLOCK_BYTES} per block", size=size, limit=MAX_BLOCK_BYTES)
    for n, line in enumerate(block.split("\n"), 1):
        if _SOFT_END.search(line):
            raise AgenticError(ErrorCode.INVALID_FIELD,
                               f"line {n} names /end_soft; the agenticrt runtime defines "
                               "/__system__/end_soft only", line=n)
        for m in _QUOTED.finditer(line):
            if m.group(2):
                continue  # a mapping key: the runtime reads keys as strings
            value = json.loads(f'"{m.group(1)}"')
            if not reads_as_string(value):
                raise AgenticError(ErrorCode.INVALID_FIELD,
                                   f"line {n}: the string {m.group(0)} would reach the agenticrt "
                                   "runtime as a number, boolean or null", line=n, value=value)
