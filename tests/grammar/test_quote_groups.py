"""Quote tokens at string openings decided in groups (``grammar.quotesplit``).

At the opening quote of a string the ``agenticrt`` target checks, the fast mask
decides the quote and newline tokens of the 151k Qwen vocabulary by group instead
of one full line check each; ``verify`` compares every such mask with the per-token
reference.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import xgrammar as xgr

import agentic_llm.grammar.fastmask as fastmask
import agentic_llm.grammar.quotesplit as quotesplit
from agentic_llm.benchmarks.grammar import realistic_documents
from agentic_llm.grammar import GrammarCompiler
from agentic_llm.grammar.ebnf import GrammarSpec
from agentic_llm.grammar.graph import _STEPS, GraphPlan
from agentic_llm.grammar.lexclass import mask_key
from agentic_llm.grammar.quotesplit import (
    OpenString,
    QuoteGroups,
    open_string,
    split_quote,
    tail_key,
)
from agentic_llm.grammar.runtime import closes_as_string, surely_string
from agentic_llm.planner import GenerateRequest, plan

# contents typed after the opening quote: empty, numbers, words the runtime reads as
# booleans, whitespace, an unfinished escape, a finished one, a \\u escape begun
CONTENTS = ["", "1", "12", "-1.", "tr", "true", " ", "~", "\\", "\\\\", "\\u00"]
# a value string opening: a key's closing quote, ": ", the value's opening quote
OPENING = re.compile(r'(?:"|prompt_template|condition): "|output_keys: \["')


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[OpenString, str]]:
    """Records the open string and lead of every grouped decision."""
    seen: list[tuple[OpenString, str]] = []
    real = fastmask.quote_rejects

    def spy(memo, tag, texts, cand, s, ok, row=None, lead="", braces=None, shared=None):  # type: ignore[no-untyped-def]
        if s is not None:
            seen.append((s, lead))
        return real(memo, tag, texts, cand, s, ok, row, lead, braces, shared)

    monkeypatch.setattr(fastmask, "quote_rejects", spy)
    monkeypatch.setattr(quotesplit, "quote_rejects", spy)
    return seen


def test_string_openings_match_the_reference(compiler: GrammarCompiler,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Every value string of the realistic documents, from the end of its key through
    its opening quote and then typed into with contents the runtime could misread,
    has the reference mask (``verify``)."""
    seen = _spy(monkeypatch)
    enc = compiler.tokenizer_info.encode
    bm = xgr.allocate_token_bitmask(1, compiler.tokenizer_info.vocab_size)
    quote = enc('"')[0]
    positions = closed = 0
    for req, doc in realistic_documents():
        p = plan(GenerateRequest.from_json(req))
        for mt in OPENING.finditer(doc):
            m = compiler.matcher_for(p, verify=True)
            head = mt.start() + mt.group().index(":")  # before ': "' or ': ["'
            for tid in enc(doc[:head]):
                assert m.accept_token(tid)
            for ch in doc[head: mt.end()]:
                m.fill_next_token_bitmask(bm, 0)  # the lead into the string: grouped too
                assert m.accept_token(enc(ch)[0])
            for c in CONTENTS:
                ids = enc(c) if c else []
                if not all(m.accept_token(t) for t in ids):
                    continue  # a content the grammar does not allow here (``\\u00`` is)
                m.fill_next_token_bitmask(bm, 0)  # raises on a difference
                positions += 1
                row = bm[0].numpy().view(np.uint32)
                if c in ("", "1", "12", "true"):
                    # the runtime would read "", 1, 12 and true as no string
                    assert not (int(row[quote >> 5]) >> (quote & 31)) & 1, (m.text, c)
                    closed += 1
                m.rollback(len(ids))
    assert positions >= 80 and closed >= 30
    # the grouped path decided most of them (mid-escape positions have no lexical
    # class and take the reference path itself)
    assert len([s for s, lead in seen if not lead]) >= positions // 2, (len(seen), positions)
    assert len([s for s, lead in seen if lead == ' "']) >= 8  # after a key: ' "...'
    # after '": ' of a value: the quote opens the string (a lead of its own)
    assert any(lead == '"' for s, lead in seen)


def test_verify_catches_a_wrong_group(compiler: GrammarCompiler) -> None:
    """A token moved into a passing group it does not belong to changes the mask, and
    ``verify`` reports it: the reference does not use the grouping."""
    req, doc = realistic_documents()[0]
    p = plan(GenerateRequest.from_json(req))
    enc = compiler.tokenizer_info.encode
    i = doc.index('"limit": "') + len('"limit": "')
    m = compiler.matcher_for(p, verify=True)
    for tid in enc(doc[:i]):
        assert m.accept_token(tid)
    bm = xgr.allocate_token_bitmask(1, compiler.tokenizer_info.vocab_size)
    m.fill_next_token_bitmask(bm, 0)
    key = ("quote_groups", ("free", True, True), OpenString("", False), "", True)
    cache = compiler.mask_cache(GrammarSpec.from_plan(p))
    entry = cache.get(mask_key(m._gp, m._g, m.text))  # noqa: SLF001
    assert entry is not None
    memo = entry.memo
    good = memo[key]
    assert good.bad and good.groups
    memo[key] = QuoteGroups([], [good.groups[0] + good.bad, *good.groups[1:]], good.single)
    try:
        with pytest.raises(RuntimeError, match="differs from the reference"):
            m.fill_next_token_bitmask(bm, 0)
    finally:
        memo[key] = good


