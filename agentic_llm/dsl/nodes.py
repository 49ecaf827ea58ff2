"""AST node classes: one frozen dataclass per AgenticDSL node type.

All fields are keyword-only. Fields the spec requires are typed ``X | None`` so that
a document missing one can still be represented and reported by the validator
(``ERR_MISSING_FIELD``) instead of failing the parse. ``line`` and ``field_lines``
record where the node sat in the source text; they take no part in equality.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from agentic_llm.dsl.signature import Signature

__all__ = [
    "Permissions",
    "Node",
    "Start",
    "End",
    "Assign",
    "ToolCall",
    "Assert",
    "Fork",
    "Join",
    "GenerateSubgraph",
    "DslCall",
    "LlmCall",
    "CodeletCall",
    "UnknownNode",
    "NODE_CLASSES",
    "NODE_TYPES",
    "COMMON_FIELDS",
    "SourceLines",
]


@dataclass(frozen=True)
class Permissions:
    """Permission strings as the runtime reads them, e.g. ``"tool:web_search"``,
    ``"generate_subgraph"``, ``"network"``."""

    items: tuple[str, ...] = ()

    @property
    def tools(self) -> frozenset[str]:
        """Tool names granted by ``tool:<name>`` entries."""
        out = set()
        for item in self.items:
            kind, _, rest = item.partition(":")
            if kind.strip() == "tool" and rest.strip():
                out.add(rest.strip())
        return frozenset(out)

    def __contains__(self, item: object) -> bool:
        return item in self.items

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


# Fields every node type may carry, in canonical order (after the type's own fields).
COMMON_FIELDS: tuple[str, ...] = (
    "signature",
    "permissions",
    "metadata",
    "on_error",
    "on_success",
    "expected_output",
    "context_merge_policy",
    "curriculum_level",
)


class SourceLines:
    """Source-line lookup for AST classes that record ``line`` (where the object
    starts) and ``field_lines`` (where each field starts); both are dataclass fields
    of the class that mixes this in."""

    line: int | None
    field_lines: Mapping[str, int] | None

    def line_of(self, name: str) -> int | None:
        """Source line of field ``name``, falling back to the object's own line."""
        if self.field_lines and name in self.field_lines:
            return self.field_lines[name]
        return self.line


@dataclass(frozen=True, kw_only=True)
class Node(SourceLines):
    """Fields shared by every node type.

    ``id`` is the node's id inside a subgraph (None for a single-node block, whose
    path is the block path). ``next`` holds absolute target paths. ``extra`` keeps
    keys the spec does not define for this type, in source order, so nothing is lost.
    """

    type_name: ClassVar[str] = ""
    own_fields: ClassVar[tuple[str, ...]] = ()
    required_fields: ClassVar[tuple[str, ...]] = ()

    id: str | None = None
    next: tuple[str, ...] | None = None
    signature: Signature | None = None
    permissions: Permissions | None = None
    metadata: Mapping[str, Any] | None = None
    on_error: str | None = None
    on_success: str | None = None
    expected_output: Any = None
    context_merge_policy: Any = None
    curriculum_level: str | None = None
    extra: Mapping[str, Any] | None = None
    line: int | None = field(default=None, compare=False, repr=False)
    field_lines: Mapping[str, int] | None = field(default=None, compare=False, repr=False)

    @property
    def type(self) -> str:
        """The node type string as written in YAML."""
        return self.type_name

    def targets(self) -> list[tuple[str, str]]:
        """Every (field, path) this node can hand control to, in field order."""
        out: list[tuple[str, str]] = [("next", t) for t in self.next or ()]
        if self.on_error is not None:
            out.append(("on_error", self.on_error))
        return out


@dataclass(frozen=True, kw_only=True)
class Start(Node):
    """``start``: no operation, continues at ``next``."""

    type_name: ClassVar[str] = "start"


@dataclass(frozen=True, kw_only=True)
class End(Node):
    """``end``: ends the subgraph (``hard``, the default) or returns to the caller
    (``soft``), merging only ``output_keys`` into the parent context."""

    type_name: ClassVar[str] = "end"
    own_fields: ClassVar[tuple[str, ...]] = ("termination_mode", "output_keys")

    termination_mode: str | None = None
    output_keys: tuple[str, ...] | None = None


@dataclass(frozen=True, kw_only=True)
class Assign(Node):
    """``assign``: writes context keys from Inja templates."""

    type_name: ClassVar[str] = "assign"
    own_fields: ClassVar[tuple[str, ...]] = ("assign",)
    required_fields: ClassVar[tuple[str, ...]] = ("assign",)

    assign: Mapping[str, str] | None = None


@dataclass(frozen=True, kw_only=True)
class ToolCall(Node):
    """``tool_call``: calls a registered tool; every argument value is a string template."""

    type_name: ClassVar[str] = "tool_call"
    own_fields: ClassVar[tuple[str, ...]] = ("tool", "arguments", "output_keys")
    required_fields: ClassVar[tuple[str, ...]] = ("tool", "output_keys")

    tool: str | None = None
    arguments: Mapping[str, str] | None = None
    output_keys: tuple[str, ...] | None = None


