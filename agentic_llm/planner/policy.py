"""Namespace, permission and node-type policy: what a plan may write, call and use.

These are pure functions over a request, each raising ``PlanRefusal`` with the
relevant ``ERR_*`` code, so ``plan()`` reads as a sequence of decisions.
"""

from __future__ import annotations

import re

from agentic_llm.dsl.paths import PATH_RE, VERSIONED_PATH_RE, non_ascii_path
from agentic_llm.dsl.stdlib import standard_library
from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.planner.request import GenerateRequest, LibraryEntry, ToolSpec

__all__ = [
    "PlanRefusal",
    "NODE_TYPES",
    "STRUCTURAL_TYPES",
    "TOOL_ARG_TYPES",
    "ID_PATTERN",
    "NAME_PATTERN",
    "check_target",
    "grant_tools",
    "grant_library",
    "node_whitelist",
    "template_var_names",
    "MAX_NODES_LIMIT",
    "MAX_TOOLS_LIMIT",
]

# Every node type the language defines, in the order listings and grammars use.
NODE_TYPES: tuple[str, ...] = (
    "start", "end", "assign", "tool_call", "assert", "fork", "join",
    "generate_subgraph", "dsl_call", "llm_call", "codelet_call",
)
# Always on the whitelist: a subgraph needs a start and a way to finish.
STRUCTURAL_TYPES: tuple[str, ...] = ("start", "end")
# Node types that are content and need no permission.
_BASE_TYPES: tuple[str, ...] = ("assign", "assert", "fork", "join")
# Node types that need an explicit permission entry of the same name when the
# caller sends a permission list (codelet_call needs one even without a list).
_PERMISSIONED_TYPES: tuple[str, ...] = ("generate_subgraph", "dsl_call", "llm_call")

TOOL_ARG_TYPES = frozenset({"string", "integer", "number", "boolean", "array", "object", "any"})
# A generated node id (see docs/canonical-form.md, generation profile).
ID_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,31}")
# Tool names, argument keys and context variable names usable in the grammar.
NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")
_VAR_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
# Block paths: absolute, ASCII letters, digits, '_' and '-', no empty segment; the
# same rule as the grammar's and the validator's (agentic_llm.dsl.paths).
_PATH_PATTERN = PATH_RE
# Reference targets may carry a version suffix (/lib/x@v1).
_TARGET_PATTERN = VERSIONED_PATH_RE

MAX_NODES_LIMIT = 256
MAX_TOOLS_LIMIT = 2048


class PlanRefusal(AgenticError):
    """The planner will not plan this request; ``code`` says why."""


def _refuse(code: ErrorCode, message: str, **details: object) -> PlanRefusal:
    return PlanRefusal(code, message, **details)


def _under(path: str, prefix: str) -> bool:
    prefix = prefix.rstrip("/")
    return path == prefix or path.startswith(prefix + "/")


_SIGNATURE_FORBIDDEN = ("\n", "\r", "`", "\x00")


def check_signature_text(signature: str | None, field: str) -> None:
    """Refuse a signature that would break out of its line or code fence
    (newlines, backticks, NUL): ERR_INVALID_REQUEST naming ``field``."""
    if not signature:
        return
    bad = [c for c in _SIGNATURE_FORBIDDEN if c in signature]
    if bad:
        raise _refuse(ErrorCode.INVALID_REQUEST,
                      f"{field} must be one line without backticks; it holds {bad!r}",
                      field=field)


