"""``MarkdownParser::parse_from_string``: blocks to graphs, as the reference does it.

Each block's path is checked, its YAML converted (quoting ignored), then:
``/__meta__`` is read for its budget and skipped; a mapping with
``graph_type: subgraph`` becomes a graph whose nodes are ``<path>/<id>``; a mapping
with ``type`` becomes a one-node graph at the block's path; anything else is dropped
without a word, as is a node whose type the reference does not build.
"""

from __future__ import annotations

from typing import Any

from agentic_llm.dsl.conformance.blocks import RefBlock, is_valid_node_path
from agentic_llm.dsl.conformance.construct import (
    RefNode,
    TypeErrorJson,
    build_node,
    contains,
    get_string,
    value_or,
)
from agentic_llm.dsl.conformance.outcome import Drop, RefGraph, RuntimeRefusal, json_type
from agentic_llm.dsl.conformance.yamljson import load_reference_json

__all__ = ["ParsedProgram", "parse_blocks"]


class ParsedProgram:
    """The graphs the reference keeps, their nodes in registration order, and drops."""

    def __init__(self) -> None:
        self.graphs: list[RefGraph] = []
        self.nodes: list[RefNode] = []
        self.drops: list[Drop] = []


def _graph_fields(doc: dict[str, Any], path: str, program: ParsedProgram) -> None:
    if "signature" in doc:
        get_string(doc["signature"])
    permissions = doc.get("permissions")
    if isinstance(permissions, list) and any(not isinstance(p, str) for p in permissions):
        program.drops.append(
            Drop(path, "permissions", "permission entries that are not strings are dropped", False)
        )


def _subgraph(path: str, doc: dict[str, Any], program: ParsedProgram) -> None:
    metadata = value_or(doc, "metadata", {})
    if "entry" in doc and metadata is not None and not isinstance(metadata, dict):
        raise TypeErrorJson(
            "[json.exception.type_error.305] cannot use operator[] with a string argument "
            f"with {json_type(metadata)}"
        )
    _graph_fields(doc, path, program)
    kept: list[str] = []
    nodes = doc.get("nodes")
    if isinstance(nodes, list):
        for raw in nodes:
            node_id = value_or(raw, "id", "")
            if not node_id:
                raise RuntimeRefusal("missing_id", f"Node in subgraph '{path}' missing 'id'")
            node = build_node(f"{path}/{node_id}", raw)
            if node is None:
                program.drops.append(
                    Drop(f"{path}/{node_id}", "node", f"node type {raw['type']!r} is not built")
                )
                continue
            program.drops.extend(node.drops)
            program.nodes.append(node)
            kept.append(node.path)
    elif nodes is not None:
        program.drops.append(Drop(path, "nodes", f"nodes of type {json_type(nodes)} are ignored"))
    program.graphs.append(RefGraph(path, tuple(kept)))


def _block(block: RefBlock, program: ParsedProgram) -> None:
    path = block.path
    doc = load_reference_json(block.yaml, path)
    if path == "/__meta__":
        return
    if contains(doc, "graph_type") and doc["graph_type"] == "subgraph":
        _subgraph(path, doc, program)
        return
    if contains(doc, "type"):
        node = build_node(path, doc)
        if node is None:
            # /__meta__/resources declares; the reference neither reads nor needs it
            severe = path != "/__meta__/resources"
            program.drops.append(
                Drop(path, "block", f"node type {doc['type']!r} is not built", severe)
            )
            return
        value_or(doc, "metadata", {})
        _graph_fields(doc, path, program)
        program.drops.extend(node.drops)
        program.nodes.append(node)
        program.graphs.append(RefGraph(path, (path,)))
        return
    what = "a mapping without graph_type: subgraph or type" if isinstance(doc, dict) else (
        f"a YAML {json_type(doc)}"
    )
    program.drops.append(Drop(path, "block", f"the block is {what}"))


def parse_blocks(blocks: list[RefBlock]) -> ParsedProgram:
    """Run the reference's parse over extracted blocks; raises RuntimeRefusal."""
    program = ParsedProgram()
    for block in blocks:
        if not is_valid_node_path(block.path):
            raise RuntimeRefusal(
                "invalid_path", f"Invalid node path format: {block.path}", block=block.path
            )
        try:
            _block(block, program)
        except RuntimeRefusal as exc:
            if exc.reason == "yaml" or exc.message.startswith("Error parsing block"):
                raise
            raise RuntimeRefusal(
                exc.reason, f"Error parsing block '{block.path}': {exc.message}", block=block.path
            ) from None
        except TypeErrorJson as exc:
            raise RuntimeRefusal(
                _json_reason(str(exc)),
                f"Error parsing block '{block.path}': {exc}",
                block=block.path,
            ) from None
    return program


def _json_reason(message: str) -> str:
    if "type must be string" in message:
        return "not_a_string"
    if "type must be number" in message:
        return "not_a_number"
    if "out_of_range.403" in message:
        return "missing_key"
    return "json_type_error"
