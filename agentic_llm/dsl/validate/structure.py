"""Rules on the shape of a document: paths, namespaces, /__meta__, node fields."""

from __future__ import annotations

import re

from agentic_llm.dsl.document import META_PATH, RESOURCES_PATH, Meta, NodeBlock, Resources, Subgraph
from agentic_llm.dsl.dump import KEYWORD_VALUES
from agentic_llm.dsl.nodes import NODE_TYPES, Join, UnknownNode
from agentic_llm.dsl.paths import PATH_SEGMENT
from agentic_llm.dsl.validate.context import Context
from agentic_llm.errors import ErrorCode

__all__ = ["check_structure", "PATH_RE", "ID_RE", "KNOWN_NAMESPACES"]

PATH_RE = re.compile(rf"^/{PATH_SEGMENT}(?:/{PATH_SEGMENT})*$", re.ASCII)
ID_RE = re.compile(r"^[A-Za-z0-9_\-]+\Z")  # \Z: "$" would also match before a final newline
KNOWN_NAMESPACES = ("/lib/", "/dynamic/", "/main", "/app", "/__meta__")
_ARCHIVE = re.compile(r"""^\s*archive_to\(\s*["']([^"']*)["']\s*\)\s*$""")


def _under(path: str, prefix: str) -> bool:
    bare = prefix.rstrip("/")
    return path == bare or path.startswith(bare + "/")


def _check_paths(ctx: Context) -> None:
    seen: dict[str, int | None] = {}
    for block in ctx.doc.blocks:
        path = block.path
        if not PATH_RE.match(path):
            ctx.report(
                ErrorCode.INVALID_PATH,
                f"block path {path!r} must match /name(/name)* using letters, digits, _ and -",
                path,
                block.line,
            )
        if path in seen:
            ctx.report(
                ErrorCode.DUPLICATE_PATH,
                f"block path {path} is defined twice (first at line {seen[path]})",
                path,
                block.line,
            )
        else:
            seen[path] = block.line
    for ref in ctx.nodes:
        if isinstance(ref.block, Subgraph) and ref.path in seen:
            ctx.report(
                ErrorCode.DUPLICATE_PATH,
                f"node {ref.path} has the same path as a block (line {seen[ref.path]})",
                ref.path,
                ref.node.line,
            )


def _check_namespaces(ctx: Context) -> None:
    prefixes = ctx.policy.writable_prefixes
    for block in ctx.doc.blocks:
        path = block.path
        if prefixes is not None and not any(_under(path, p) for p in prefixes):
            ctx.report(
                ErrorCode.NAMESPACE_VIOLATION,
                f"block {path} is outside the writable namespaces ({', '.join(prefixes)}); "
                "rename it under one of them",
                path,
                block.line,
            )
        if _under(path, "/__system__"):
            ctx.report(
                ErrorCode.NAMESPACE_VIOLATION,
                "/__system__ is reserved for the runtime's own nodes",
                path,
                block.line,
            )
        elif _under(path, "/__meta__"):
            if isinstance(block, Meta) and path == META_PATH:
                continue
            if isinstance(block, Resources) and path == RESOURCES_PATH:
                continue
            ctx.report(
                ErrorCode.NAMESPACE_VIOLATION,
                f"only {META_PATH} (metadata) and {RESOURCES_PATH} (type: resource_declare) "
                "may live under /__meta__",
                path,
                block.line,
            )
        elif isinstance(block, Resources):
            ctx.report(
                ErrorCode.NAMESPACE_VIOLATION,
                f"resource declarations belong at {RESOURCES_PATH}",
                path,
                block.line,
            )
        elif not any(_under(path, p) for p in KNOWN_NAMESPACES):
            ctx.warn(
                ErrorCode.NAMESPACE_VIOLATION,
                f"{path} is in none of the spec's namespaces (/main, /app, /lib, /dynamic)",
                path,
                block.line,
            )


def _has_signature(ctx: Context, block: Subgraph | NodeBlock) -> bool:
    if block.signature is not None:
        return True
    # a node block inside a signed subgraph's path shares that contract
    parent = block.path.rsplit("/", 1)[0]
    while parent:
        owner = ctx.block_by_path.get(parent)
        if isinstance(owner, Subgraph) and owner.signature is not None:
            return True
        parent = parent.rsplit("/", 1)[0]
    return False


def _check_signatures(ctx: Context) -> None:
    for block in ctx.doc.blocks:
        if (
            isinstance(block, Subgraph | NodeBlock)
            and _under(block.path, "/lib")
            and not _has_signature(ctx, block)
        ):
            ctx.report(
                ErrorCode.SIGNATURE_REQUIRED,
                f"{block.path} is in /lib and needs a signature, e.g. "
                'signature: "(a: number) -> sum: number"',
                block.path,
                block.line,
            )
    for ref in ctx.nodes:
        m = _ARCHIVE.match(ref.node.on_success or "")
        if m and _under(m.group(1), "/lib") and not _has_signature(ctx, ref.block):
            ctx.report(
                ErrorCode.SIGNATURE_REQUIRED,
                f"archiving to {m.group(1)} needs a signature on {ref.block.path}",
                ref.path,
                ref.node.line_of("on_success"),
            )


