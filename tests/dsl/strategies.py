"""Hypothesis strategies for AgenticDSL ASTs, shared by every part's tests.

    from tests.dsl.strategies import documents, subgraph_blocks, generation_documents

``documents()`` / ``subgraph_blocks()`` / ``node_blocks()`` build arbitrary ASTs that
``dumps`` can write (the round-trip laws hold for all of them; they need not pass
``validate``). ``generation_documents(...)`` builds documents inside the generation
profile of docs/canonical-form.md: one acyclic subgraph at the target path whose
references all resolve, i.e. what a grammar-constrained model may emit.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from hypothesis import strategies as st

from agentic_llm.dsl import (
    Assert,
    Assign,
    CodeletCall,
    Document,
    DslCall,
    End,
    ExecutionBudget,
    Fork,
    GenerateSubgraph,
    Join,
    LlmCall,
    Meta,
    Node,
    NodeBlock,
    Param,
    Permissions,
    Resources,
    Signature,
    Start,
    Subgraph,
    ToolCall,
    UnknownNode,
)

__all__ = [
    "texts",
    "identifiers",
    "node_ids",
    "paths",
    "json_values",
    "signatures",
    "permissions",
    "nodes",
    "subgraph_blocks",
    "node_blocks",
    "meta_blocks",
    "resources_blocks",
    "documents",
    "generation_subgraphs",
    "generation_documents",
    "template_texts",
]

# Any text a YAML document can carry: everything but lone surrogates.
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=24)
_LOWER = string.ascii_lowercase
_ID_TAIL = _LOWER + string.digits + "_"
# from_regex is slow to draw from; plain text strategies build the same languages.
identifiers = st.builds(
    str.__add__, st.sampled_from(_LOWER), st.text(st.sampled_from(_ID_TAIL), max_size=10)
)
node_ids = st.builds(
    str.__add__, st.sampled_from(_LOWER), st.text(st.sampled_from(_ID_TAIL), max_size=31)
)
_segments = st.text(
    st.sampled_from(string.ascii_letters + string.digits + "_-"), min_size=1, max_size=8
).filter(lambda s: s[0] != "-")


@st.composite
def paths(draw: st.DrawFn, prefix: str | None = None) -> str:
    """Absolute block paths, e.g. ``/dynamic/ab_1/x``."""
    root = prefix or draw(st.sampled_from(["/main", "/app", "/lib/x", "/dynamic", "/other"]))
    segs = draw(st.lists(_segments, min_size=1, max_size=3))
    return root.rstrip("/") + "/" + "/".join(segs)


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False),
    texts,
)
_keys = st.one_of(identifiers, texts)
# Two levels of nesting are enough to exercise the writer; deeper recursion only
# slows generation down.
json_values = st.one_of(
    _scalars,
    st.lists(_scalars, max_size=3),
    st.dictionaries(_keys, st.one_of(_scalars, st.lists(_scalars, max_size=2)), max_size=3),
    st.lists(st.dictionaries(_keys, _scalars, min_size=1, max_size=2), min_size=1, max_size=2),
)
_mappings = st.dictionaries(texts, json_values, max_size=3)
_str_mappings = st.dictionaries(texts, texts, max_size=3)
_str_tuples = st.lists(texts, max_size=3).map(tuple)

_type_names = st.sampled_from(
    ["string", "number", "integer", "boolean", "object", "array", "any", "null"]
)
_types = st.one_of(
    _type_names,
    st.builds(lambda a, b: f"array[{a}]", _type_names, _type_names),
    st.builds(lambda a, b: f"{a}|{b}", _type_names, _type_names),
)
_params = st.builds(
    Param, name=identifiers, type=st.one_of(st.none(), _types), required=st.booleans()
)
signatures = st.builds(
    Signature,
    inputs=st.lists(_params, max_size=3).map(tuple),
    outputs=st.lists(_params, max_size=3).map(tuple),
    version=st.one_of(st.none(), st.sampled_from(["1.0", "2.1", "0.10", "3.10.1", "1.0-rc1"])),
    stability=st.one_of(st.none(), st.sampled_from(["stable", "experimental", "deprecated"])),
)
permissions = st.builds(Permissions, items=_str_tuples)

_extra_keys = st.sampled_from(["x_note", "x_owner", "x_a1", "x_tags"])
_extras = st.one_of(st.none(), st.dictionaries(_extra_keys, json_values, min_size=1, max_size=2))


def _opt(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


def _common(with_id: bool) -> dict[str, st.SearchStrategy[Any]]:
    return {"id": _opt(texts) if with_id else st.none(), "next": _opt(_str_tuples)}


def _common_all(with_id: bool) -> dict[str, st.SearchStrategy[Any]]:
    return {
        **_common(with_id),
        "signature": _opt(signatures),
        "permissions": _opt(permissions),
        "metadata": _opt(_mappings),
        "on_error": _opt(texts),
        "on_success": _opt(texts),
        "expected_output": json_values,
        "context_merge_policy": json_values,
        "curriculum_level": _opt(texts),
        "extra": _extras,
    }


@st.composite
def _join(draw: st.DrawFn, c: dict[str, st.SearchStrategy[Any]]) -> Join:
    wait_for = draw(_opt(_str_tuples))
    mode = draw(_opt(st.sampled_from(["any_of", "all_of"]))) if wait_for is not None else None
    common = {k: draw(v) for k, v in c.items()}
    return Join(wait_for=wait_for, wait_mode=mode, merge_strategy=draw(_opt(texts)), **common)


def nodes(with_id: bool = True) -> st.SearchStrategy[Node]:
    """Any node of any type, every optional field sometimes present."""
    return st.one_of(_nodes(_common(with_id)), _nodes(_common_all(with_id)))


def _nodes(c: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Node]:
    return st.one_of(
        st.builds(Start, **c),
        st.builds(End, termination_mode=_opt(texts), output_keys=_opt(_str_tuples), **c),
        st.builds(Assign, assign=_opt(_str_mappings), **c),
        st.builds(
            ToolCall,
            tool=_opt(texts),
            arguments=_opt(_str_mappings),
            output_keys=_opt(_str_tuples),
            **c,
        ),
        st.builds(Assert, condition=_opt(texts), on_failure=_opt(texts), **c),
        st.builds(Fork, branches=_opt(_str_tuples), **c),
        _join(c),
        st.builds(
            GenerateSubgraph,
            prompt_template=_opt(texts),
            output_keys=_opt(_str_tuples),
            signature_validation=_opt(texts),
            on_signature_violation=_opt(texts),
            **c,
        ),
        st.builds(
            DslCall,
            prompt_template=_opt(texts),
            llm_tool_name=_opt(texts),
            llm_params=_opt(_mappings),
            output_keys=_opt(_str_tuples),
            **c,
        ),
        st.builds(
            LlmCall,
            prompt_template=_opt(texts),
            llm_params=_opt(_mappings),
            output_keys=_opt(_str_tuples),
            **c,
        ),
        st.builds(CodeletCall, runtime=_opt(texts), code=_opt(texts), security=json_values, **c),
        st.builds(
            UnknownNode, unknown_type=st.sampled_from(["custom_a", "loop", "resource", "x"]), **c
        ),
    )


def subgraph_blocks(path: str | None = None) -> st.SearchStrategy[Subgraph]:
    """Subgraph blocks (at ``path`` when given) with 0-4 arbitrary nodes."""
    return st.builds(
        Subgraph,
        path=st.just(path) if path is not None else paths(),
        nodes=st.lists(nodes(True), max_size=3).map(tuple),
        entry=_opt(texts),
        signature=_opt(signatures),
        permissions=_opt(permissions),
        metadata=_opt(_mappings),
        extra=_extras,
    )


def node_blocks(path: str | None = None) -> st.SearchStrategy[NodeBlock]:
    """Single-node blocks."""
    return st.builds(
        NodeBlock, path=st.just(path) if path is not None else paths(), node=nodes(False)
    )


_budget_ints = _opt(st.integers(min_value=-5, max_value=10**6))
meta_blocks = st.builds(
    Meta,
    version=_opt(texts),
    mode=_opt(st.one_of(st.sampled_from(["dev", "prod"]), texts)),
    entry_point=_opt(texts),
    execution_budget=_opt(
        st.builds(
            ExecutionBudget,
            max_nodes=_budget_ints,
            max_llm_calls=_budget_ints,
            max_duration_sec=_budget_ints,
            max_subgraph_depth=_budget_ints,
            max_snapshots=_budget_ints,
            snapshot_max_size_kb=_budget_ints,
        )
    ),
    extra=_extras,
)
_resource = st.builds(
    lambda t, rest: {"type": t, **rest},
    st.one_of(st.sampled_from(["tool", "runtime", "network", "generate_subgraph"]), texts),
    st.dictionaries(
        st.one_of(identifiers, texts).filter(lambda k: k != "type"), json_values, max_size=3
    ),
)
resources_blocks = st.builds(
    Resources, resources=st.lists(_resource, max_size=3).map(tuple), extra=_extras
)


_any_block = st.one_of(subgraph_blocks(), node_blocks())


@st.composite
def documents(draw: st.DrawFn, max_blocks: int = 3) -> Document:
    """Documents of 1..max_blocks blocks with distinct paths, sometimes with
    ``/__meta__`` and ``/__meta__/resources``."""
    blocks: list[Any] = []
    if draw(st.booleans()):
        blocks.append(draw(meta_blocks))
    if draw(st.booleans()):
        blocks.append(draw(resources_blocks))
    n = draw(st.integers(min_value=0 if blocks else 1, max_value=max_blocks))
    used: set[str] = set()
    for i in range(n):
        # Strategies are built once at import: building them per draw is what makes
        # hypothesis slow (it analyses every new strategy object).
        block = draw(_any_block)
        path = block.path if block.path not in used else f"{block.path}/b{i}"
        used.add(path)
        blocks.append(replace(block, path=path))
    if len(blocks) > 1:
        blocks = draw(st.permutations(blocks))
    return Document(tuple(blocks))


# -- the generation profile ------------------------------------------------------

_GEN_TYPES = (
    "end",
    "assign",
    "tool_call",
    "assert",
    "fork",
    "join",
    "generate_subgraph",
    "dsl_call",
    "llm_call",
    "codelet_call",
)
_plain = st.text(
    st.sampled_from(string.ascii_letters + string.digits + " .,:;!?-_'\"\\/()é漢\t"),
    max_size=30,
)


@st.composite
def template_texts(draw: st.DrawFn, variables: Sequence[str] = ("city", "budget", "x")) -> str:
    """Text with zero or more ``{{ var }}`` / ``{{ var.field }}`` placeholders."""
    parts = []
    for _ in range(draw(st.integers(0, 3))):
        parts.append(draw(_plain))
        if variables and draw(st.booleans()):
            var = draw(st.sampled_from(list(variables)))
            parts.append("{{ " + var + (".name" if draw(st.booleans()) else "") + " }}")
    return "".join(parts)


def _schemas(
    tool_schemas: Mapping[str, Any] | None,
) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    if tool_schemas is None:
        return {"web_search": (("query",), ("limit",)), "rank": (("items",), ())}
    return {name: (tuple(req), tuple(opt)) for name, (req, opt) in tool_schemas.items()}


# Module-level strategies: drawing from prebuilt strategies is much faster than
# building new ones inside a composite on every draw.
_index = st.integers(min_value=0, max_value=2**16)
_flag = st.booleans()
_small = st.integers(min_value=1, max_value=3)
_id_pool = st.lists(node_ids.filter(lambda i: i != "start"), max_size=10, unique=True)
_key_pool = st.lists(identifiers, min_size=1, max_size=2, unique=True)
_default_texts = template_texts()


def _pick(draw: st.DrawFn, items: Sequence[Any]) -> Any:
    return items[draw(_index) % len(items)]


def _some(draw: st.DrawFn, items: Sequence[Any], most: int) -> list[Any]:
    """1..most distinct items, in their order in ``items``."""
    wanted = min(len(items), draw(_small), most)
    start = draw(_index) % len(items)
    chosen = {items[(start + k) % len(items)] for k in range(wanted)}
    return [x for x in items if x in chosen]


@st.composite
def generation_subgraphs(
    draw: st.DrawFn,
    target_path: str | None = None,
    tool_schemas: Mapping[str, Any] | None = None,
    max_nodes: int | None = None,
    allowed_types: Sequence[str] | None = None,
    external_paths: Sequence[str] = (),
    variables: Sequence[str] = ("city", "budget", "x"),
) -> Subgraph:
    """A subgraph inside the generation profile (docs/canonical-form.md).

    Every reference resolves (to a later node, so the graph is acyclic, or to one of
    ``external_paths``), and no two nodes write the same key, so the result passes
    ``validate`` with a policy granting ``tool_schemas`` and ``external_paths``.

    Args:
        target_path: the plan's target (default: a drawn ``/dynamic/...`` path).
        tool_schemas: tool name -> (required keys, optional keys); the tools granted.
            An empty mapping removes tool_call from the drawable types.
        max_nodes: most nodes, ``start`` included (default 8, at least 1).
        allowed_types: node types besides ``start`` that may appear.
        external_paths: targets outside the block that ``next`` may use.
        variables: context variables templates may read.
    """
    target = target_path or draw(paths(prefix="/dynamic"))
    schemas = _schemas(tool_schemas)
    tools = sorted(schemas)
    limit = max(1, max_nodes if max_nodes is not None else 8)
    types = [t for t in (allowed_types or _GEN_TYPES) if t in _GEN_TYPES]
    if not schemas:
        types = [t for t in types if t != "tool_call"]
    text = (
        _default_texts if tuple(variables) == ("city", "budget", "x") else template_texts(variables)
    )
    pool = draw(_id_pool)
    ids = ["start"] + pool[: draw(_index) % min(limit, len(pool) + 1)]
    kinds = ["start"]
    for i in range(1, len(ids)):
        options = [
            t
            for t in types
            if not (t == "join" and i < 2)
            and not (t == "fork" and i == len(ids) - 1 and not external_paths)
        ]
        kinds.append(_pick(draw, options) if options else "end")
    built: list[Node] = []
    for i, (node_id, kind) in enumerate(zip(ids, kinds, strict=True)):
        # Keys carry the node's index so that no two nodes write the same key (a join
        # with the default merge strategy would report ERR_CTX_MERGE_CONFLICT).
        def out_keys(i: int = i) -> tuple[str, ...]:
            return tuple(f"{k}_{i}" for k in draw(_key_pool))

        later = [f"{target}/{n}" for n in ids[i + 1 :]] + list(external_paths)
        earlier = [f"{target}/{n}" for n in ids[1:i]]
        nxt = tuple(_some(draw, later, 2)) if later else ()
        if kind != "start" and draw(_flag):
            nxt = ()
        opt_next = nxt or None
        if kind == "start":
            node: Node = Start(id=node_id, next=nxt)
        elif kind == "end":
            mode = _pick(draw, ["hard", "soft", None])
            node = End(id=node_id, termination_mode=mode, next=opt_next)
        elif kind == "assign":
            node = Assign(id=node_id, assign={k: draw(text) for k in out_keys()}, next=opt_next)
        elif kind == "tool_call":
            tool = _pick(draw, tools)
            required, optional = schemas[tool]
            chosen = [k for k in optional if draw(_flag)]
            args = {k: draw(text) for k in (*required, *chosen)}
            node = ToolCall(
                id=node_id, tool=tool, arguments=args, output_keys=out_keys(), next=opt_next
            )
        elif kind == "assert":
            on_failure = _pick(draw, [*later, None]) if later else None
            node = Assert(
                id=node_id,
                condition="{{ " + _pick(draw, list(variables) or ["true"]) + " }}",
                on_failure=on_failure,
                next=opt_next,
            )
        elif kind == "fork":
            branches = tuple(_some(draw, later, 3)) if later else ()
            node = Fork(id=node_id, branches=branches or None, next=opt_next)
        elif kind == "join":
            wait = tuple(_some(draw, earlier, 3)) if earlier else ()
            node = Join(id=node_id, wait_for=wait or None, next=opt_next)
        elif kind == "generate_subgraph":
            node = GenerateSubgraph(
                id=node_id, prompt_template=draw(text), output_keys=out_keys(), next=opt_next
            )
        elif kind == "dsl_call":
            node = DslCall(
                id=node_id,
                prompt_template=draw(text),
                llm_tool_name=draw(identifiers),
                output_keys=out_keys(),
                next=opt_next,
            )
        elif kind == "llm_call":
            node = LlmCall(
                id=node_id, prompt_template=draw(text), output_keys=out_keys(), next=opt_next
            )
        else:
            node = CodeletCall(
                id=node_id,
                runtime="python3",
                code=draw(_plain),
                security=_pick(draw, ["sandbox", "strict"]),
                next=opt_next,
            )
        built.append(node)
    return Subgraph(path=target, entry="start", nodes=tuple(built))


@st.composite
def generation_documents(
    draw: st.DrawFn, target_path: str | None = None, **kwargs: Any
) -> Document:
    """A one-block Document from :func:`generation_subgraphs` (same arguments)."""
    return Document((draw(generation_subgraphs(target_path, **kwargs)),))
