"""The typed generation request: what a caller (gRPC, SDK, CLI JSON file) asks for.

``GenerateRequest.from_json`` accepts a dict or a JSON string in the format documented
in ``docs/grammar.md``; every problem is an ``AgenticError`` with
``ERR_INVALID_REQUEST`` naming the offending field. Only ``target_path`` and
``prompt`` are required. Semantic checks (namespaces, budgets, permissions) belong to
``agentic_llm.planner.plan``; this module only checks shapes and types.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.planner.constraints import ContentConstraints

__all__ = [
    "ToolArgument",
    "ToolSpec",
    "LibraryEntry",
    "ContextState",
    "normalize_permission",
    "Budget",
    "Sampling",
    "RequestFlags",
    "GenerateRequest",
]


def _bad(field_name: str, message: str) -> AgenticError:
    return AgenticError(ErrorCode.INVALID_REQUEST, f"{field_name}: {message}", field=field_name)


def _mapping(obj: Any, name: str) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise _bad(name, f"expected an object, got {type(obj).__name__}")
    return obj


def _object(obj: Any, name: str, known: set[str], *, required: str | None = None) -> Mapping[str, Any]:
    """``obj`` as a JSON object holding only ``known`` keys (and ``required``, if given)."""
    m = _mapping(obj, name)
    unknown = sorted(set(m) - known)
    if unknown:
        raise _bad(name, f"unknown field(s) {unknown}; known fields: {sorted(known)}")
    if required is not None and required not in m:
        raise _bad(name, f"missing '{required}'")
    return m


def _str(obj: Any, name: str, *, allow_empty: bool = True) -> str:
    if not isinstance(obj, str):
        raise _bad(name, f"expected a string, got {type(obj).__name__}")
    if not allow_empty and not obj:
        raise _bad(name, "must not be empty")
    return obj


def _opt_str(obj: Any, name: str) -> str | None:
    return None if obj is None else _str(obj, name)


def _int(obj: Any, name: str, *, minimum: int | None = None) -> int:
    if isinstance(obj, bool) or not isinstance(obj, int):
        raise _bad(name, f"expected an integer, got {type(obj).__name__}")
    if minimum is not None and obj < minimum:
        raise _bad(name, f"must be >= {minimum}, got {obj}")
    return obj


def _num(obj: Any, name: str, *, minimum: float | None = None) -> float:
    if isinstance(obj, bool) or not isinstance(obj, int | float):
        raise _bad(name, f"expected a number, got {type(obj).__name__}")
    v = float(obj)
    if not math.isfinite(v):
        raise _bad(name, "must be finite")
    if minimum is not None and v < minimum:
        raise _bad(name, f"must be >= {minimum}, got {obj}")
    return v


def _bool(obj: Any, name: str) -> bool:
    if not isinstance(obj, bool):
        raise _bad(name, f"expected true or false, got {type(obj).__name__}")
    return obj


def _list(obj: Any, name: str) -> list[Any]:
    if not isinstance(obj, list | tuple):
        raise _bad(name, f"expected a list, got {type(obj).__name__}")
    return list(obj)


@dataclass(frozen=True)
class ToolArgument:
    """One argument of a tool: its key, a schema type name and whether it is required."""

    name: str
    type: str = "string"
    required: bool = True
    description: str = ""

    @classmethod
    def from_json(cls, obj: Any, where: str) -> ToolArgument:
        m = _object(obj, where, {"name", "type", "required", "description"}, required="name")
        return cls(
            name=_str(m["name"], f"{where}.name", allow_empty=False),
            type=_str(m.get("type", "string"), f"{where}.type", allow_empty=False),
            required=_bool(m.get("required", True), f"{where}.required"),
            description=_str(m.get("description", ""), f"{where}.description"),
        )

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "required": self.required,
                "description": self.description}


@dataclass(frozen=True)
class ToolSpec:
    """A tool the caller offers, with its argument schema (in schema order)."""

    name: str
    description: str = ""
    arguments: tuple[ToolArgument, ...] = ()
    output: str | None = None

    @classmethod
    def from_json(cls, obj: Any, where: str) -> ToolSpec:
        m = _object(obj, where, {"name", "description", "arguments", "output"}, required="name")
        args = tuple(
            ToolArgument.from_json(a, f"{where}.arguments[{i}]")
            for i, a in enumerate(_list(m.get("arguments", []), f"{where}.arguments"))
        )
        return cls(
            name=_str(m["name"], f"{where}.name", allow_empty=False),
            description=_str(m.get("description", ""), f"{where}.description"),
            arguments=args,
            output=_opt_str(m.get("output"), f"{where}.output"),
        )

    @property
    def required_keys(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.arguments if a.required)

    @property
    def optional_keys(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.arguments if not a.required)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description,
                "arguments": [a.to_json() for a in self.arguments], "output": self.output}


@dataclass(frozen=True)
class LibraryEntry:
    """A library subgraph the generated code may call, with its signature string."""

    path: str
    signature: str = ""
    description: str = ""

    @classmethod
    def from_json(cls, obj: Any, where: str) -> LibraryEntry:
        m = _object(obj, where, {"path", "signature", "description"}, required="path")
        return cls(
            path=_str(m["path"], f"{where}.path", allow_empty=False),
            signature=_str(m.get("signature", ""), f"{where}.signature"),
            description=_str(m.get("description", ""), f"{where}.description"),
        )

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "signature": self.signature, "description": self.description}


# Permission strings the planner acts on. The spec writes ``tool: name`` (spaces
# allowed around the colon); ``tool:name`` is the same grant.
PERMISSION_NODE_TYPES = frozenset({"generate_subgraph", "dsl_call", "llm_call", "codelet_call"})
_PERMISSION = re.compile(r"\s*(tool|lib)\s*:\s*(\S+)\s*")
_PERMISSION_TOOL = re.compile(r"\*|[A-Za-z_][A-Za-z0-9_.\-]{0,63}")
_PERMISSION_LIB = re.compile(r"/lib(?:/[\w\-]+)*/?")


def normalize_permission(text: str) -> str:
    """The canonical form of a permission string: ``tool:<name>``, ``tool:*``,
    ``lib:<prefix>`` or a node type name (``generate_subgraph``, ``dsl_call``,
    ``llm_call``, ``codelet_call``).

    Raises ValueError, naming the string, for anything else: a permission the planner
    does not understand is refused, never ignored.
    """
    bare = text.strip()
    if bare in PERMISSION_NODE_TYPES:
        return bare
    m = _PERMISSION.fullmatch(text)
    if m is not None:
        kind, value = m.groups()
        if kind == "tool" and _PERMISSION_TOOL.fullmatch(value):
            return f"tool:{value}"
        if kind == "lib" and _PERMISSION_LIB.fullmatch(value):
            return f"lib:{value}"
    raise ValueError(
        f"permission {text!r} is not understood; use 'tool:<name>' (or 'tool: <name>'), "
        f"'tool:*', 'lib:/lib/<prefix>' or one of {sorted(PERMISSION_NODE_TYPES)}"
    )


@dataclass(frozen=True)
class ContextState:
    """Context the generated code runs in: variable names and types, their values,
    and the caller's permissions (``None``: not restricted beyond the defaults)."""

    available_vars: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, Any] = field(default_factory=dict)
    permissions: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.permissions is None:
            return
        canonical = []
        for i, perm in enumerate(self.permissions):
            try:
                canonical.append(normalize_permission(perm))
            except (ValueError, TypeError) as exc:
                raise _bad(f"context.permissions[{i}]", str(exc)) from None
        object.__setattr__(self, "permissions", tuple(canonical))

    @classmethod
    def from_json(cls, obj: Any, where: str = "context") -> ContextState:
        m = _object(obj, where, {"available_vars", "values", "permissions"})
        av = _mapping(m.get("available_vars", {}), f"{where}.available_vars")
        avars = {str(k): _str(v, f"{where}.available_vars.{k}", allow_empty=False) for k, v in av.items()}
        values = dict(_mapping(m.get("values", {}), f"{where}.values"))
        try:
            json.dumps(values, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise _bad(f"{where}.values", f"must be plain JSON ({exc})") from None
        perms_raw = m.get("permissions")
        if perms_raw is None:
            return cls(available_vars=avars, values=values)
        perms: list[str] = []
        for i, p in enumerate(_list(perms_raw, f"{where}.permissions")):
            raw = _str(p, f"{where}.permissions[{i}]", allow_empty=False)
            try:
                perms.append(normalize_permission(raw))
            except ValueError as exc:
                raise _bad(f"{where}.permissions[{i}]", str(exc)) from None
        return cls(available_vars=avars, values=values, permissions=tuple(perms))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"available_vars": dict(self.available_vars), "values": dict(self.values)}
        if self.permissions is not None:
            out["permissions"] = list(self.permissions)
        return out


