"""Turning one block's loaded YAML into AST objects.

Only what the AST cannot hold is an error here (a field of the wrong YAML type, an
unreadable signature, a body that is not a mapping). Missing required fields,
unknown node types and every semantic rule are left to the validator, so that one
bad node does not hide the rest of the document.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentic_llm.dsl.diagnostics import Diagnostic, Severity
from agentic_llm.dsl.document import (
    BUDGET_FIELDS,
    META_PATH,
    RESOURCES_PATH,
    Block,
    ExecutionBudget,
    Meta,
    NodeBlock,
    Resources,
    Subgraph,
)
from agentic_llm.dsl.nodes import COMMON_FIELDS, NODE_CLASSES, Node, Permissions, UnknownNode
from agentic_llm.dsl.signature import (
    Signature,
    SignatureSyntaxError,
    parse_signature,
    signature_from_mapping,
)
from agentic_llm.dsl.yamlload import LineMap
from agentic_llm.errors import ErrorCode

__all__ = ["build_block", "BuildProblem"]

Key = tuple[Any, ...]


class BuildProblem(Exception):
    """A field the AST cannot represent; ``key`` locates it in the block's YAML."""

    def __init__(self, code: ErrorCode, message: str, key: Key) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.key = key


def _str(value: Any, key: Key, what: str) -> str:
    if isinstance(value, str):
        return value
    raise BuildProblem(
        ErrorCode.INVALID_FIELD, f"{what} must be a string; put the value in double quotes", key
    )


def _opt_str(raw: Mapping[str, Any], name: str, key: Key) -> str | None:
    if name not in raw or raw[name] is None:
        return None
    return _str(raw[name], (*key, name), f"'{name}'")


def _str_list(value: Any, key: Key, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise BuildProblem(
        ErrorCode.INVALID_FIELD, f"{what} must be a string or a list of strings", key
    )


def _opt_str_list(raw: Mapping[str, Any], name: str, key: Key) -> tuple[str, ...] | None:
    if name not in raw or raw[name] is None:
        return None
    return _str_list(raw[name], (*key, name), f"'{name}'")


def _mapping(value: Any, key: Key, what: str) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    raise BuildProblem(ErrorCode.INVALID_FIELD, f"{what} must be a mapping", key)


def _str_mapping(value: Any, key: Key, what: str) -> dict[str, str]:
    mapping = _mapping(value, key, what)
    for k, v in mapping.items():
        if not isinstance(v, str):
            raise BuildProblem(
                ErrorCode.INVALID_FIELD,
                f"{what} value for {k!r} must be a string (the runtime reads only strings); "
                "put it in double quotes",
                (*key, k),
            )
    return dict(mapping)


def _signature(value: Any, key: Key) -> Signature | None:
    if value is None:
        return None
    try:
        if isinstance(value, str):
            return parse_signature(value)
        if isinstance(value, dict):
            return signature_from_mapping(value)
    except SignatureSyntaxError as exc:
        raise BuildProblem(ErrorCode.SIGNATURE_SYNTAX, exc.message, key) from None
    raise BuildProblem(
        ErrorCode.SIGNATURE_SYNTAX,
        'signature must be a string like "(a: number) -> sum: number" or a mapping '
        "with inputs/outputs",
        key,
    )


def _permission_item(item: Any, key: Key) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, dict) and len(item) == 1:
        ((kind, val),) = item.items()
        if isinstance(val, str | int | float) and not isinstance(val, bool):
            return f"{kind}:{val}"
        if isinstance(val, dict) and all(
            isinstance(v, str | int | float) and not isinstance(v, bool) for v in val.values()
        ):
            return f"{kind}:" + ",".join(f"{a}={b}" for a, b in val.items())
    raise BuildProblem(
        ErrorCode.INVALID_FIELD,
        'each permission must be a string such as "tool:web_search"',
        key,
    )


def _permissions(value: Any, key: Key) -> Permissions | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise BuildProblem(ErrorCode.INVALID_FIELD, "'permissions' must be a list", key)
    return Permissions(tuple(_permission_item(v, (*key, i)) for i, v in enumerate(value)))


def _opt_mapping(raw: Mapping[str, Any], name: str, key: Key) -> dict[str, Any] | None:
    if name not in raw or raw[name] is None:
        return None
    return _mapping(raw[name], (*key, name), f"'{name}'")


def _common(raw: Mapping[str, Any], key: Key) -> dict[str, Any]:
    return {
        "next": _opt_str_list(raw, "next", key),
        "signature": _signature(raw.get("signature"), (*key, "signature")),
        "permissions": _permissions(raw.get("permissions"), (*key, "permissions")),
        "metadata": _opt_mapping(raw, "metadata", key),
        "on_error": _opt_str(raw, "on_error", key),
        "on_success": _opt_str(raw, "on_success", key),
        "expected_output": raw.get("expected_output"),
        "context_merge_policy": raw.get("context_merge_policy"),
        "curriculum_level": _opt_str(raw, "curriculum_level", key),
    }