def check_target(req: GenerateRequest) -> tuple[str, str | None]:
    """Check the target path against the namespace policy.

    Returns ``(namespace, signature)``: the namespace root the block is written in
    and the signature the block must carry (``None`` when none is required).
    """
    path = req.target_path
    if non_ascii_path(path):
        raise _refuse(ErrorCode.INVALID_REQUEST,
                      f"target_path {path!r} holds non-ASCII characters: paths use ASCII "
                      "letters, digits, '_' and '-' only", path=path, field="target_path")
    if not _PATH_PATTERN.fullmatch(path):
        raise _refuse(ErrorCode.INVALID_PATH,
                      f"target_path {path!r} is malformed: use an absolute path of word "
                      "characters and '-' such as /dynamic/plan_1", path=path)
    if len(path) > 200:
        raise _refuse(ErrorCode.INVALID_PATH, f"target_path is {len(path)} characters; at most 200")
    check_signature_text(req.signature, "signature")
    root = "/" + path.split("/")[1]
    granted = [n for n in req.namespaces if _under(path, n)]
    if root == "/__meta__":
        raise _refuse(ErrorCode.NAMESPACE_VIOLATION, "/__meta__ is metadata and cannot be generated",
                      path=path)
    if root == "/dynamic":
        if path == "/dynamic":
            raise _refuse(ErrorCode.INVALID_PATH,
                          "target_path must name a block under /dynamic/, e.g. /dynamic/plan_1")
        return "/dynamic", req.signature
    if root == "/lib":
        if not granted:
            raise _refuse(ErrorCode.NAMESPACE_VIOLATION,
                          f"{path} is in the read-only /lib namespace; generated code goes "
                          "under /dynamic/ (or grant a /lib prefix in 'namespaces')", path=path)
        if not req.signature:
            raise _refuse(ErrorCode.SIGNATURE_REQUIRED,
                          f"a /lib target ({path}) needs a 'signature' in the request", path=path)
        return "/lib", req.signature
    if not granted:
        raise _refuse(ErrorCode.NAMESPACE_VIOLATION,
                      f"generated code goes under /dynamic/, not {root}/ (grant the prefix "
                      "in 'namespaces' to allow it)", path=path)
    return root, req.signature


def _check_tool(tool: ToolSpec, i: int) -> None:
    if not NAME_PATTERN.fullmatch(tool.name):
        raise _refuse(ErrorCode.INVALID_REQUEST,
                      f"tools[{i}].name {tool.name!r} is not a valid tool name "
                      "(letters, digits, '_', '.', '-'; starts with a letter or '_')")
    seen: set[str] = set()
    for j, arg in enumerate(tool.arguments):
        where = f"tools[{i}].arguments[{j}]"
        if not NAME_PATTERN.fullmatch(arg.name):
            raise _refuse(ErrorCode.INVALID_REQUEST,
                          f"{where}.name {arg.name!r} is not a valid argument key")
        if arg.name in seen:
            raise _refuse(ErrorCode.INVALID_REQUEST,
                          f"tool {tool.name!r} declares argument {arg.name!r} twice")
        seen.add(arg.name)
        if arg.type not in TOOL_ARG_TYPES:
            raise _refuse(ErrorCode.INVALID_REQUEST,
                          f"{where}.type {arg.type!r} of tool {tool.name!r} is not a known "
                          f"schema type; use one of {sorted(TOOL_ARG_TYPES)}")


def grant_tools(req: GenerateRequest) -> tuple[tuple[ToolSpec, ...], tuple[str, ...]]:
    """Request tools intersected with permissions: ``(granted, denied names)``.

    Without a permission list every offered tool is granted; with one, a tool needs
    ``tool:<name>`` or ``tool:*`` (spec spelling ``tool: <name>`` is normalised by the request).
    """
    if len(req.tools) > MAX_TOOLS_LIMIT:
        raise _refuse(ErrorCode.INVALID_REQUEST,
                      f"{len(req.tools)} tools offered; at most {MAX_TOOLS_LIMIT}")
    names: set[str] = set()
    for i, tool in enumerate(req.tools):
        _check_tool(tool, i)
        if tool.name in names:
            raise _refuse(ErrorCode.INVALID_REQUEST, f"tool {tool.name!r} is offered twice")
        names.add(tool.name)
    perms = req.context.permissions
    if perms is None or "tool:*" in perms:
        return req.tools, ()
    allowed = {p[5:] for p in perms if p.startswith("tool:")}
    granted = tuple(t for t in req.tools if t.name in allowed)
    denied = tuple(t.name for t in req.tools if t.name not in allowed)
    return granted, denied


