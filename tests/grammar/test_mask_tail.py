"""The shortcuts behind the mask tail (``bench/mask_positions.py`` finds the slow
positions) equal what they replace.

- ``VocabIndex.idrun_eq``: the id-character runs of one exact length, as id arrays,
  equal the difference of two cumulative rows the fresh-id edge used to compute;
- ``quotesplit.shared_verdicts``: a quote group's verdict is shared by every
  position of one string (the lead into it included); ``verify`` compares each such
  mask with the per-token reference, and a wrong shared verdict is caught;
- row views of a bitmask tensor are shared between matchers and follow a new tensor.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import xgrammar as xgr

import agentic_llm.grammar.quotesplit as quotesplit
from agentic_llm.benchmarks.grammar import _request, realistic_documents
from agentic_llm.grammar import GrammarCompiler
from agentic_llm.grammar.vocab import MAX_ID, VocabIndex
from agentic_llm.grammar.walk import random_walk
from agentic_llm.planner import GenerateRequest, plan
from tests.grammar.plans import random_plan


def test_exact_runs_equal_the_cumulative_difference(compiler: GrammarCompiler) -> None:
    v = compiler.vocab
    rng = np.random.default_rng(5)
    rows = [np.full(v.words, 0xFFFFFFFF, dtype=np.uint32),
            rng.integers(0, 2**32, v.words, dtype=np.uint64).astype(np.uint32),
            v.quote_bits | v.idrun_le[6]]
    for row in rows:
        for room in range(1, MAX_ID + 1):
            for eq, le in ((v.idrun_eq, v.idrun_le), (v.idrun_letter_eq, v.idrun_letter_le)):
                want = VocabIndex.ids_in(row & le[room] & ~le[room - 1])
                assert np.array_equal(VocabIndex.ids_set(eq[room], row), want), room
    # the lists are not trivially empty: short runs exist in a 151k vocabulary
    assert all(v.idrun_letter_eq[k].size for k in range(1, 8))


def _shared_dicts(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, bool]]:
    seen: list[dict[str, bool]] = []
    real = quotesplit.shared_verdicts

    def spy(g, text, s):  # type: ignore[no-untyped-def]
        out = real(g, text, s)
        if out is not None:
            seen.append(out)
        return out

    monkeypatch.setattr(quotesplit, "shared_verdicts", spy)
    import agentic_llm.grammar.fastmask as fastmask
    monkeypatch.setattr(fastmask, "shared_verdicts", spy)
    return seen


def test_shared_quote_verdicts_are_verified(compiler: GrammarCompiler,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The realistic documents, cold and warm, and random walks over varied plans
    (strings capped, so many strings close early) keep the reference mask at every
    position while the shared verdicts are in use."""
    seen = _shared_dicts(monkeypatch)
    bm = xgr.allocate_token_bitmask(1, compiler.tokenizer_info.vocab_size)
    for _round in range(2):
        for req, doc in realistic_documents():
            m = compiler.matcher_for(plan(GenerateRequest.from_json(req)), verify=True)
            for tid in compiler.tokenizer_info.encode(doc):
                m.fill_next_token_bitmask(bm, 0)
                assert m.accept_token(tid)
    reused = [d for d in seen if d]
    assert len(reused) >= 10, len(reused)
    rng = random.Random(31)
    for _ in range(12):
        p = random_plan(rng, max_tools=6, max_nodes=6)
        r = random_walk(compiler.matcher_for(p, max_string=10, verify=True), compiler.vocab, rng,
                        max_tokens=500)
        assert r.completed or r.reason == "token limit", r.reason