@dataclass(frozen=True)
class Budget:
    """Limits for the generated subgraph and its generation."""

    max_nodes: int = 8
    max_tokens: int = 512
    timeout_sec: float = 30.0
    max_depth: int = 1

    @classmethod
    def from_json(cls, obj: Any, where: str = "budget") -> Budget:
        m = _object(obj, where, {"max_nodes", "max_tokens", "timeout_sec", "max_depth"})
        d = cls()
        # max_nodes 0 is a shape-valid request; the planner refuses it with a reason.
        return cls(
            max_nodes=_int(m.get("max_nodes", d.max_nodes), f"{where}.max_nodes", minimum=0),
            max_tokens=_int(m.get("max_tokens", d.max_tokens), f"{where}.max_tokens", minimum=1),
            timeout_sec=_num(m.get("timeout_sec", d.timeout_sec), f"{where}.timeout_sec", minimum=0.0),
            max_depth=_int(m.get("max_depth", d.max_depth), f"{where}.max_depth", minimum=0),
        )

    def to_json(self) -> dict[str, Any]:
        return {"max_nodes": self.max_nodes, "max_tokens": self.max_tokens,
                "timeout_sec": self.timeout_sec, "max_depth": self.max_depth}


@dataclass(frozen=True)
class Sampling:
    """Sampling options passed through to the engine."""

    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None

    @classmethod
    def from_json(cls, obj: Any, where: str = "sampling") -> Sampling:
        m = _object(obj, where, {"temperature", "top_k", "top_p", "seed"})
        top_p = _num(m.get("top_p", 1.0), f"{where}.top_p", minimum=0.0)
        if top_p > 1.0:
            raise _bad(f"{where}.top_p", f"must be <= 1, got {top_p}")
        seed = m.get("seed")
        return cls(
            temperature=_num(m.get("temperature", 0.0), f"{where}.temperature", minimum=0.0),
            top_k=_int(m.get("top_k", 0), f"{where}.top_k", minimum=0),
            top_p=top_p,
            seed=None if seed is None else _int(seed, f"{where}.seed"),
        )

    def to_json(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p,
                "seed": self.seed}