def _own(type_name: str, raw: Mapping[str, Any], key: Key) -> tuple[dict[str, Any], set[str]]:
    """The type's own fields, and the raw keys they consumed."""
    if type_name == "end":
        return {
            "termination_mode": _opt_str(raw, "termination_mode", key),
            "output_keys": _opt_str_list(raw, "output_keys", key),
        }, {"termination_mode", "output_keys"}
    if type_name == "assign":
        value = raw.get("assign")
        assign = None if value is None else _str_mapping(value, (*key, "assign"), "'assign'")
        return {"assign": assign}, {"assign"}
    if type_name == "tool_call":
        value = raw.get("arguments")
        args = None if value is None else _str_mapping(value, (*key, "arguments"), "argument")
        return {
            "tool": _opt_str(raw, "tool", key),
            "arguments": args,
            "output_keys": _opt_str_list(raw, "output_keys", key),
        }, {"tool", "arguments", "output_keys"}
    if type_name == "assert":
        return {
            "condition": _opt_str(raw, "condition", key),
            "on_failure": _opt_str(raw, "on_failure", key),
        }, {"condition", "on_failure"}
    if type_name == "fork":
        fork = _opt_mapping(raw, "fork", key) or {}
        unknown = set(fork) - {"branches"}
        if unknown:
            raise BuildProblem(
                ErrorCode.INVALID_FIELD,
                f"unknown key(s) under 'fork': {', '.join(sorted(unknown))}; only 'branches'",
                (*key, "fork"),
            )
        return {"branches": _opt_str_list(fork, "branches", (*key, "fork"))}, {"fork"}
    if type_name == "join":
        return _join(raw, key), {"join"}
    if type_name == "generate_subgraph":
        return {
            "prompt_template": _opt_str(raw, "prompt_template", key),
            "output_keys": _opt_str_list(raw, "output_keys", key),
            "signature_validation": _opt_str(raw, "signature_validation", key),
            "on_signature_violation": _opt_str(raw, "on_signature_violation", key),
        }, {"prompt_template", "output_keys", "signature_validation", "on_signature_violation"}
    if type_name in ("dsl_call", "llm_call"):
        fields = {
            "prompt_template": _opt_str(raw, "prompt_template", key),
            "llm_params": _opt_mapping(raw, "llm_params", key),
            "output_keys": _opt_str_list(raw, "output_keys", key),
        }
        used = {"prompt_template", "llm_params", "output_keys"}
        if type_name == "dsl_call":
            fields["llm_tool_name"] = _opt_str(raw, "llm_tool_name", key)
            used.add("llm_tool_name")
        return fields, used
    if type_name == "codelet_call":
        return {
            "runtime": _opt_str(raw, "runtime", key),
            "code": _opt_str(raw, "code", key),
            "security": raw.get("security"),
        }, {"runtime", "code", "security"}
    return {}, set()


def _join(raw: Mapping[str, Any], key: Key) -> dict[str, Any]:
    join = _opt_mapping(raw, "join", key) or {}
    jkey = (*key, "join")
    unknown = set(join) - {"wait_for", "merge_strategy"}
    if unknown:
        raise BuildProblem(
            ErrorCode.INVALID_FIELD,
            f"unknown key(s) under 'join': {', '.join(sorted(unknown))}; "
            "only 'wait_for' and 'merge_strategy'",
            jkey,
        )
    wait = join.get("wait_for")
    mode = None
    if isinstance(wait, dict):
        if len(wait) != 1 or next(iter(wait)) not in ("any_of", "all_of"):
            raise BuildProblem(
                ErrorCode.INVALID_FIELD,
                "'wait_for' as a mapping must have exactly one key, any_of or all_of",
                (*jkey, "wait_for"),
            )
        ((mode, wait),) = wait.items()
    wait_for = None if wait is None else _str_list(wait, (*jkey, "wait_for"), "'wait_for'")
    return {
        "wait_for": wait_for,
        "wait_mode": mode,
        "merge_strategy": _opt_str(join, "merge_strategy", jkey),
    }


def _node(raw: Any, key: Key, lines: LineMap, with_id: bool) -> Node:
    if not isinstance(raw, dict):
        raise BuildProblem(ErrorCode.INVALID_FIELD, "a node must be a mapping", key)
    type_value = raw.get("type")
    cls = NODE_CLASSES.get(type_value) if isinstance(type_value, str) else None
    type_name = cls.type_name if cls is not None else ""
    fields = _common(raw, key)
    own, used = _own(type_name, raw, key)
    fields.update(own)
    used |= {"type", *COMMON_FIELDS, "next"}
    if with_id:
        used.add("id")
        if raw.get("id") is not None:
            node_id = raw["id"]
            if isinstance(node_id, int) and not isinstance(node_id, bool):
                node_id = str(node_id)
            fields["id"] = _str(node_id, (*key, "id"), "'id'")
    extra = {k: v for k, v in raw.items() if k not in used}
    fields["extra"] = extra or None
    fields["line"] = lines.get(key)
    fields["field_lines"] = {k: lines[(*key, k)] for k in raw if (*key, k) in lines}
    if cls is None:
        return UnknownNode(unknown_type=type_value, **fields)
    return cls(**fields)


