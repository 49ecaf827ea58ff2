"""Completeness: canonical documents inside the generation profile are accepted token by
token, tokenized the way the real (151k Qwen) tokenizer splits them.

The strategy builds a graph top-down (every node after ``start`` is referenced by an
earlier node before it is declared), draws fields per node type, renders with
``agentic_llm.dsl.dumps`` and checks that the validator agrees before feeding it.
"""

from __future__ import annotations

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentic_llm.dsl import (
    Assert,
    Assign,
    Document,
    End,
    Fork,
    GenerateSubgraph,
    Join,
    LlmCall,
    Start,
    Subgraph,
    ToolCall,
    check_text,
    dumps,
)
from agentic_llm.grammar.walk import check_text as feed
from agentic_llm.planner import GenerateRequest, plan

from .runtime_check import conforms

TARGET = "/dynamic/plan_1"
REQUEST = {
    "target_path": TARGET, "prompt": "x",
    "context": {"available_vars": {"city": "string", "budget": "number"}},
    "tools": [{"name": "web_search", "arguments": [{"name": "query"}, {"name": "limit", "required": False}]},
              {"name": "rank", "arguments": [{"name": "items"}, {"name": "by", "required": False},
                                             {"name": "order"}]},
              {"name": "ping", "arguments": []}],
    "library": [{"path": "/lib/math/add", "signature": "(a: number, b: number) -> sum: number"}],
    "budget": {"max_nodes": 8, "max_tokens": 4096, "max_depth": 1},
}
PLAN = plan(GenerateRequest.from_json({**REQUEST, "target_runtime": "spec"}))
# the default target: the reference runtime (no string it misreads, see runtime_check)
RT_PLAN = plan(GenerateRequest.from_json(REQUEST))
TOOLS = {t.name: t for t in PLAN.tools}

_chars = st.sampled_from(string.ascii_letters + string.digits + " .,:;!?-_'\"\\/()é漢\t\n}")
_text = st.lists(st.one_of(st.text(_chars, max_size=12),
                           st.sampled_from(["{{ city }}", "{{ budget }}"])), max_size=4).map("".join)
_ids = st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True).filter(lambda s: s != "start"),
                min_size=0, max_size=7, unique=True)
_key = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
_types = st.sampled_from(["end", "assign", "tool_call", "assert", "fork", "join",
                          "generate_subgraph", "llm_call"])