@dataclass(frozen=True)
class RequestFlags:
    """Per-request switches.

    ``raw_prompt``: give the model the planner's prompt as plain text, not framed in
    the model's chat template.
    """

    bypass_cache: bool = False
    diagnostics: bool = False
    raw_prompt: bool = False

    @classmethod
    def from_json(cls, obj: Any, where: str = "flags") -> RequestFlags:
        m = _object(obj, where, {"bypass_cache", "diagnostics", "raw_prompt"})
        return cls(
            bypass_cache=_bool(m.get("bypass_cache", False), f"{where}.bypass_cache"),
            diagnostics=_bool(m.get("diagnostics", False), f"{where}.diagnostics"),
            raw_prompt=_bool(m.get("raw_prompt", False), f"{where}.raw_prompt"),
        )

    def to_json(self) -> dict[str, Any]:
        out = {"bypass_cache": self.bypass_cache, "diagnostics": self.diagnostics}
        if self.raw_prompt:
            out["raw_prompt"] = True
        return out


_TOP_KEYS = {
    "target_path", "prompt", "context", "tools", "library", "budget", "sampling", "dag_id",
    "branch_id", "parent_path", "priority", "tenant", "namespaces", "flags", "node_types",
    "signature", "target_runtime", "constraints",
}
#: runtimes a request may target (``ExecutionPlan.target_runtime``)
TARGET_RUNTIMES = ("agenticrt", "spec")


def _runtime(value: Any) -> str:
    name = _str(value, "target_runtime", allow_empty=False)
    if name not in TARGET_RUNTIMES:
        raise _bad("target_runtime", f"must be one of {', '.join(TARGET_RUNTIMES)}, got {name!r}")
    return name


