"""What a validation may assume about the world outside the document."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from agentic_llm.dsl.diagnostics import Severity
from agentic_llm.dsl.nodes import NODE_TYPES

__all__ = ["ToolSchema", "ValidationPolicy", "BUILTIN_VARIABLES", "RESERVED_TARGETS"]

# Context roots the runtime provides to every template: subgraph inputs, the clock,
# snapshots, trace/budget views, and the loop variable of {% for %}.
BUILTIN_VARIABLES = frozenset(
    {"$", "inputs", "now", "ctx_snapshots", "execution_context", "budget", "loop", "error"}
)
# Targets the reference runtime defines itself (its /__system__ end nodes), plus the
# soft-end shorthand its standard library uses.
RESERVED_TARGETS = frozenset(
    {"/__system__/budget_exceeded", "/__system__/end_soft", "/__system__/noop", "/end_soft"}
)


class ToolSchema(NamedTuple):
    """Argument keys of a tool: those a call must pass, and those it may pass (in
    schema order). A plain ``(required, optional)`` pair works too."""

    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()


def _frozen(value: Collection[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise ValueError("expected a collection of names, not a single string")
    return frozenset(value)


@dataclass(frozen=True)
class ValidationPolicy:
    """Everything optional; None means "not checked".

    Attributes:
        granted_tools: tool names a ``tool_call`` may use (``ERR_TOOL_NOT_GRANTED``).
            When None but ``tool_schemas`` is set, the schema names are the grant.
        tool_schemas: tool name -> :class:`ToolSchema`; argument keys of calls to these
            tools are checked (``ERR_TOOL_ARGUMENTS``).
        available_vars: context variables present before the document runs; with it
            set, every template read must be one of these, an ``output_keys`` /
            ``assign`` key of the document, a signature input, or a builtin
            (``ERR_UNKNOWN_VARIABLE``).
        unknown_var_severity: how an unknown variable is reported.
        external_paths: targets outside the document that exist (granted ``/lib``
            subgraphs, other ``/dynamic`` blocks); an ``@v1`` suffix on a target is
            ignored when matching.
        allowed_node_types: node types the document may use (``ERR_NODE_TYPE_NOT_ALLOWED``).
        max_nodes: most executable nodes (``ERR_BUDGET_EXCEEDED``).
        writable_prefixes: every block path must start with one of these
            (``ERR_NAMESPACE_VIOLATION``), e.g. ``("/dynamic/",)`` for generated text.
        require_entry_point: True: the document must have ``/__meta__`` with an
            ``entry_point``; False: never required; None: required when the document
            has a ``/main`` or ``/app`` block (a whole program).
    """

    granted_tools: Collection[str] | None = None
    tool_schemas: Mapping[str, Any] | None = None
    available_vars: Collection[str] | None = None
    unknown_var_severity: Severity = Severity.WARNING
    external_paths: Collection[str] = ()
    allowed_node_types: Collection[str] | None = None
    max_nodes: int | None = None
    writable_prefixes: Collection[str] | None = None
    require_entry_point: bool | None = None

    def __post_init__(self) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "granted_tools", _frozen(self.granted_tools))
        if isinstance(self.available_vars, Mapping):
            setattr_(self, "available_vars", frozenset(self.available_vars))
        else:
            setattr_(self, "available_vars", _frozen(self.available_vars))
        setattr_(self, "external_paths", _frozen(self.external_paths) or frozenset())
        setattr_(self, "allowed_node_types", _frozen(self.allowed_node_types))
        if self.allowed_node_types is not None:
            unknown = set(self.allowed_node_types) - set(NODE_TYPES)
            if unknown:
                raise ValueError(f"allowed_node_types has unknown types: {sorted(unknown)}")
        if self.writable_prefixes is not None:
            if isinstance(self.writable_prefixes, str):
                raise ValueError("writable_prefixes must be a collection of path prefixes")
            setattr_(self, "writable_prefixes", tuple(self.writable_prefixes))
        if self.tool_schemas is not None:
            schemas: dict[str, ToolSchema] = {}
            for name, schema in self.tool_schemas.items():
                try:
                    required, optional = schema
                    schemas[name] = ToolSchema(tuple(required), tuple(optional))
                except (TypeError, ValueError):
                    raise ValueError(
                        f"tool_schemas[{name!r}] must be a (required keys, optional keys) pair"
                    ) from None
            setattr_(self, "tool_schemas", schemas)
        if not isinstance(self.unknown_var_severity, Severity):
            setattr_(self, "unknown_var_severity", Severity(self.unknown_var_severity))
        if self.max_nodes is not None and (
            not isinstance(self.max_nodes, int)
            or isinstance(self.max_nodes, bool)
            or self.max_nodes < 1
        ):
            raise ValueError(f"max_nodes must be a positive integer, got {self.max_nodes!r}")

    @property
    def effective_granted_tools(self) -> frozenset[str] | None:
        """The tool grant: ``granted_tools``, else the names in ``tool_schemas``."""
        if self.granted_tools is not None:
            return frozenset(self.granted_tools)
        if self.tool_schemas is not None:
            return frozenset(self.tool_schemas)
        return None