def _check_meta(ctx: Context) -> None:
    meta = ctx.doc.meta
    policy_required = ctx.policy.require_entry_point
    is_program = (
        policy_required
        if policy_required is not None
        else any(_under(b.path, "/main") or _under(b.path, "/app") for b in ctx.doc.blocks)
    )
    if meta is not None:
        if meta.mode is not None and meta.mode not in KEYWORD_VALUES["mode"]:
            ctx.report(
                ErrorCode.INVALID_FIELD,
                f"mode must be dev or prod, not {meta.mode!r}",
                meta.path,
                meta.line_of("mode"),
            )
        for key in meta.extra or {}:
            ctx.warn(
                ErrorCode.INVALID_FIELD,
                f"unknown key {key!r} in {META_PATH}; the runtime ignores it",
                meta.path,
                meta.line_of(key),
            )
        for name, value in meta.execution_budget.items() if meta.execution_budget else ():
            if value < 1:
                ctx.report(
                    ErrorCode.INVALID_FIELD,
                    f"budget {name} must be at least 1, not {value}",
                    meta.path,
                    meta.line_of("execution_budget"),
                )
    if is_program and policy_required is not False:
        if meta is None:
            ctx.report(
                ErrorCode.MISSING_ENTRY_POINT,
                f'a whole program needs a {META_PATH} block with entry_point (e.g. "/main/start")',
                None,
                ctx.doc.blocks[0].line if ctx.doc.blocks else None,
            )
        elif meta.entry_point is None:
            ctx.report(
                ErrorCode.MISSING_ENTRY_POINT,
                f'{META_PATH} has no entry_point; add entry_point: "/main/start"',
                meta.path,
                meta.line,
            )
    if meta is not None and meta.entry_point is not None:
        target = meta.entry_point
        if ctx.entry_of(target) is None and not ctx.is_defined(target):
            ctx.report(
                ErrorCode.MISSING_ENTRY_POINT,
                f"entry_point {target} is not defined in the document",
                meta.path,
                meta.line_of("entry_point"),
            )


def _check_subgraphs(ctx: Context) -> None:
    for block in ctx.doc.blocks:
        if not isinstance(block, Subgraph):
            continue
        if not block.nodes:
            ctx.report(
                ErrorCode.MISSING_FIELD, "subgraph has no nodes", block.path, block.line_of("nodes")
            )
        ids: dict[str, int | None] = {}
        for node in block.nodes:
            if node.id is None:
                ctx.report(ErrorCode.MISSING_FIELD, "node has no 'id'", block.path, node.line)
                continue
            if not ID_RE.match(node.id):
                ctx.report(
                    ErrorCode.INVALID_FIELD,
                    f"node id {node.id!r} may use only letters, digits, _ and -",
                    block.node_path(node),
                    node.line_of("id"),
                )
            if node.id in ids:
                ctx.report(
                    ErrorCode.DUPLICATE_ID,
                    f"node id {node.id!r} is used twice in {block.path} "
                    f"(first at line {ids[node.id]}); ids must be unique",
                    block.node_path(node),
                    node.line_of("id"),
                )
            else:
                ids[node.id] = node.line
        if (
            block.entry is not None
            and block.entry not in ids
            and block.entry not in {block.node_path(n) for n in block.nodes}
        ):
            ctx.report(
                ErrorCode.UNRESOLVED_REFERENCE,
                f"entry {block.entry!r} is not the id of a node in {block.path}",
                block.path,
                block.line_of("entry"),
            )
        for key in block.extra or {}:
            ctx.warn(
                ErrorCode.INVALID_FIELD,
                f"unknown subgraph key {key!r}; the runtime ignores it",
                block.path,
                block.line_of(key),
            )


def _check_nodes(ctx: Context) -> None:
    allowed = ctx.policy.allowed_node_types
    for ref in ctx.nodes:
        node, path = ref.node, ref.path
        if isinstance(node, UnknownNode):
            if node.unknown_type is None:
                ctx.report(ErrorCode.MISSING_FIELD, "node has no 'type'", path, node.line)
            else:
                ctx.report(
                    ErrorCode.UNKNOWN_NODE_TYPE,
                    f"unknown node type {node.unknown_type!r}; use one of {', '.join(NODE_TYPES)}",
                    path,
                    node.line_of("type"),
                )
            continue
        if allowed is not None and node.type not in allowed:
            ctx.report(
                ErrorCode.NODE_TYPE_NOT_ALLOWED,
                f"node type {node.type} is not allowed here (allowed: {', '.join(sorted(allowed))})",
                path,
                node.line_of("type"),
            )
        for name in node.required_fields:
            value = getattr(node, name)
            if value is None or (isinstance(value, tuple | dict) and not value):
                where = {"branches": "fork.branches", "wait_for": "join.wait_for"}.get(name, name)
                ctx.report(
                    ErrorCode.MISSING_FIELD,
                    f"{node.type} node needs a non-empty '{where}'",
                    path,
                    node.line,
                )
        for name, allowed_values in KEYWORD_VALUES.items():
            value = getattr(node, name, None)
            if name != "mode" and value is not None and value not in allowed_values:
                ctx.report(
                    ErrorCode.INVALID_FIELD,
                    f"{name} must be one of {', '.join(sorted(allowed_values))}, not {value!r}",
                    path,
                    node.line_of("join" if isinstance(node, Join) else name),
                )
        if node.type == "codelet_call":
            ctx.warn(
                ErrorCode.UNSUPPORTED_CAPABILITY,
                "the reference runtime does not run codelet_call nodes; use a tool_call",
                path,
                node.line,
            )
        for key in node.extra or {}:
            ctx.warn(
                ErrorCode.INVALID_FIELD,
                f"unknown field {key!r} on a node of type {node.type}; the runtime ignores it",
                path,
                node.line_of(key),
            )


def check_structure(ctx: Context) -> None:
    """Paths, namespaces, signatures, /__meta__, subgraph and node fields."""
    if not ctx.doc.blocks:
        ctx.report(ErrorCode.SYNTAX, "document has no AgenticDSL blocks", None, None)
        return
    _check_paths(ctx)
    _check_namespaces(ctx)
    _check_signatures(ctx)
    _check_meta(ctx)
    _check_subgraphs(ctx)
    _check_nodes(ctx)