@st.composite
def documents(draw: st.DrawFn) -> str:
    ids = ["start"] + draw(_ids)
    n = len(ids)
    nxt: list[list[str]] = [[] for _ in range(n)]
    for i in range(1, n):  # each node is referenced by an earlier one
        nxt[draw(st.integers(0, i - 1))].append(ids[i])
    for i in range(n):  # extra forward edges keep the graph acyclic
        for j in range(i + 1, n):
            if ids[j] not in nxt[i] and draw(st.integers(0, 5)) == 0:
                nxt[i].append(ids[j])
    if not nxt[0]:
        nxt[0].append("/lib/math/add")
    kinds = ["start"] + [draw(_types) for _ in range(1, n)]
    nodes = []
    for i, (nid, kind) in enumerate(zip(ids, kinds, strict=True)):
        refs = tuple(r if r.startswith("/") else f"{TARGET}/{r}" for r in nxt[i])
        if kind == "fork" and not refs:
            kind = "end"
        if kind == "join" and i < 2:
            kind = "assign"
        out = tuple(f"{k}_{i}" for k in draw(st.lists(_key, min_size=1, max_size=2, unique=True)))
        rest = refs or None
        if kind == "start":
            node = Start(id=nid, next=refs)
        elif kind == "end":
            node = End(id=nid, termination_mode=draw(st.sampled_from([None, "hard", "soft"])), next=rest)
        elif kind == "assign":
            node = Assign(id=nid, assign={k: draw(_text) for k in out}, next=rest)
        elif kind == "tool_call":
            tool = TOOLS[draw(st.sampled_from(sorted(TOOLS)))]
            keys = [a.name for a in tool.arguments if a.required or draw(st.booleans())]
            args = {k: draw(_text) for k in keys} if keys or draw(st.booleans()) else None
            node = ToolCall(id=nid, tool=tool.name, arguments=args, output_keys=out, next=rest)
        elif kind == "assert":
            cond = draw(st.sampled_from(["true", "false", "{{ city }}", "{{ budget }}"]))
            onf = draw(st.sampled_from([None, "/lib/math/add"]))
            node = Assert(id=nid, condition=cond, on_failure=onf, next=rest)
        elif kind == "fork":
            node = Fork(id=nid, branches=refs, next=None)
        elif kind == "join":
            earlier = [f"{TARGET}/{x}" for x in ids[1:i]]
            wait = tuple(draw(st.lists(st.sampled_from(earlier), min_size=1, max_size=2, unique=True)))
            node = Join(id=nid, wait_for=wait, merge_strategy=None, next=rest)
        elif kind == "generate_subgraph":
            node = GenerateSubgraph(id=nid, prompt_template=draw(_text), output_keys=out, next=rest)
        else:
            node = LlmCall(id=nid, prompt_template=draw(_text), output_keys=out, next=rest)
        nodes.append(node)
    return dumps(Document((Subgraph(path=TARGET, entry="start", nodes=tuple(nodes)),)))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_profile_documents_are_accepted(compiler, text: str) -> None:  # type: ignore[no-untyped-def]
    errors = [d for d in check_text(text, PLAN.validation_policy()) if d.severity == "error"]
    if errors:  # outside the plan (e.g. a join merging keys): not a completeness case
        return
    ids = compiler.tokenizer_info.encode(text)
    ok, where = feed(compiler.matcher_for(PLAN), ids)
    assert ok, (where, compiler.tokenizer_info.decode(ids[:where])[-200:], text)
    # for the reference runtime: accepted exactly when it conforms
    ok, where = feed(compiler.matcher_for(RT_PLAN), ids)
    assert ok == conforms(text, PLAN.external_targets), (where, text)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_fast_masks_equal_the_reference_along_documents(compiler, text: str) -> None:  # type: ignore[no-untyped-def]
    """At every position of a canonical document the fast mask equals the directly
    computed one (``verify`` raises otherwise) and allows the document's next token.
    Without a string cap, so the finite-text paths that run past a line end (types,
    ids, tool names, references) are the ones exercised."""
    import numpy as np
    import xgrammar as xgr

    errors = [d for d in check_text(text, PLAN.validation_policy()) if d.severity == "error"]
    if errors:
        return
    ids = compiler.tokenizer_info.encode(text)
    m = compiler.matcher_for(RT_PLAN if conforms(text, PLAN.external_targets) else PLAN, verify=True)
    bm = xgr.allocate_token_bitmask(1, compiler.tokenizer_info.vocab_size)
    for i, t in enumerate(ids):
        m.fill_next_token_bitmask(bm, 0)
        row = bm[0].numpy().view(np.uint32)
        assert (int(row[t >> 5]) >> (t & 31)) & 1, (i, compiler.tokenizer_info.decode(ids[:i])[-120:])
        assert m.accept_token(t)
    assert m.is_terminated()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents(), st.randoms(use_true_random=False))
def test_accept_shortcuts_agree_with_the_line_check_along_documents(compiler, text: str, rng) -> None:  # type: ignore[no-untyped-def]
    """Along canonical documents without a string cap (strings carried from one
    position to the next, fresh ids typed token by token), ``accept_token``'s
    shortcut gives the full line check's verdict and next state, for the document's
    token and for random ones."""
    import xgrammar as xgr

    errors = [d for d in check_text(text, PLAN.validation_policy()) if d.severity == "error"]
    if errors:
        return
    vocab = compiler.vocab
    ids = compiler.tokenizer_info.encode(text)
    m = compiler.matcher_for(RT_PLAN if conforms(text, PLAN.external_targets) else PLAN)
    bm = xgr.allocate_token_bitmask(1, compiler.tokenizer_info.vocab_size)
    # id-like tokens probe the fresh-id shortcut's edges (a digit or underscore first)
    edges = [vocab.by_text[x] for x in ("1", "_", "a", "ab", "x1", "_a", "12") if x in vocab.by_text]
    for t in ids:
        m.fill_next_token_bitmask(bm, 0)
        if not m._g.done:  # noqa: SLF001
            for tid in [t, *edges] + [rng.randrange(len(vocab.texts)) for _ in range(3)]:
                tok = vocab.texts[tid]
                if tok:
                    assert m._advance_known(tok) == m._advance(m._g, m.text, tok), (m.text, tok)  # noqa: SLF001
        assert m.accept_token(t)
    assert m.is_terminated()