def test_open_string_only_where_the_split_holds(compiler: GrammarCompiler) -> None:
    req, doc = realistic_documents()[0]
    p = plan(GenerateRequest.from_json(req))
    spec = plan(GenerateRequest.from_json({**req, "target_runtime": "spec"}))
    enc = compiler.tokenizer_info.encode

    def at(text: str, pl=p) -> OpenString | None:  # type: ignore[no-untyped-def]
        m = compiler.matcher_for(pl)
        for tid in enc(text):
            assert m.accept_token(tid)
        return open_string(GraphPlan.from_plan(pl), m._g, m.text)  # noqa: SLF001

    head = doc[: doc.index('"query": "') + len('"query": "')]
    assert at(head) == OpenString("", False)
    assert at(head + "12\\") == OpenString("12\\", True)
    assert at(head + "a\\\\") == OpenString("a\\\\", False)
    assert at(head[:-1]) is None  # before the opening quote
    assert at(head[:-3]) is None  # inside the key
    assert at(head, spec) is None  # the spec target reads every quoted value as a string
    keys = doc[: doc.index('output_keys: ["') + len('output_keys: ["')]
    assert at(keys) == OpenString("", False, frozenset())  # with the keys it may not name


def test_split_quote_and_tail_key() -> None:
    assert split_quote('ab"c', False) == ("ab", "c")
    assert split_quote('\\"x",', False) == ('\\"x', ",")  # an escaped quote stays inside
    assert split_quote('"x', True) == ('"x', None)  # escaped by the content before it
    assert split_quote('\\"', False) == ('\\"', None)
    assert split_quote('{"', False) == ("{", "") and split_quote('a\n"', False) is None
    assert split_quote('"{', False) == ("", "{")
    assert tail_key("%") == tail_key("") == "" and tail_key(")\n") == "\n"
    assert tail_key(', "a') == ', "a' and tail_key(":{") == ":{"
    assert tail_key("\n  x") == "\n  x"


def test_no_line_kind_prefix_starts_another() -> None:
    """``apply_line`` takes the first line kind whose prefix and content match: the
    grouping relies on the one live kind being the one it takes."""
    for steps in _STEPS.values():
        for a in steps:
            assert [b for b in steps if b.prefix.startswith(a.prefix)] == [a]


def test_surely_string_holds_for_every_closing(compiler: GrammarCompiler) -> None:
    """A content ``surely_string`` accepts closes as a string whatever token text
    follows it (the grouping skips the check there)."""
    texts = compiler.vocab.texts
    tails = [t for t in texts[::5] if '"' not in t and "{" not in t] + ["", "ue", "rue", "\\u0031", "1e5"]
    raws = ["cheap", "12c", "\\nx", "x", "b\\", "-1_", "é!", "1e5)", "~/", "\\u00e9b"]
    for raw in raws:
        assert surely_string(raw), raw
        bad = [t for t in tails if not closes_as_string(raw + t)]
        assert not bad, (raw, bad[:5])
    for raw in ["", "1", "12", "tr", "fals", "~", " ", "\\u0031", "\\n", "1e", "é", "\\"]:
        assert not surely_string(raw), raw


def test_output_keys_of_a_join_branch_avoid_the_other_branch(compiler: GrammarCompiler,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A branch of a required join may not name a key another branch writes: the
    grouped mask refuses ``f"`` at the second branch's ``output_keys``, as the
    reference does."""
    seen = _spy(monkeypatch)
    t = "/dynamic/plan_1"
    req = {"target_path": t, "prompt": "x",
           "context": {"available_vars": {"city": "string"}, "permissions": ["tool:*"]},
           "tools": [{"name": "search", "arguments": [{"name": "q"}]}],
           "constraints": {"require_join": ["flights", "hotels"]},
           "budget": {"max_nodes": 6, "max_tokens": 4096}}

    def call(nid: str, key: str) -> str:
        return (f'  - id: "{nid}"\n    type: tool_call\n    tool: "search"\n    arguments:\n'
                f'      "q": "{{{{ city }}}}"\n    output_keys: ["{key}"]\n    next: ["{t}/both"]\n')

    doc = (f"### AgenticDSL `{t}`\n```yaml\n# --- BEGIN AgenticDSL ---\ngraph_type: subgraph\n"
           f'entry: "start"\nnodes:\n  - id: "start"\n    type: start\n'
           f'    next: ["{t}/flights", "{t}/hotels"]\n' + call("flights", "f") + call("hotels", "h"))
    enc = compiler.tokenizer_info.encode
    vocab = compiler.vocab
    close = [vocab.by_text[t] for t in ('"]', '",') if t in vocab.by_text]
    assert close
    at = doc.rindex('output_keys: ["') + len('output_keys: ["')
    bm = xgr.allocate_token_bitmask(1, compiler.tokenizer_info.vocab_size)
    for key, taken in (("f", True), ("g", False), ("", True)):  # "" is no string for the runtime
        m = compiler.matcher_for(plan(GenerateRequest.from_json(req)), verify=True)
        for tid in enc(doc[:at] + key):
            assert m.accept_token(tid)
        m.fill_next_token_bitmask(bm, 0)  # raises on a difference
        row = bm[0].numpy().view(np.uint32)
        for tid in close:
            assert bool((int(row[tid >> 5]) >> (tid & 31)) & 1) is not taken, (key, vocab.texts[tid])
    assert any(s.taken and "f" in s.taken for s, _lead in seen)