def _standard_entries(lib_grants: list[str], taken: set[str]) -> list[LibraryEntry]:
    """Standard-library entries under a granted ``lib:`` prefix, except paths the
    request lists itself (its own entry wins)."""
    out = []
    for entry in standard_library():
        if entry.path in taken or entry.versioned_path in taken:
            continue
        if any(_under(entry.path, g) for g in lib_grants):
            out.append(LibraryEntry(entry.path, entry.signature,
                                    f"standard library v{entry.version}, {entry.stability}"))
    return out


def grant_library(req: GenerateRequest) -> tuple[LibraryEntry, ...]:
    """Library entries the plan may reference: well-formed ``/lib`` paths, and with a
    permission list holding ``lib:<prefix>`` entries only those under a granted prefix.

    The standard library (:mod:`agentic_llm.dsl.stdlib`) is callable where a
    ``lib:<prefix>`` permission grants its paths (``lib:/lib`` grants all of it)."""
    out: list[LibraryEntry] = []
    seen: set[str] = set()
    perms = req.context.permissions or ()
    lib_grants = [p[4:] for p in perms if p.startswith("lib:")]
    for i, entry in enumerate(req.library):
        if not _TARGET_PATTERN.fullmatch(entry.path) or not entry.path.startswith("/lib/"):
            raise _refuse(ErrorCode.INVALID_PATH,
                          f"library[{i}].path {entry.path!r} is not a /lib path "
                          "(e.g. /lib/math/add or /lib/reasoning/try_catch@v1)")
        if entry.path in seen:
            raise _refuse(ErrorCode.INVALID_REQUEST, f"library path {entry.path} is listed twice")
        seen.add(entry.path)
        check_signature_text(entry.signature, f"library[{i}].signature")
        if lib_grants and not any(_under(entry.path.split("@")[0], g) for g in lib_grants):
            continue
        out.append(entry)
    out.extend(_standard_entries(lib_grants, seen))
    return tuple(out)


def node_whitelist(req: GenerateRequest, granted_tools: tuple[ToolSpec, ...]) -> tuple[str, ...]:
    """The node types the generated subgraph may use, in ``NODE_TYPES`` order."""
    perms = req.context.permissions
    allowed = set(STRUCTURAL_TYPES) | set(_BASE_TYPES)
    if granted_tools:
        allowed.add("tool_call")
    for t in _PERMISSIONED_TYPES:
        if perms is None or t in perms:
            allowed.add(t)
    if req.budget.max_depth <= 0:
        allowed.discard("generate_subgraph")
    if perms is not None and "codelet_call" in perms:
        allowed.add("codelet_call")
    if req.node_types is not None:
        unknown = sorted(set(req.node_types) - set(NODE_TYPES))
        if unknown:
            raise _refuse(ErrorCode.UNKNOWN_NODE_TYPE,
                          f"node_types lists unknown type(s) {unknown}; known: {list(NODE_TYPES)}")
        wanted = set(req.node_types) | set(STRUCTURAL_TYPES)
        content = set(req.node_types) - set(STRUCTURAL_TYPES)
        usable = content & allowed
        if content and not usable:
            why = []
            if "tool_call" in content and not granted_tools:
                why.append("tool_call needs at least one granted tool")
            if "generate_subgraph" in content and req.budget.max_depth <= 0:
                why.append("generate_subgraph needs max_depth >= 1")
            raise _refuse(ErrorCode.UNSUPPORTED_CAPABILITY,
                          f"none of the requested node types {sorted(content)} is permitted"
                          + (f" ({'; '.join(why)})" if why else ""))
        allowed &= wanted
    return tuple(t for t in NODE_TYPES if t in allowed)


def template_var_names(req: GenerateRequest) -> tuple[str, ...]:
    """Context variables that generated templates may reference, sorted."""
    return tuple(sorted(n for n in req.context.available_vars if _VAR_PATTERN.fullmatch(n)))