@dataclass(frozen=True)
class GenerateRequest:
    """One request to generate a subgraph at ``target_path`` for ``prompt``.

    Optional extras beyond the common fields: ``node_types`` narrows the node-type
    whitelist the planner would otherwise derive from permissions; ``namespaces``
    lists extra writable path prefixes the caller grants (a ``/lib`` target needs one
    and a ``signature``).
    """

    target_path: str
    prompt: str
    context: ContextState = field(default_factory=ContextState)
    tools: tuple[ToolSpec, ...] = ()
    library: tuple[LibraryEntry, ...] = ()
    budget: Budget = field(default_factory=Budget)
    sampling: Sampling = field(default_factory=Sampling)
    dag_id: str | None = None
    branch_id: str | None = None
    parent_path: str | None = None
    priority: int = 0
    tenant: str = ""
    namespaces: tuple[str, ...] = ()
    flags: RequestFlags = field(default_factory=RequestFlags)
    node_types: tuple[str, ...] | None = None
    signature: str | None = None
    target_runtime: str = "agenticrt"
    constraints: ContentConstraints = field(default_factory=ContentConstraints)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str | bytes) -> GenerateRequest:
        """Build a request from a JSON object (dict) or JSON text.

        Raises:
            AgenticError: ERR_INVALID_REQUEST naming the first offending field.
        """
        if isinstance(data, str | bytes):
            try:
                data = json.loads(data)
            except json.JSONDecodeError as exc:
                raise AgenticError(ErrorCode.INVALID_REQUEST,
                                   f"request is not valid JSON: {exc}") from None
        m = _object(data, "request", _TOP_KEYS)
        for req in ("target_path", "prompt"):
            if req not in m:
                raise _bad(req, "required field is missing")
        node_types = m.get("node_types")
        return cls(
            target_path=_str(m["target_path"], "target_path", allow_empty=False),
            prompt=_str(m["prompt"], "prompt", allow_empty=False),
            context=ContextState.from_json(m.get("context") or {}),
            tools=tuple(ToolSpec.from_json(t, f"tools[{i}]")
                        for i, t in enumerate(_list(m.get("tools") or [], "tools"))),
            library=tuple(LibraryEntry.from_json(e, f"library[{i}]")
                          for i, e in enumerate(_list(m.get("library") or [], "library"))),
            budget=Budget.from_json(m.get("budget") or {}),
            sampling=Sampling.from_json(m.get("sampling") or {}),
            dag_id=_opt_str(m.get("dag_id"), "dag_id"),
            branch_id=_opt_str(m.get("branch_id"), "branch_id"),
            parent_path=_opt_str(m.get("parent_path"), "parent_path"),
            priority=_int(m.get("priority", 0), "priority"),
            tenant=_str(m.get("tenant") or "", "tenant"),
            namespaces=tuple(_str(n, f"namespaces[{i}]", allow_empty=False)
                             for i, n in enumerate(_list(m.get("namespaces") or [], "namespaces"))),
            flags=RequestFlags.from_json(m.get("flags") or {}),
            node_types=None if node_types is None else tuple(
                _str(n, f"node_types[{i}]", allow_empty=False)
                for i, n in enumerate(_list(node_types, "node_types"))),
            signature=_opt_str(m.get("signature"), "signature"),
            target_runtime=_runtime(m.get("target_runtime", "agenticrt")),
            constraints=ContentConstraints.from_json(m.get("constraints")),
        )

    def to_json(self) -> dict[str, Any]:
        """The request as a JSON-ready dict; ``from_json(to_json())`` round-trips."""
        out: dict[str, Any] = {
            "target_path": self.target_path,
            "prompt": self.prompt,
            "context": self.context.to_json(),
            "tools": [t.to_json() for t in self.tools],
            "library": [e.to_json() for e in self.library],
            "budget": self.budget.to_json(),
            "sampling": self.sampling.to_json(),
            "dag_id": self.dag_id,
            "branch_id": self.branch_id,
            "parent_path": self.parent_path,
            "priority": self.priority,
            "tenant": self.tenant,
            "namespaces": list(self.namespaces),
            "flags": self.flags.to_json(),
        }
        if self.node_types is not None:
            out["node_types"] = list(self.node_types)
        if self.signature is not None:
            out["signature"] = self.signature
        if self.target_runtime != "agenticrt":
            out["target_runtime"] = self.target_runtime
        if not self.constraints.empty:
            out["constraints"] = self.constraints.to_json()
        return out

    def to_json_text(self) -> str:
        """``to_json`` as compact, key-sorted JSON text."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