def _subgraph(path: str, raw: dict[str, Any], lines: LineMap, line: int) -> Subgraph:
    nodes_raw = raw.get("nodes")
    if nodes_raw is None:
        nodes_raw = []
    if not isinstance(nodes_raw, list):
        raise BuildProblem(ErrorCode.INVALID_FIELD, "'nodes' must be a list of nodes", ("nodes",))
    nodes = tuple(_node(n, ("nodes", i), lines, True) for i, n in enumerate(nodes_raw))
    known = {"graph_type", "signature", "permissions", "metadata", "entry", "nodes"}
    extra = {k: v for k, v in raw.items() if k not in known}
    return Subgraph(
        path=path,
        nodes=nodes,
        entry=_opt_str(raw, "entry", ()),
        signature=_signature(raw.get("signature"), ("signature",)),
        permissions=_permissions(raw.get("permissions"), ("permissions",)),
        metadata=_opt_mapping(raw, "metadata", ()),
        extra=extra or None,
        line=line,
        field_lines={k: lines[(k,)] for k in raw if (k,) in lines},
    )


def _meta(path: str, raw: dict[str, Any], lines: LineMap, line: int) -> Meta:
    version = raw.get("version")
    if isinstance(version, int | float) and not isinstance(version, bool):
        version = str(version)
    budget = None
    if raw.get("execution_budget") is not None:
        b = _mapping(raw["execution_budget"], ("execution_budget",), "'execution_budget'")
        for name, value in b.items():
            bkey = ("execution_budget", name)
            if name not in BUDGET_FIELDS:
                raise BuildProblem(
                    ErrorCode.INVALID_FIELD,
                    f"unknown budget {name!r}; known: {', '.join(BUDGET_FIELDS)}",
                    bkey,
                )
            if not isinstance(value, int) or isinstance(value, bool):
                raise BuildProblem(
                    ErrorCode.INVALID_FIELD, f"budget {name!r} must be an integer", bkey
                )
        budget = ExecutionBudget(**b)
    known = {"version", "mode", "entry_point", "execution_budget"}
    extra = {k: v for k, v in raw.items() if k not in known}
    return Meta(
        path=path,
        version=None if version is None else _str(version, ("version",), "'version'"),
        mode=_opt_str(raw, "mode", ()),
        entry_point=_opt_str(raw, "entry_point", ()),
        execution_budget=budget,
        extra=extra or None,
        line=line,
        field_lines={k: lines[(k,)] for k in raw if (k,) in lines},
    )


def _resources(path: str, raw: dict[str, Any], line: int) -> Resources:
    if raw.get("type") != "resource_declare":
        raise BuildProblem(
            ErrorCode.INVALID_FIELD, f"{RESOURCES_PATH} needs 'type: resource_declare'", ("type",)
        )
    items = raw.get("resources") or []
    if not isinstance(items, list):
        raise BuildProblem(ErrorCode.INVALID_FIELD, "'resources' must be a list", ("resources",))
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            raise BuildProblem(
                ErrorCode.INVALID_FIELD,
                "each resource must be a mapping with a 'type'",
                ("resources", i),
            )
    extra = {k: v for k, v in raw.items() if k not in ("type", "resources")}
    return Resources(path=path, resources=tuple(items), extra=extra or None, line=line)


def build_block(path: str, raw: Any, lines: LineMap, heading_line: int) -> Block:
    """Build one block from its loaded YAML.

    Raises:
        BuildProblem: the YAML does not have a shape the AST can hold.
    """
    if raw is None and path == META_PATH:
        raw = {}
    if not isinstance(raw, dict):
        raise BuildProblem(
            ErrorCode.INVALID_FIELD,
            "block body must be a YAML mapping (graph_type: subgraph, or a node with type:)",
            (),
        )
    if path == META_PATH:
        return _meta(path, raw, lines, heading_line)
    if path == RESOURCES_PATH or raw.get("type") == "resource_declare":
        return _resources(path, raw, heading_line)
    if "graph_type" in raw:
        if raw["graph_type"] != "subgraph":
            raise BuildProblem(
                ErrorCode.INVALID_FIELD, "graph_type must be 'subgraph'", ("graph_type",)
            )
        return _subgraph(path, raw, lines, heading_line)
    if "type" in raw:
        node = _node(raw, (), lines, False)
        return NodeBlock(path=path, node=node, line=heading_line)
    raise BuildProblem(
        ErrorCode.MISSING_FIELD,
        "block has neither 'graph_type: subgraph' nor a node 'type'",
        (),
    )


def problem_diagnostic(
    problem: BuildProblem, path: str, lines: LineMap, heading_line: int
) -> Diagnostic:
    """Locate a build problem: the nearest recorded line along its key path."""
    key = problem.key
    while key and key not in lines:
        key = key[:-1]
    line = lines.get(key, heading_line) if key else heading_line
    return Diagnostic(problem.code, Severity.ERROR, problem.message, path, line)