def test_verify_catches_a_wrong_shared_verdict(compiler: GrammarCompiler,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Flipping the verdicts a string's first position stored changes the mask of a
    later position of the same string (whose lexical class differs, so it decides
    its quote tokens again, from the shared verdicts), and ``verify`` reports it."""
    seen = _shared_dicts(monkeypatch)
    req, doc = realistic_documents()[0]
    p = plan(GenerateRequest.from_json(req))
    enc = compiler.tokenizer_info.encode
    bm = xgr.allocate_token_bitmask(1, compiler.tokenizer_info.vocab_size)
    i = doc.index('"query": "') + len('"query": "')
    m = compiler.matcher_for(p, verify=True)
    for tid in enc(doc[:i]):
        assert m.accept_token(tid)
    m.fill_next_token_bitmask(bm, 0)  # stores the string's verdicts
    shared = seen[-1]
    assert shared and any(shared.values())
    assert m.accept_token(enc("hot")[0])
    good = dict(shared)
    for k in shared:
        shared[k] = not shared[k]
    try:
        with pytest.raises(RuntimeError, match="differs from the reference"):
            m.fill_next_token_bitmask(bm, 0)
    finally:
        shared.update(good)
    # the true verdicts give the reference at that position
    m2 = compiler.matcher_for(p, verify=True)
    for tid in enc(doc[:i] + "hot"):
        m2.fill_next_token_bitmask(bm, 0)
        assert m2.accept_token(tid)
    m2.fill_next_token_bitmask(bm, 0)


def test_row_views_follow_the_tensor(compiler: GrammarCompiler) -> None:
    """Matchers sharing row views write the row of the tensor they are given: two
    tensors, two rows, alternating, each equal to the reference fill."""
    req, doc = realistic_documents()[1]
    p = plan(GenerateRequest.from_json(req))
    ids = compiler.tokenizer_info.encode(doc)[:40]
    n = compiler.tokenizer_info.vocab_size
    a, b = compiler.matcher_for(p), compiler.matcher_for(p)
    ref = compiler.matcher_for(p)
    refbm = xgr.allocate_token_bitmask(1, n)
    for k, tid in enumerate(ids):
        bm = xgr.allocate_token_bitmask(2, n) if k % 3 == 0 else bm  # noqa: F821
        bm.fill_(0)
        a.fill_next_token_bitmask(bm, k % 2)
        b.fill_next_token_bitmask(bm, 1 - k % 2)
        ref.fill_reference(refbm, 0)
        assert np.array_equal(bm[k % 2].numpy(), refbm[0].numpy()), k
        assert np.array_equal(bm[1 - k % 2].numpy(), refbm[0].numpy()), k
        assert a.accept_token(tid) and b.accept_token(tid) and ref.accept_token(tid)


def _ref_positions_agree(m, v, quote_toks, id_toks) -> int:  # type: ignore[no-untyped-def]
    """At the matcher's position, when it is inside a reference element: the list
    state's verdicts (``_close_ok``, ``element_prefix_ok``) equal the line check
    (``_ok``) for every given token; returns the tokens compared."""
    from agentic_llm.grammar.graph import ref_context

    rc = ref_context(m._gp, m._g, m.text)  # noqa: SLF001
    if rc is None:
        return 0
    refs, e = rc
    for tid in quote_toks:
        assert m._close_ok(refs, e, tid) == m._ok(tid), (m.text, v.texts[tid])  # noqa: SLF001
    for tid in id_toks:
        assert refs.element_prefix_ok(e + v.texts[tid]) == m._ok(tid), (m.text, v.texts[tid])  # noqa: SLF001
    return len(quote_toks) + len(id_toks)


def test_list_state_verdicts_equal_the_line_check(compiler: GrammarCompiler) -> None:
    """The shortcuts at reference elements decide every closing token with a tail the
    list's parse reads (``"``, ``",``, ``", ``, ``"]``) and every id run exactly as
    the line check does: on the realistic documents and on walks over varied plans
    (with the draws biased toward closing elements, and toward known, taken and
    fresh ids alike)."""
    v = compiler.vocab
    rng = random.Random(7)
    close = [i for i, t in enumerate(v.texts) if '"' in t and t.split('"', 1)[1] in ("", ",", ", ", "]")
             and len(t) < 40]
    runs = [int(i) for k in range(1, MAX_ID + 1) for i in v.idrun_eq[k]]
    bm = xgr.allocate_token_bitmask(1, v.info.vocab_size)
    compared = 0
    for req, doc in realistic_documents():
        m = compiler.matcher_for(plan(GenerateRequest.from_json(req)))
        for tid in compiler.tokenizer_info.encode(doc):
            compared += _ref_positions_agree(m, v, rng.sample(close, 150), rng.sample(runs, 40))
            assert m.accept_token(tid)
    for i in range(14):
        if i % 2:
            # content rules: a list may close only after naming a fresh node while
            # the document owes tool calls (``may_close`` is false there)
            n = rng.choice([2, 3])
            req = _request(n, target=f"/dynamic/c{i}")
            req["constraints"] = {"require_tools": [t["name"] for t in req["tools"]]}
            req["budget"] = {"max_nodes": rng.randint(n + 2, 8), "max_tokens": 4096}
            p = plan(GenerateRequest.from_json(req))
        else:
            p = random_plan(rng, max_tools=4, max_nodes=rng.randint(2, 9))
        m = compiler.matcher_for(p, max_string=8)
        for _step in range(500):
            if m.is_terminated():
                break
            compared += _ref_positions_agree(m, v, rng.sample(close, 60), rng.sample(runs, 20))
            m.fill_next_token_bitmask(bm, 0)
            allowed = VocabIndex.ids_in(bm[0].numpy().view(np.uint32)).tolist()
            quoted = [t for t in allowed if '"' in v.texts[t]]
            pick = rng.choice(quoted if quoted and rng.random() < 0.4 else allowed)
            assert m.accept_token(pick)
    assert compared > 20000, compared


def _states_agree(gp, text: str) -> int:  # type: ignore[no-untyped-def]
    """Walk the lines of ``text``: before each line, apply a variant of it (the same
    line with another value, where the line has one), then check the state after the
    real line equals the one computed on a copy without memos. Returns the variants
    applied."""
    from agentic_llm.grammar.graph import apply_line, initial_state, line_ok, replace

    g = initial_state()
    variants = 0
    body = text.split("\n")
    for line in body:
        if g.done:
            break
        assert line_ok(gp, g, line, True), line
        for other in _variants(line):
            if line_ok(gp, g, other, True):
                apply_line(gp, g, other)  # fills the memo with the variant's next state
                variants += 1
        got = apply_line(gp, g, line)
        want = apply_line(gp, replace(g), line)  # a copy: empty memo
        assert got == want, (line, got, want)
        g = got
    return variants


def _variants(line: str) -> list[str]:
    """The line with its last string's content replaced (a value), and with its first
    string's content replaced (a key, where the line has two strings)."""
    q = line.rfind('"')
    p = line.rfind('"', 0, q) if q > 0 else -1
    if p < 0:
        return []
    out = []
    a = line.find('"')
    b = line.find('"', a + 1)
    if b < p:  # keys first: the first variant applied fills the memo
        out += [line[: a + 1] + c + line[b:] for c in ("zz", "key2")]
    return out + [line[: p + 1] + c + line[q:] for c in ("zz", "{{ city }}", "q1", "hits")]


def test_shared_next_states_equal_fresh_ones(compiler: GrammarCompiler) -> None:
    """Lines that lead to the same next state share one object (``graph._after_key``):
    after the variant of a line fills the memo, the real line's next state still
    equals the one computed without memos, on the realistic documents and on walks
    whose arguments read earlier outputs (``relied``) and whose assign keys vary."""
    from agentic_llm.grammar.graph import GraphPlan

    applied = 0
    for req, doc in realistic_documents():
        p = plan(GenerateRequest.from_json(req))
        applied += _states_agree(GraphPlan.from_plan(p), doc)
    rng = random.Random(11)
    for i in range(10):
        n = rng.choice([2, 3])
        req = _request(n, target=f"/dynamic/s{i}")
        req["constraints"] = {"require_tools": [t["name"] for t in req["tools"]]}
        req["budget"] = {"max_nodes": rng.randint(n + 1, 8), "max_tokens": 4096}
        p = plan(GenerateRequest.from_json(req))
        r = random_walk(compiler.matcher_for(p, max_string=16), compiler.vocab, rng, brace_bias=0.5)
        if r.completed:
            applied += _states_agree(GraphPlan.from_plan(p, max_string=16), r.text)
    assert applied > 50, applied
