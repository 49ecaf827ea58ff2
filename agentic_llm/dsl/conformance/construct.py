"""How the reference runtime builds graphs and nodes from a block's JSON.

Models ``MarkdownParser::parse_from_string`` and ``create_node_from_json``
(``src/modules/parser/markdown_parser.cpp``): which fields each node type requires
and with which JSON type, which it silently ignores, and which node types it drops.
A refusal raises :class:`RuntimeRefusal` with the reference's own message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentic_llm.dsl.conformance.outcome import Drop, RuntimeRefusal, json_type

__all__ = ["RefNode", "BUILT_TYPES", "RESOURCE_TYPES", "build_node", "TypeErrorJson"]

# Node types create_node_from_json builds; any other type is dropped (nullptr).
BUILT_TYPES = frozenset(
    {
        "start",
        "end",
        "assign",
        "dsl_call",
        "llm_call",
        "tool_call",
        "resource",
        "fork",
        "join",
        "generate_subgraph",
        "assert",
    }
)
RESOURCE_TYPES = frozenset(
    {"file", "postgres", "mysql", "sqlite", "api_endpoint", "vector_store", "custom"}
)


class TypeErrorJson(Exception):
    """An nlohmann::json exception; ``str()`` is its ``what()`` text."""


@dataclass
class RefNode:
    """A node as registered: its path, type, ``next`` targets and metadata."""

    path: str
    type: str
    next: list[str]
    metadata: Any
    drops: list[Drop] = field(default_factory=list)


def get_string(value: Any) -> str:
    """``json.get<std::string>()``."""
    if not isinstance(value, str):
        raise TypeErrorJson(
            f"[json.exception.type_error.302] type must be string, but is {json_type(value)}"
        )
    return value


def get_number(value: Any) -> None:
    """``json.get<float>()`` / ``get<int>()``: numbers and booleans convert."""
    if not isinstance(value, bool | int | float):
        raise TypeErrorJson(
            f"[json.exception.type_error.302] type must be number, but is {json_type(value)}"
        )


def at(obj: dict[str, Any], key: str) -> Any:
    """``json.at(key)`` on an object."""
    if key not in obj:
        raise TypeErrorJson(f"[json.exception.out_of_range.403] key '{key}' not found")
    return obj[key]


def value_or(obj: Any, key: str, default: Any) -> Any:
    """``json.value(key, default)``: only on objects; a present key is converted to
    the default's type."""
    if not isinstance(obj, dict):
        raise TypeErrorJson(f"[json.exception.type_error.306] cannot use value() with {json_type(obj)}")
    if key not in obj:
        return default
    if isinstance(default, str):
        return get_string(obj[key])
    return obj[key]


def contains(obj: Any, key: str) -> bool:
    """``json.contains(key)``: false on anything but an object."""
    return isinstance(obj, dict) and key in obj


def _string_list(value: Any) -> list[str]:
    """A string or an array of strings (``next``, branches, wait_for); other types are
    ignored by the reference."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [get_string(item) for item in value]
    return []


def _output_keys(node: dict[str, Any], path: str) -> None:
    if "output_keys" not in node:
        raise RuntimeRefusal("missing_output_keys", f"Missing 'output_keys' in node: {path}")
    keys = node["output_keys"]
    if isinstance(keys, str):
        return
    if isinstance(keys, list):
        for key in keys:
            get_string(key)
        return
    raise RuntimeRefusal(
        "bad_output_keys", f"'output_keys' must be string or array in node: {path}"
    )


def _llm_params(node: dict[str, Any]) -> None:
    params = node.get("llm_params")
    if not isinstance(params, dict):
        return
    for key in ("temperature", "max_tokens", "top_p", "n_ctx", "n_threads"):
        if key in params:
            get_number(params[key])
    if "model" in params:
        get_string(params["model"])


def _check_fields(kind: str, node: dict[str, Any], path: str, drops: list[Drop]) -> None:
    if kind == "assign":
        assign = node.get("assign")
        if isinstance(assign, dict):
            for value in assign.values():
                get_string(value)
    elif kind == "dsl_call":
        get_string(at(node, "prompt_template"))
        get_string(at(node, "llm_tool_name"))
        _output_keys(node, path)
        _llm_params(node)
    elif kind == "llm_call":
        get_string(at(node, "prompt_template"))
        _output_keys(node, path)
        if "llm_params" in node:
            drops.append(Drop(path, "llm_params", "llm_call ignores llm_params", False))
    elif kind == "tool_call":
        get_string(at(node, "tool"))
        _output_keys(node, path)
        arguments = node.get("arguments")
        if isinstance(arguments, dict):
            for key, value in arguments.items():
                if not isinstance(value, str):
                    raise RuntimeRefusal(
                        "argument_not_string", f"Argument '{key}' is not a string"
                    )
    elif kind == "resource":
        rtype = get_string(at(node, "resource_type"))
        if rtype not in RESOURCE_TYPES:
            raise RuntimeRefusal("unknown_resource_type", f"Unknown resource_type '{rtype}'")
        get_string(at(node, "uri"))
        value_or(node, "scope", "global")
    elif kind == "fork":
        fork: Any = node.get("fork")
        if contains(fork, "branches"):
            _string_list(fork["branches"])
    elif kind == "join":
        join: Any = node.get("join")
        if contains(join, "wait_for"):
            _string_list(join["wait_for"])
        if contains(join, "merge_strategy"):
            get_string(join["merge_strategy"])
    elif kind == "generate_subgraph":
        get_string(at(node, "prompt_template"))
        _output_keys(node, path)
        value_or(node, "signature_validation", "strict")
    elif kind == "assert":
        get_string(at(node, "condition"))
        if "on_failure" in node and not isinstance(node["on_failure"], str):
            drops.append(Drop(path, "on_failure", "on_failure is not a string"))


def build_node(path: str, node: dict[str, Any]) -> RefNode | None:
    """``create_node_from_json``: the node, or None for a type it does not build.

    Raises RuntimeRefusal or TypeErrorJson where the reference throws.
    """
    kind = get_string(at(node, "type"))
    drops: list[Drop] = []
    nexts: list[str] = []
    if "next" in node:
        raw_next = node["next"]
        if isinstance(raw_next, str | list):
            nexts = _string_list(raw_next)
        else:
            drops.append(Drop(path, "next", f"next of type {json_type(raw_next)} is ignored"))
    metadata = value_or(node, "metadata", {})
    if "signature" in node:
        get_string(node["signature"])
    permissions = node.get("permissions")
    if isinstance(permissions, list) and any(not isinstance(p, str) for p in permissions):
        drops.append(
            Drop(path, "permissions", "permission entries that are not strings are dropped", False)
        )
    if kind not in BUILT_TYPES:
        return None
    _check_fields(kind, node, path, drops)
    if kind == "resource" and nexts:
        drops.append(Drop(path, "next", "a resource node keeps no next"))
        nexts = []
    return RefNode(path, kind, nexts, metadata, drops)
