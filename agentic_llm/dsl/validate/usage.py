"""Rules on what a document uses: budgets, tools, declared resources, template
variables, signature outputs."""

from __future__ import annotations

from collections.abc import Iterator

from agentic_llm.dsl.document import Subgraph
from agentic_llm.dsl.nodes import Assert, Join, Node, ToolCall
from agentic_llm.dsl.policy import BUILTIN_VARIABLES
from agentic_llm.dsl.templates import TemplateSyntaxError, has_template, template_variables
from agentic_llm.dsl.validate.context import Context
from agentic_llm.dsl.validate.graph import ancestors, written_keys
from agentic_llm.errors import ErrorCode

__all__ = ["check_usage"]

_LLM_TYPES = ("dsl_call", "llm_call", "generate_subgraph")


def _check_budgets(ctx: Context) -> None:
    count = len(ctx.nodes)
    meta = ctx.doc.meta
    budget = meta.execution_budget if meta is not None else None
    if budget is not None and meta is not None:
        line = meta.line_of("execution_budget")
        if budget.max_nodes is not None and count > budget.max_nodes:
            ctx.report(
                ErrorCode.BUDGET_EXCEEDED,
                f"document has {count} nodes but execution_budget.max_nodes is {budget.max_nodes}",
                meta.path,
                line,
            )
        calls = sum(1 for r in ctx.nodes if r.node.type in _LLM_TYPES)
        if budget.max_llm_calls is not None and calls > budget.max_llm_calls:
            ctx.report(
                ErrorCode.BUDGET_EXCEEDED,
                f"document has {calls} LLM-calling nodes but execution_budget.max_llm_calls "
                f"is {budget.max_llm_calls}",
                meta.path,
                line,
            )
    limit = ctx.policy.max_nodes
    if limit is not None and count > limit:
        first_over = ctx.nodes[limit]
        ctx.report(
            ErrorCode.BUDGET_EXCEEDED,
            f"document has {count} nodes; the budget allows at most {limit}",
            first_over.path,
            first_over.node.line,
        )


def _check_tools(ctx: Context) -> None:
    granted = ctx.policy.effective_granted_tools
    schemas = ctx.policy.tool_schemas or {}
    resources = ctx.doc.resources
    for ref in ctx.nodes:
        node = ref.node
        if not isinstance(node, ToolCall) or node.tool is None:
            continue
        line = node.line_of("tool")
        if granted is not None and node.tool not in granted:
            ctx.report(
                ErrorCode.TOOL_NOT_GRANTED,
                f"tool {node.tool!r} is not granted"
                + (
                    f" (granted: {', '.join(sorted(granted))})"
                    if granted
                    else " (no tools are granted)"
                ),
                ref.path,
                line,
            )
        declared = [p for p in (node.permissions, ref.block_permissions()) if p is not None]
        if declared and not any(node.tool in p.tools for p in declared):
            ctx.warn(
                ErrorCode.TOOL_NOT_GRANTED,
                f"permissions do not list 'tool:{node.tool}'; the runtime may refuse the call",
                ref.path,
                node.line_of("permissions") if node.permissions is not None else line,
            )
        if resources is not None and node.tool not in resources.tools:
            ctx.report(
                ErrorCode.RESOURCE_UNAVAILABLE,
                f"tool {node.tool!r} is not declared in /__meta__/resources",
                ref.path,
                line,
            )
        schema = schemas.get(node.tool)
        if schema is None:
            continue
        keys = list(node.arguments or {})
        missing = [k for k in schema.required if k not in keys]
        unknown = [k for k in keys if k not in schema.required and k not in schema.optional]
        if missing:
            ctx.report(
                ErrorCode.TOOL_ARGUMENTS,
                f"call to {node.tool} lacks required argument(s): {', '.join(missing)}",
                ref.path,
                node.line_of("arguments") if node.arguments is not None else line,
            )
        if unknown:
            ctx.report(
                ErrorCode.TOOL_ARGUMENTS,
                f"{node.tool} takes no argument(s) {', '.join(unknown)}; it takes "
                f"{', '.join(schema.required + schema.optional) or 'none'}",
                ref.path,
                node.line_of("arguments"),
            )


