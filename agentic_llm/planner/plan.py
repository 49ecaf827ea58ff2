"""``plan(request) -> ExecutionPlan``: every decision fixed before generation starts.

The plan is what the grammar compiler, the caches and the engine read: target path
and namespace, node-type whitelist, granted tools, callable library paths, budget,
token and KV estimates, and the cache key. A request that cannot be planned raises
``PlanRefusal`` (an ``AgenticError``) with the reason.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from dataclasses import replace as _replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from agentic_llm import __version__
from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.planner import policy
from agentic_llm.planner.constraints import check_feasible
from agentic_llm.planner.policy import PlanRefusal
from agentic_llm.planner.prompt import STABLE_PROMPT_PREFIX, render_prompt
from agentic_llm.planner.request import GenerateRequest, LibraryEntry, ToolSpec

if TYPE_CHECKING:
    from agentic_llm.dsl import ValidationPolicy
    from agentic_llm.planner.chat import ChatTemplate

__all__ = ["CacheKey", "ExecutionPlan", "plan", "PlanRefusal", "ENGINE_VERSION",
           "KV_BLOCK_SIZE", "minimal_document", "LibraryResolution"]

# Bumped when what a plan makes the model write changes (grammar or prompt), so
# cached subgraphs from an older engine are never reused.
ENGINE_VERSION = f"{__version__}+g1"
KV_BLOCK_SIZE = 16
# Conservative token costs for estimates (Qwen-style BPE averages about 3.5 characters
# per token on this text; the minimum uses 4.5 so a request is never refused for a
# budget that would in fact hold the document).
_CHARS_PER_TOKEN = 3.5
_CHARS_PER_TOKEN_MIN = 4.5
_TOKENS_PER_NODE = 38


class LibraryResolution(Protocol):
    """What a library resolver (``agentic_llm.library.LibraryResolver``) returns."""

    library: tuple[LibraryEntry, ...]
    versions: tuple[tuple[str, int], ...]
    offered: tuple[str, ...]


class _Resolver(Protocol):
    def resolve(self, req: GenerateRequest) -> LibraryResolution: ...


class CacheKey(NamedTuple):
    """What identifies a generated subgraph for the subgraph cache.

    ``structure_hash`` covers the goal text, the variable names and types and the
    plan's capabilities; ``value_hash`` covers the variable values (a fuzzy hit can
    rebind those); ``signature_hash`` covers tool schemas, library signatures and the
    target signature.
    """

    path: str
    structure_hash: str
    value_hash: str
    signature_hash: str
    engine_version: str

    def as_string(self) -> str:
        return "|".join(self)


def _digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _reserved_targets(target_runtime: str = "agenticrt") -> frozenset[str]:
    """Targets the agent runtime defines itself (its ``/__system__`` end nodes).

    The spec's soft-end shorthand ``/end_soft`` is only offered for the ``spec``
    target: the reference runtime registers ``/__system__/end_soft`` alone, and its
    graph build refuses a ``next`` naming ``/end_soft``."""
    from agentic_llm.dsl.policy import RESERVED_TARGETS

    if target_runtime == "agenticrt":
        return frozenset(t for t in RESERVED_TARGETS if t.startswith("/__system__/"))
    return RESERVED_TARGETS


def minimal_document(target_path: str, signature: str | None, external: str | None) -> str:
    """The smallest document the generation profile allows for this target.

    ``external``: an allowed external target for the start node (one node in all);
    without one the start node points at an end node (two nodes).
    """
    lines = [f"### AgenticDSL `{target_path}`", "```yaml", "# --- BEGIN AgenticDSL ---",
             "graph_type: subgraph"]
    if signature:
        lines.append(f"signature: {json.dumps(signature, ensure_ascii=False)}")
    lines += ["entry: \"start\"", "nodes:", "  - id: \"start\"", "    type: start"]
    if external:
        lines.append(f"    next: [\"{external}\"]")
    else:
        lines += [f"    next: [\"{target_path}/end\"]", "  - id: \"end\"", "    type: end"]
    lines += ["# --- END AgenticDSL ---", "```"]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ExecutionPlan:
    """Everything fixed about one generation before the model runs.

    Attributes:
        request: the request this plan was made for.
        target_path: the block path the model writes.
        namespace: the namespace root of ``target_path`` (``/dynamic`` normally).
        signature: the signature the block must carry, or ``None``.
        node_types: node types the generated subgraph may use.
        tools: granted tools (request tools intersected with permissions).
        denied_tools: names of offered tools the permissions did not grant.
        library: callable library entries.
        external_targets: paths outside the block a reference may name.
        template_vars: context variables templates may use (``{{ name }}``).
        max_nodes, max_tokens, max_depth: the budget.
        min_nodes: nodes in the smallest valid subgraph for this plan.
        est_prompt_tokens, est_output_tokens, est_kv_pages: estimates for admission.
        cache_key: the subgraph cache key parts.
        library_versions: ``(path, version)`` the library registry pinned for
            unversioned ``/lib`` entries (also part of the subgraph-cache key).
        offered: archived ``/lib/solved`` entries offered to this request.
        target_runtime: the runtime the document is written for: ``agenticrt`` (the
            reference runtime: ``/__system__/end_soft``, no string it reads as a
            number, boolean or null, blocks under ``MAX_BLOCK_BYTES``) or ``spec``.
    """

    request: GenerateRequest
    target_path: str
    namespace: str
    signature: str | None
    node_types: tuple[str, ...]
    tools: tuple[ToolSpec, ...]
    denied_tools: tuple[str, ...]
    library: tuple[LibraryEntry, ...]
    external_targets: tuple[str, ...]
    template_vars: tuple[str, ...]
    max_nodes: int
    max_tokens: int
    max_depth: int
    min_nodes: int
    est_prompt_tokens: int
    est_output_tokens: int
    est_kv_pages: int
    cache_key: CacheKey
    engine_version: str = ENGINE_VERSION
    library_versions: tuple[tuple[str, int], ...] = ()
    offered: tuple[str, ...] = ()
    target_runtime: str = "agenticrt"
    _prompt: str = field(default="", repr=False, compare=False)

    @property
    def stable_prompt_prefix(self) -> str:
        """The part of the prompt shared by every plan (its KV pages are reusable)."""
        return STABLE_PROMPT_PREFIX

    def render_prompt(self, chat: ChatTemplate | None = None) -> str:
        """The model's prompt: ``stable_prompt_prefix`` then the per-request part.

        With ``chat`` (the model's chat template) the two parts become the system and
        user turns, unless the request's ``flags.raw_prompt`` turns that off.
        """
        if chat is not None and not self.request.flags.raw_prompt:
            from agentic_llm.planner.chat import render_chat_prompt

            return render_chat_prompt(self, chat)
        return self._prompt or render_prompt(self)

    @cached_property
    def tool_map(self) -> dict[str, ToolSpec]:
        return {t.name: t for t in self.tools}

    def validation_policy(self) -> ValidationPolicy:
        """The validator policy every generated document must pass with zero errors."""
        from agentic_llm.dsl import ValidationPolicy

        return ValidationPolicy(
            granted_tools=frozenset(self.tool_map),
            tool_schemas={t.name: (t.required_keys, t.optional_keys) for t in self.tools},
            available_vars=frozenset(self.request.context.available_vars),
            external_paths=frozenset(self.external_targets),
            allowed_node_types=frozenset(self.node_types),
            max_nodes=self.max_nodes,
            writable_prefixes=(self.namespace + "/",),
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary (what ``agentic-llm plan --json`` prints)."""
        return {
            "target_path": self.target_path,
            "namespace": self.namespace,
            "signature": self.signature,
            "node_types": list(self.node_types),
            "tools": [t.name for t in self.tools],
            "denied_tools": list(self.denied_tools),
            "external_targets": list(self.external_targets),
            "template_vars": list(self.template_vars),
            "budget": {"max_nodes": self.max_nodes, "max_tokens": self.max_tokens,
                       "max_depth": self.max_depth, "min_nodes": self.min_nodes},
            "estimates": {"prompt_tokens": self.est_prompt_tokens,
                          "output_tokens": self.est_output_tokens,
                          "kv_pages": self.est_kv_pages, "kv_block_size": KV_BLOCK_SIZE},
            "cache_key": self.cache_key._asdict(),
            "engine_version": self.engine_version,
            "library": [e.to_json() for e in self.library],
            "library_versions": {p: f"v{v}" for p, v in self.library_versions},
            "offered": list(self.offered),
            "target_runtime": self.target_runtime,
        }


def _cache_key(req: GenerateRequest, node_types: tuple[str, ...], tools: tuple[ToolSpec, ...],
               library: tuple[LibraryEntry, ...], signature: str | None) -> CacheKey:
    structure = {
        "prompt": " ".join(req.prompt.split()),
        "vars": dict(sorted(req.context.available_vars.items())),
        "types": list(node_types),
        "max_nodes": req.budget.max_nodes,
        "max_depth": req.budget.max_depth,
        "runtime": req.target_runtime,
    }
    if not req.constraints.empty:
        structure["constraints"] = req.constraints.to_json()
    signatures = {
        "tools": [t.to_json() for t in sorted(tools, key=lambda t: t.name)],
        "library": sorted([e.path, e.signature] for e in library),
        "target": signature,
    }
    return CacheKey(req.target_path, _digest(structure), _digest(dict(req.context.values)),
                    _digest(signatures), ENGINE_VERSION)


def plan(req: GenerateRequest, *, library: _Resolver | None = None) -> ExecutionPlan:
    """Plan ``req`` or refuse it.

    ``library``: a resolver that pins unversioned ``/lib`` entries to the version the
    registry gives this request and adds archived solutions (see
    ``agentic_llm.library``); without one the request's entries are used as given.

    Raises:
        PlanRefusal: ERR_NAMESPACE_VIOLATION (target outside the writable
            namespaces), ERR_SIGNATURE_REQUIRED, ERR_INVALID_PATH,
            ERR_INVALID_REQUEST (bad tool schemas, limits), ERR_UNKNOWN_NODE_TYPE,
            ERR_UNSUPPORTED_CAPABILITY (no requested node type permitted) or
            ERR_BUDGET_EXCEEDED (not even a minimal valid subgraph fits).
    """
    namespace, signature = policy.check_target(req)
    tools, denied = policy.grant_tools(req)
    resolution = library.resolve(req) if library is not None else None
    granted = policy.grant_library(req if resolution is None else
                                   _replace(req, library=resolution.library))
    node_types = policy.node_whitelist(req, tools)
    if req.target_runtime == "agenticrt":
        # the reference builds no node of the other types (codelet_call): it drops
        # them, and a reference to one fails its graph build
        from agentic_llm.dsl.conformance.construct import BUILT_TYPES

        node_types = tuple(t for t in node_types if t in BUILT_TYPES)
    externals = tuple(sorted({e.path for e in granted} | set(_reserved_targets(req.target_runtime))))

    b = req.budget
    if b.max_nodes > policy.MAX_NODES_LIMIT:
        raise PlanRefusal(ErrorCode.INVALID_REQUEST,
                          f"budget.max_nodes is {b.max_nodes}; at most {policy.MAX_NODES_LIMIT}")
    min_nodes = 1 if externals else 2
    if b.max_nodes < min_nodes:
        why = ("max_nodes is 0" if b.max_nodes == 0 else
               f"max_nodes is {b.max_nodes} but a subgraph needs a start and an end node "
               "(or a library path to continue to)")
        raise PlanRefusal(ErrorCode.BUDGET_EXCEEDED,
                          f"no valid subgraph fits the budget: {why}",
                          max_nodes=b.max_nodes, min_nodes=min_nodes)
    try:
        check_feasible(req.constraints, granted=[t.name for t in tools], denied=denied,
                       node_types=node_types, max_nodes=b.max_nodes)
    except AgenticError as exc:
        raise PlanRefusal(exc.code, exc.message, **exc.details) from None
    minimal = minimal_document(req.target_path, signature, externals[0] if externals else None)
    min_tokens = math.ceil(len(minimal) / _CHARS_PER_TOKEN_MIN)
    if b.max_tokens < min_tokens:
        raise PlanRefusal(ErrorCode.BUDGET_EXCEEDED,
                          f"no valid subgraph fits the budget: max_tokens is {b.max_tokens} "
                          f"but the smallest valid subgraph takes about {min_tokens} tokens",
                          max_tokens=b.max_tokens, min_tokens=min_tokens)

    est_output = min(b.max_tokens,
                     math.ceil(len(minimal) / _CHARS_PER_TOKEN) + _TOKENS_PER_NODE * (b.max_nodes - 1))
    partial = ExecutionPlan(
        request=req, target_path=req.target_path, namespace=namespace, signature=signature,
        node_types=node_types, tools=tools, denied_tools=denied, library=granted,
        external_targets=externals, template_vars=policy.template_var_names(req),
        max_nodes=b.max_nodes, max_tokens=b.max_tokens, max_depth=b.max_depth,
        min_nodes=min_nodes, est_prompt_tokens=0, est_output_tokens=est_output,
        est_kv_pages=0, cache_key=_cache_key(req, node_types, tools, granted, signature),
        library_versions=resolution.versions if resolution is not None else (),
        offered=tuple(p for p in (resolution.offered if resolution is not None else ())
                      if any(e.path == p for e in granted)),
        target_runtime=req.target_runtime,
    )
    prompt = render_prompt(partial)
    est_prompt = math.ceil(len(prompt) / _CHARS_PER_TOKEN)
    pages = math.ceil((est_prompt + est_output) / KV_BLOCK_SIZE)
    return ExecutionPlan(**{**partial.__dict__, "est_prompt_tokens": est_prompt,
                            "est_kv_pages": pages, "_prompt": prompt})
