"""Shared state of one validation run: the document, the policy, the findings, and
indexes over paths and nodes that several rules need."""

from __future__ import annotations

from dataclasses import dataclass, field

from agentic_llm.dsl.diagnostics import Diagnostic, Severity
from agentic_llm.dsl.document import Block, Document, NodeBlock, Subgraph
from agentic_llm.dsl.nodes import Node, Permissions
from agentic_llm.dsl.policy import RESERVED_TARGETS, ValidationPolicy
from agentic_llm.dsl.stdlib import is_standard_library_ref
from agentic_llm.dsl.templates import has_template
from agentic_llm.errors import ErrorCode

__all__ = ["Context", "NodeRef", "strip_version"]


def strip_version(path: str) -> str:
    """``/lib/x@v1`` -> ``/lib/x``."""
    return path.split("@", 1)[0]


@dataclass(frozen=True)
class NodeRef:
    """A node with its full path and the block that holds it."""

    path: str
    node: Node
    block: Subgraph | NodeBlock

    def block_permissions(self) -> Permissions | None:
        """Permissions declared by the enclosing subgraph (None for a node block)."""
        return self.block.permissions if isinstance(self.block, Subgraph) else None


@dataclass
class Context:
    doc: Document
    policy: ValidationPolicy
    diagnostics: list[Diagnostic] = field(default_factory=list)
    nodes: list[NodeRef] = field(default_factory=list)
    node_by_path: dict[str, NodeRef] = field(default_factory=dict)
    block_paths: set[str] = field(default_factory=set)
    block_by_path: dict[str, Block] = field(default_factory=dict)
    external: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.block_paths = {b.path for b in self.doc.blocks}
        for b in self.doc.blocks:
            self.block_by_path.setdefault(b.path, b)
        for path, node, block in self.doc.iter_nodes():
            ref = NodeRef(path, node, block)
            self.nodes.append(ref)
            self.node_by_path.setdefault(path, ref)
        self.external = {strip_version(p) for p in self.policy.external_paths}
        self.has_generator = any(r.node.type == "generate_subgraph" for r in self.nodes)

    def report(
        self,
        code: ErrorCode,
        message: str,
        block: str | None,
        line: int | None,
        severity: Severity = Severity.ERROR,
    ) -> None:
        self.diagnostics.append(Diagnostic(code, severity, message, block, line))

    def warn(self, code: ErrorCode, message: str, block: str | None, line: int | None) -> None:
        self.report(code, message, block, line, Severity.WARNING)

    def is_defined(self, target: str) -> bool:
        """True when ``target`` names a block, a node, a known external path or a
        runtime-reserved target."""
        base = strip_version(target)
        return (
            target in self.block_paths
            or base in self.block_paths
            or base in self.node_by_path
            or base in self.external
            or target in RESERVED_TARGETS
            or is_standard_library_ref(target)
        )

    @staticmethod
    def is_dynamic(target: str) -> bool:
        """A target computed at run time from a template; not checkable statically."""
        return has_template(target)

    def entry_of(self, target: str) -> str | None:
        """The node path control reaches when jumping to ``target`` inside this document."""
        base = strip_version(target)
        if base in self.node_by_path:
            return base
        block = self.block_by_path.get(base)
        if isinstance(block, Subgraph):
            entry = block.entry_node()
            return block.node_path(entry) if entry is not None and entry.id is not None else None
        return None