def _check_capabilities(ctx: Context) -> None:
    resources = ctx.doc.resources
    if resources is None:
        return
    declared_types = {r.get("type") for r in resources.resources}
    runtimes = {r.get("name") for r in resources.resources if r.get("type") == "runtime"}
    for ref in ctx.nodes:
        node = ref.node
        if node.type == "generate_subgraph" and "generate_subgraph" not in declared_types:
            ctx.report(
                ErrorCode.UNSUPPORTED_CAPABILITY,
                "generate_subgraph needs a 'type: generate_subgraph' resource with max_depth",
                ref.path,
                node.line,
            )
        runtime = getattr(node, "runtime", None)
        if node.type == "codelet_call" and runtime is not None and runtime not in runtimes:
            ctx.report(
                ErrorCode.UNSUPPORTED_CAPABILITY,
                f"runtime {runtime!r} is not declared in /__meta__/resources",
                ref.path,
                node.line_of("runtime"),
            )


def _templates(node: Node) -> Iterator[tuple[str, str, bool]]:
    """(field, text, is_bare_expression) for every templated string of a node."""
    for name in ("prompt_template",):
        value = getattr(node, name, None)
        if isinstance(value, str):
            yield name, value, False
    for name in ("assign", "arguments"):
        for value in (getattr(node, name, None) or {}).values():
            yield name, value, False
    if isinstance(node, Assert) and node.condition is not None:
        yield "condition", node.condition, not has_template(node.condition)
    targets = list(node.next or ())
    if isinstance(node, Join):
        targets += list(node.wait_for or ())
    for target in targets:
        if has_template(target):
            yield "next", target, False


def _given_variables(ctx: Context) -> set[str]:
    """Names present before any node runs: available, builtin, signature inputs."""
    known = set(ctx.policy.available_vars or ()) | BUILTIN_VARIABLES
    for ref in ctx.nodes:
        if ref.node.signature is not None:
            known |= set(ref.node.signature.input_names)
    for block in ctx.doc.blocks:
        if isinstance(block, Subgraph) and block.signature is not None:
            known |= set(block.signature.input_names)
    return known


def _roots(node: Node) -> set[str]:
    return {k.split(".", 1)[0] for k in written_keys(node)}


def _check_templates(ctx: Context) -> None:
    check_vars = ctx.policy.available_vars is not None
    given = _given_variables(ctx) if check_vars else set()
    by_writer = {ref.path: _roots(ref.node) for ref in ctx.nodes} if check_vars else {}
    written = set().union(*by_writer.values()) if by_writer else set()
    before: dict[str, set[str]] | None = None  # built on the first read of a written key
    for ref in ctx.nodes:
        for field, text, bare in _templates(ref.node):
            line = ref.node.line_of(field)
            try:
                reads = template_variables("{{ " + text + " }}" if bare else text)
            except TemplateSyntaxError as exc:
                ctx.report(ErrorCode.TEMPLATE_SYNTAX, f"in {field}: {exc.message}", ref.path, line)
                continue
            for name in sorted(reads - given) if check_vars else ():
                if name not in written:
                    ctx.report(
                        ErrorCode.UNKNOWN_VARIABLE,
                        f"{field} reads {name!r}, which is neither an available variable nor "
                        "written by a node of the document",
                        ref.path,
                        line,
                        ctx.policy.unknown_var_severity,
                    )
                    continue
                if before is None:
                    before = ancestors(ctx)
                if not any(name in by_writer[a] for a in before.get(ref.path, ())):
                    writers = sorted(p for p, keys in by_writer.items() if name in keys)
                    ctx.report(
                        ErrorCode.READ_BEFORE_WRITE,
                        f"{field} reads {name!r}, which only {', '.join(writers)} write(s), and "
                        "none of them runs before this node; read it after a node that "
                        "writes it (an ancestor along next / branches / wait_for)",
                        ref.path,
                        line,
                    )


def _check_signature_outputs(ctx: Context) -> None:
    for block in ctx.doc.blocks:
        if not isinstance(block, Subgraph) or block.signature is None:
            continue
        written: set[str] = set()
        for node in block.nodes:
            written |= {k.split(".", 1)[0] for k in written_keys(node)}
        for name in block.signature.output_names:
            if name not in written:
                ctx.warn(
                    ErrorCode.SIGNATURE_VIOLATION,
                    f"signature output {name!r} is written by no node of {block.path}",
                    block.path,
                    block.line_of("signature"),
                )


def check_usage(ctx: Context) -> None:
    """Budgets, tools, resources, templates and signature outputs."""
    _check_budgets(ctx)
    _check_tools(ctx)
    _check_capabilities(ctx)
    _check_templates(ctx)
    _check_signature_outputs(ctx)