@dataclass(frozen=True, kw_only=True)
class Assert(Node):
    """``assert``: checks an Inja boolean expression, jumps to ``on_failure`` if false."""

    type_name: ClassVar[str] = "assert"
    own_fields: ClassVar[tuple[str, ...]] = ("condition", "on_failure")
    required_fields: ClassVar[tuple[str, ...]] = ("condition",)

    condition: str | None = None
    on_failure: str | None = None

    def targets(self) -> list[tuple[str, str]]:
        out = super().targets()
        if self.on_failure is not None:
            out.append(("on_failure", self.on_failure))
        return out


@dataclass(frozen=True, kw_only=True)
class Fork(Node):
    """``fork``: starts ``branches`` in parallel (written under ``fork:``)."""

    type_name: ClassVar[str] = "fork"
    own_fields: ClassVar[tuple[str, ...]] = ("branches",)
    required_fields: ClassVar[tuple[str, ...]] = ("branches",)

    branches: tuple[str, ...] | None = None

    def targets(self) -> list[tuple[str, str]]:
        return [("branches", b) for b in self.branches or ()] + super().targets()


@dataclass(frozen=True, kw_only=True)
class Join(Node):
    """``join``: waits for ``wait_for`` (all of them, or any of them when
    ``wait_mode`` is ``any_of``), then merges with ``merge_strategy``."""

    type_name: ClassVar[str] = "join"
    own_fields: ClassVar[tuple[str, ...]] = ("wait_for", "wait_mode", "merge_strategy")
    required_fields: ClassVar[tuple[str, ...]] = ("wait_for",)

    wait_for: tuple[str, ...] | None = None
    wait_mode: str | None = None
    merge_strategy: str | None = None


@dataclass(frozen=True, kw_only=True)
class GenerateSubgraph(Node):
    """``generate_subgraph``: asks an LLM for new ``/dynamic/**`` blocks."""

    type_name: ClassVar[str] = "generate_subgraph"
    own_fields: ClassVar[tuple[str, ...]] = (
        "prompt_template",
        "output_keys",
        "signature_validation",
        "on_signature_violation",
    )
    required_fields: ClassVar[tuple[str, ...]] = ("prompt_template", "output_keys")

    prompt_template: str | None = None
    output_keys: tuple[str, ...] | None = None
    signature_validation: str | None = None
    on_signature_violation: str | None = None

    def targets(self) -> list[tuple[str, str]]:
        out = super().targets()
        if self.on_signature_violation is not None:
            out.append(("on_signature_violation", self.on_signature_violation))
        return out


@dataclass(frozen=True, kw_only=True)
class DslCall(Node):
    """``dsl_call``: generates text with a registered LLM tool."""

    type_name: ClassVar[str] = "dsl_call"
    own_fields: ClassVar[tuple[str, ...]] = (
        "prompt_template",
        "llm_tool_name",
        "llm_params",
        "output_keys",
    )
    required_fields: ClassVar[tuple[str, ...]] = ("prompt_template", "llm_tool_name", "output_keys")

    prompt_template: str | None = None
    llm_tool_name: str | None = None
    llm_params: Mapping[str, Any] | None = None
    output_keys: tuple[str, ...] | None = None


@dataclass(frozen=True, kw_only=True)
class LlmCall(Node):
    """``llm_call``: the older name of ``dsl_call`` (default LLM tool)."""

    type_name: ClassVar[str] = "llm_call"
    own_fields: ClassVar[tuple[str, ...]] = ("prompt_template", "llm_params", "output_keys")
    required_fields: ClassVar[tuple[str, ...]] = ("prompt_template", "output_keys")

    prompt_template: str | None = None
    llm_params: Mapping[str, Any] | None = None
    output_keys: tuple[str, ...] | None = None


@dataclass(frozen=True, kw_only=True)
class CodeletCall(Node):
    """``codelet_call``: runs sandboxed code (the reference runtime ignores it)."""

    type_name: ClassVar[str] = "codelet_call"
    own_fields: ClassVar[tuple[str, ...]] = ("runtime", "code", "security")
    required_fields: ClassVar[tuple[str, ...]] = ("runtime", "code")

    runtime: str | None = None
    code: str | None = None
    security: Any = None


@dataclass(frozen=True, kw_only=True)
class UnknownNode(Node):
    """A node whose ``type`` the spec does not define; kept so the validator can
    report it (``ERR_UNKNOWN_NODE_TYPE``). Its other keys live in ``extra``."""

    type_name: ClassVar[str] = ""
    unknown_type: Any = None

    @property
    def type(self) -> str:
        return str(self.unknown_type)


NODE_CLASSES: dict[str, type[Node]] = {
    cls.type_name: cls
    for cls in (
        Start,
        End,
        Assign,
        ToolCall,
        Assert,
        Fork,
        Join,
        GenerateSubgraph,
        DslCall,
        LlmCall,
        CodeletCall,
    )
}
NODE_TYPES: tuple[str, ...] = tuple(NODE_CLASSES)
