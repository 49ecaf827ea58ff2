"""Rules on control flow: every target resolves, no cycles, every node reachable,
no merge conflict at a join."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from agentic_llm.dsl.document import NodeBlock, Subgraph
from agentic_llm.dsl.nodes import Join, Node
from agentic_llm.dsl.validate.context import Context, NodeRef
from agentic_llm.errors import ErrorCode

__all__ = ["check_graph", "written_keys", "ancestors"]

_DEFAULT_MERGE = "error_on_conflict"


def _targets(node: Node) -> list[tuple[str, str]]:
    out = node.targets()
    if isinstance(node, Join):
        out += [("wait_for", w) for w in node.wait_for or ()]
    return out


def _check_references(ctx: Context) -> None:
    for ref in ctx.nodes:
        for field, target in _targets(ref.node):
            if ctx.is_dynamic(target) or ctx.is_defined(target):
                continue
            line = ref.node.line_of("join" if field == "wait_for" else field)
            if not target.startswith("/"):
                hint = (
                    f"; write the full path {ref.block.path}/{target}"
                    if isinstance(ref.block, Subgraph)
                    else ""
                )
                ctx.report(
                    ErrorCode.UNRESOLVED_REFERENCE,
                    f"{field} target {target!r} is not an absolute path{hint}",
                    ref.path,
                    line,
                )
            elif target.startswith("/dynamic/") and ctx.has_generator:
                ctx.warn(
                    ErrorCode.UNRESOLVED_REFERENCE,
                    f"{field} target {target} exists only if a generate_subgraph node creates it",
                    ref.path,
                    line,
                )
            else:
                ctx.report(
                    ErrorCode.UNRESOLVED_REFERENCE,
                    f"{field} target {target} is not defined in the document or among the "
                    "known external paths",
                    ref.path,
                    line,
                )


def _edges(ctx: Context) -> dict[str, list[str]]:
    edges: dict[str, list[str]] = {ref.path: [] for ref in ctx.nodes}
    for ref in ctx.nodes:
        for field, target in _targets(ref.node):
            dest = ctx.entry_of(target)
            if dest is None:
                continue
            if field == "wait_for":
                edges.setdefault(dest, []).append(ref.path)
            else:
                edges[ref.path].append(dest)
    return edges


def find_cycles(edges: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """One cycle per strongly connected component that has one (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on_stack.add(v)
            succ = edges.get(v, [])
            if i < len(succ):
                work.append((v, i + 1))
                w = succ[i]
                if w not in index:
                    work.append((w, 0))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1 or v in edges.get(v, []):
                    cycles.append(comp[::-1])
    return cycles


def _check_cycles(ctx: Context, edges: dict[str, list[str]]) -> None:
    order = {ref.path: i for i, ref in enumerate(ctx.nodes)}
    for comp in find_cycles(edges):
        comp.sort(key=lambda p: order.get(p, 0))
        first = ctx.node_by_path.get(comp[0])
        ctx.report(
            ErrorCode.CYCLE,
            "control flow has a cycle through "
            + " -> ".join(comp + [comp[0]])
            + "; AgenticDSL graphs must be acyclic",
            comp[0],
            first.node.line if first else None,
        )


def _check_reachable(ctx: Context, edges: dict[str, list[str]]) -> None:
    roots = []
    for block in ctx.doc.blocks:
        if isinstance(block, Subgraph):
            entry = block.entry_node()
            if entry is not None and entry.id is not None:
                roots.append(block.node_path(entry))
        elif isinstance(block, NodeBlock):
            roots.append(block.path)
    seen = set(roots)
    todo = list(roots)
    while todo:
        for w in edges.get(todo.pop(), []):
            if w not in seen:
                seen.add(w)
                todo.append(w)
    for ref in ctx.nodes:
        if ref.path not in seen and ref.node.id is not None:
            ctx.warn(
                ErrorCode.UNREACHABLE_NODE,
                f"node {ref.path} is never reached from its subgraph's entry; "
                "link it with next or remove it",
                ref.path,
                ref.node.line,
            )


def ancestors(ctx: Context) -> dict[str, set[str]]:
    """Node path -> the node paths with a control path to it (next, branches,
    on_failure, and a join's wait_for sources), itself excluded."""
    edges = _edges(ctx)
    preds: dict[str, list[str]] = {}
    for src, dests in edges.items():
        for d in dests:
            preds.setdefault(d, []).append(src)
    out: dict[str, set[str]] = {}
    for ref in ctx.nodes:
        seen: set[str] = set()
        todo = [ref.path]
        while todo:
            for p in preds.get(todo.pop(), ()):
                if p not in seen:
                    seen.add(p)
                    todo.append(p)
        seen.discard(ref.path)
        out[ref.path] = seen
    return out


def written_keys(node: Node) -> set[str]:
    """Context keys a node writes (``output_keys`` and ``assign`` keys)."""
    keys = set(getattr(node, "output_keys", None) or ())
    keys |= set(getattr(node, "assign", None) or ())
    return keys


def _check_merges(ctx: Context) -> None:
    for ref in ctx.nodes:
        node = ref.node
        if not isinstance(node, Join) or (node.merge_strategy or _DEFAULT_MERGE) != _DEFAULT_MERGE:
            continue
        writers: dict[str, str] = {}
        for target in node.wait_for or ():
            dest = ctx.entry_of(target)
            source: NodeRef | None = ctx.node_by_path.get(dest) if dest else None
            if source is None:
                continue
            for key in sorted(written_keys(source.node)):
                if key in writers and writers[key] != source.path:
                    ctx.report(
                        ErrorCode.CTX_MERGE_CONFLICT,
                        f"{writers[key]} and {source.path} both write {key!r} and the join "
                        "merges with error_on_conflict; use distinct keys or another "
                        "merge_strategy",
                        ref.path,
                        node.line_of("join"),
                    )
                writers.setdefault(key, source.path)


def check_graph(ctx: Context) -> None:
    """References, cycles, reachability and join merge conflicts."""
    _check_references(ctx)
    edges = _edges(ctx)
    _check_cycles(ctx, edges)
    _check_reachable(ctx, edges)
    _check_merges(ctx)
