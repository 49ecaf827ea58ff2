"""Blocks and documents: the top of the AST."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from agentic_llm.dsl.nodes import Node, Permissions, SourceLines
from agentic_llm.dsl.signature import Signature

__all__ = [
    "Subgraph",
    "NodeBlock",
    "ExecutionBudget",
    "Meta",
    "Resources",
    "Block",
    "Document",
    "META_PATH",
    "RESOURCES_PATH",
    "BUDGET_FIELDS",
]

META_PATH = "/__meta__"
RESOURCES_PATH = "/__meta__/resources"
BUDGET_FIELDS: tuple[str, ...] = (
    "max_nodes",
    "max_llm_calls",
    "max_duration_sec",
    "max_subgraph_depth",
    "max_snapshots",
    "snapshot_max_size_kb",
)


@dataclass(frozen=True, kw_only=True)
class Subgraph(SourceLines):
    """A block with ``graph_type: subgraph``: a list of nodes at ``<path>/<id>``."""

    path: str
    nodes: tuple[Node, ...] = ()
    entry: str | None = None
    signature: Signature | None = None
    permissions: Permissions | None = None
    metadata: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] | None = None
    line: int | None = field(default=None, compare=False, repr=False)
    field_lines: Mapping[str, int] | None = field(default=None, compare=False, repr=False)

    def node_path(self, node: Node) -> str:
        return f"{self.path}/{node.id}"

    def entry_node(self) -> Node | None:
        """The node execution starts at: ``entry`` if set, else the first node."""
        if self.entry is not None:
            return next((n for n in self.nodes if n.id == self.entry), None)
        return self.nodes[0] if self.nodes else None


@dataclass(frozen=True, kw_only=True)
class NodeBlock:
    """A block holding a single node; the node's path is the block path."""

    path: str
    node: Node
    line: int | None = field(default=None, compare=False, repr=False)

    @property
    def signature(self) -> Signature | None:
        return self.node.signature


@dataclass(frozen=True, kw_only=True)
class ExecutionBudget:
    """``execution_budget`` of ``/__meta__``; every field is optional."""

    max_nodes: int | None = None
    max_llm_calls: int | None = None
    max_duration_sec: int | None = None
    max_subgraph_depth: int | None = None
    max_snapshots: int | None = None
    snapshot_max_size_kb: int | None = None

    def items(self) -> Iterator[tuple[str, int]]:
        """Set fields, in the spec's order."""
        for name in BUDGET_FIELDS:
            value = getattr(self, name)
            if value is not None:
                yield name, value


@dataclass(frozen=True, kw_only=True)
class Meta(SourceLines):
    """``/__meta__``: version, mode (``dev``/``prod``), entry point, budget."""

    path: str = META_PATH
    version: str | None = None
    mode: str | None = None
    entry_point: str | None = None
    execution_budget: ExecutionBudget | None = None
    extra: Mapping[str, Any] | None = None
    line: int | None = field(default=None, compare=False, repr=False)
    field_lines: Mapping[str, int] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, kw_only=True)
class Resources:
    """``/__meta__/resources`` (``type: resource_declare``): declared capabilities.

    ``resources`` keeps each declaration as written (``type`` plus the fields of that
    resource type, e.g. ``{"type": "tool", "name": "web_search", "scope": "read_only"}``).
    """

    path: str = RESOURCES_PATH
    resources: tuple[Mapping[str, Any], ...] = ()
    extra: Mapping[str, Any] | None = None
    line: int | None = field(default=None, compare=False, repr=False)

    @property
    def tools(self) -> frozenset[str]:
        """Names of the declared ``type: tool`` resources."""
        return frozenset(
            str(r["name"]) for r in self.resources if r.get("type") == "tool" and "name" in r
        )

    @property
    def generate_subgraph_depth(self) -> int | None:
        """``max_depth`` of the ``generate_subgraph`` declaration, if any."""
        for r in self.resources:
            if r.get("type") == "generate_subgraph" and isinstance(r.get("max_depth"), int):
                return int(r["max_depth"])
        return None


Block = Subgraph | NodeBlock | Meta | Resources


@dataclass(frozen=True)
class Document:
    """A parsed AgenticDSL document: its blocks in source order."""

    blocks: tuple[Block, ...] = ()

    @property
    def meta(self) -> Meta | None:
        return next((b for b in self.blocks if isinstance(b, Meta)), None)

    @property
    def resources(self) -> Resources | None:
        return next((b for b in self.blocks if isinstance(b, Resources)), None)

    def block(self, path: str) -> Block | None:
        """The first block at ``path``, or None."""
        return next((b for b in self.blocks if b.path == path), None)

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(b.path for b in self.blocks)

    def iter_nodes(self) -> Iterator[tuple[str, Node, Subgraph | NodeBlock]]:
        """Every executable node as ``(path, node, block)``."""
        for b in self.blocks:
            if isinstance(b, Subgraph):
                for n in b.nodes:
                    yield b.node_path(n), n, b
            elif isinstance(b, NodeBlock):
                yield b.path, b.node, b

    @property
    def node_count(self) -> int:
        """Number of executable nodes (``/__meta__`` blocks do not count)."""
        return sum(1 for _ in self.iter_nodes())
