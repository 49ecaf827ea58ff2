"""The fast mask paths equal the directly computed mask at every position.

``DSLMatcher(verify=True)`` computes ``fill_reference`` beside every fast fill and
raises on any difference, so these walks check the lexical-class keys of the mask
cache, the finite-text closures and the memoized graph checks against xgrammar's own
masks on the 151k vocabulary.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import xgrammar as xgr

from agentic_llm.benchmarks.grammar import realistic_documents
from agentic_llm.grammar import GrammarCompiler
from agentic_llm.grammar.ebnf import GrammarSpec
from agentic_llm.grammar.lexclass import list_class, string_class
from agentic_llm.grammar.maskcache import MaskCache
from agentic_llm.grammar.vocab import VocabIndex
from agentic_llm.grammar.walk import random_walk
from agentic_llm.planner import GenerateRequest, plan
from tests.grammar.plans import random_plan


def test_verified_random_walks(compiler: GrammarCompiler) -> None:
    rng = random.Random(99)
    done = 0
    for _ in range(40):
        p = random_plan(rng, max_tools=20, max_nodes=8)
        r = random_walk(compiler.matcher_for(p, max_string=12, verify=True), compiler.vocab, rng,
                        max_tokens=600)
        assert r.completed or r.reason == "token limit", r.reason
        done += r.completed
    assert done >= 30


def test_verified_realistic_documents_cold_and_warm(compiler: GrammarCompiler) -> None:
    bm = xgr.allocate_token_bitmask(1, compiler.tokenizer_info.vocab_size)
    for _round in range(2):  # the second round runs on a warm cache
        for req, doc in realistic_documents():
            p = plan(GenerateRequest.from_json(req))
            m = compiler.matcher_for(p, verify=True)
            for tid in compiler.tokenizer_info.encode(doc):
                m.fill_next_token_bitmask(bm, 0)
                row = bm[0].numpy().view(np.uint32)
                assert (int(row[tid >> 5]) >> (tid & 31)) & 1, tid
                assert m.accept_token(tid)
            assert m.is_terminated()
    cache = compiler.mask_cache(GrammarSpec.from_plan(p))
    assert cache.hits > 0 and len(cache) > 0


def test_row_fill_equals_the_bitmask_fill(compiler: GrammarCompiler) -> None:
    """``fill_next_token_row`` (the engine's path: a numpy view of a batch mask) writes
    the row ``fill_next_token_bitmask`` writes, on every path: cold and warm cache
    (xgrammar writing through the view), no cache at all, and after the end."""
    words = (compiler.tokenizer_info.vocab_size + 31) // 32
    for fresh in (True, False, None):  # a cold cache, then a warm one, then no cache
        if fresh:
            compiler.clear_caches()
        for req, doc in realistic_documents()[:2]:
            p = plan(GenerateRequest.from_json(req))
            by_row, by_mask = compiler.matcher_for(p), compiler.matcher_for(p)
            if fresh is None:
                by_row._cache = by_mask._cache = None
            batch = np.full((3, words), 0x5A5A5A5A, dtype=np.uint32)  # stale words to overwrite
            bm = xgr.allocate_token_bitmask(2, compiler.tokenizer_info.vocab_size)
            for tid in [*compiler.tokenizer_info.encode(doc), None]:
                bm.fill_(0x33)
                by_mask.fill_next_token_bitmask(bm, 1)
                by_row.fill_next_token_row(batch[1])
                assert np.array_equal(batch[1], bm[1].numpy().view(np.uint32)), tid
                assert batch[0, 0] == batch[2, 0] == 0x5A5A5A5A  # the neighbours are untouched
                if tid is not None:
                    assert by_row.accept_token(tid) and by_mask.accept_token(tid)
            assert by_row.is_terminated()


def test_verify_catches_a_wrong_cached_row(compiler: GrammarCompiler) -> None:
    req, doc = realistic_documents()[0]
    p = plan(GenerateRequest.from_json(req))
    bm = xgr.allocate_token_bitmask(1, compiler.tokenizer_info.vocab_size)
    ids = compiler.tokenizer_info.encode(doc)
    m = compiler.matcher_for(p, verify=True)
    cache = compiler.mask_cache(GrammarSpec.from_plan(p))
    for tid in ids[:60]:
        m.fill_next_token_bitmask(bm, 0)
        m.accept_token(tid)
    # a string value position: its mask comes from the cached xgrammar row
    while not m.text.startswith('      "query": "h'):
        m.fill_next_token_bitmask(bm, 0)
        m.accept_token(ids[len(m._history)])  # noqa: SLF001 - position in the document
    from agentic_llm.grammar.lexclass import mask_key

    # re-enter the position by a rollback, which drops the mask carried along the string
    last = ids[len(m._history) - 1]  # noqa: SLF001
    m.rollback(1)
    assert m.accept_token(last)
    assert m._free_carry is None  # noqa: SLF001
    key = mask_key(m._gp, m._g, m.text)  # noqa: SLF001
    assert key is not None
    m.fill_next_token_bitmask(bm, 0)
    entry = cache.get(key)
    assert entry is not None
    saved = entry.row.copy()
    entry.row[:] = 0
    try:
        with pytest.raises(RuntimeError, match="differs from the reference"):
            m.fill_next_token_bitmask(bm, 0)
    finally:
        entry.row[:] = saved


def test_mask_carried_along_a_string_is_verified(compiler: GrammarCompiler) -> None:
    """Inside a string, a token that keeps the lexical class carries the last mask
    to the next position; the carried row is what ``verify`` checks there."""
    req, doc = realistic_documents()[0]
    p = plan(GenerateRequest.from_json(req))
    bm = xgr.allocate_token_bitmask(1, compiler.tokenizer_info.vocab_size)
    ids = compiler.tokenizer_info.encode(doc)
    m = compiler.matcher_for(p, verify=True)
    carried = 0
    for tid in ids:
        if m._free_carry is not None:  # noqa: SLF001
            carried += 1
            if carried == 3:
                row = m._free_carry[2]  # noqa: SLF001
                saved = row.copy()
                row[:] = 0
                with pytest.raises(RuntimeError, match="differs from the reference"):
                    m.fill_next_token_bitmask(bm, 0)
                row[:] = saved
        m.fill_next_token_bitmask(bm, 0)
        assert m.accept_token(tid)
    assert carried >= 3
    assert m.is_completed()


def test_string_classes() -> None:
    assert string_class("") == "o"
    assert string_class('"abc') == "s"
    assert string_class('"a\\n') == "s"
    assert string_class('"a\\') is None          # mid escape
    assert string_class('"a\\u00') is None       # mid unicode escape
    assert string_class('"caf\xc3') is None      # mid multi-byte character (latin-1 view)
    assert string_class('"caf\xc3\xa9') == "s"
    assert string_class('"done"') == "c"
    assert string_class("x") is None


def test_list_classes() -> None:
    assert list_class("", True, "/") == ("",)
    assert list_class("[", True, "/") == (0, "open")
    assert list_class('["', True, "/") == (0, "q")
    assert list_class('["/', True, "/") == (0, "q1")
    assert list_class('["/a', True, "/") == (0, "q2")
    assert list_class('["/abc', True, "/") == (0, "q3")
    assert list_class('["k', True, "") == (0, "q1")   # keys: no fixed first character
    a = list_class('["/x", "/y", "/z", "/w', True, "/")
    b = list_class('["/x", "/y", "/z', True, "/")
    assert a == b                                  # element counts fold at two
    assert list_class('["/x"]', True, "/") == (1, "closed", "")
    assert list_class('["/x",', True, "/") == (1, "comma")
    assert list_class('x', True, "/") is None


def test_mask_cache_is_bounded() -> None:
    c = MaskCache(capacity=4)
    for i in range(10):
        c.put(i, np.zeros(2, dtype=np.uint32))
    assert len(c) <= 4
    assert c.get(9) is not None and c.get(0) is None
    with pytest.raises(ValueError):
        MaskCache(capacity=1)


def test_exemplars_are_valid_for_every_standard_shape(compiler: GrammarCompiler) -> None:
    from agentic_llm.dsl import check_text
    from agentic_llm.grammar.compiler import STANDARD_SHAPES
    from agentic_llm.grammar.walk import check_text as feed
    from agentic_llm.grammar.warmup import exemplar_document, warm_request

    for shape in STANDARD_SHAPES:
        p = plan(warm_request(shape))
        doc = exemplar_document(p.node_types)
        assert not [d for d in check_text(doc, p.validation_policy()) if d.severity == "error"]
        ok, where = feed(compiler.matcher_for(p), compiler.tokenizer_info.encode(doc))
        assert ok, (shape, where)


def test_warm_up_covers_realistic_documents(qwen) -> None:  # type: ignore[no-untyped-def]
    c = GrammarCompiler(qwen)
    assert c.warm_masks(walks=0) > 50
    bm = xgr.allocate_token_bitmask(1, qwen.vocab_size)
    misses = 0
    for req, doc in realistic_documents():
        p = plan(GenerateRequest.from_json(req))
        m = c.matcher_for(p)
        cache = c.mask_cache(GrammarSpec.from_plan(p))
        for tid in qwen.encode(doc):
            before = cache.misses
            m.fill_next_token_bitmask(bm, 0)
            misses += cache.misses - before
            assert m.accept_token(tid)
    assert misses <= 5, misses


def test_verified_walks_on_the_shipped_model_tokenizer() -> None:
    """The shipped model's BPE has tokens such as ``2/end"`` that finish the target
    path, a fresh id and the reference at once; the fast mask must keep them."""
    from pathlib import Path

    import agentic_llm.models as models
    from agentic_llm.grammar import TokenizerInfo

    tok = Path(models.__file__).parent / "agentic-tiny" / "tokenizer.json"
    info = TokenizerInfo.from_hf_tokenizer_json(tok)
    c = GrammarCompiler(info)
    rng = random.Random(3)
    for i in range(30):
        p = random_plan(rng, max_tools=5, max_nodes=6)
        p = plan(GenerateRequest.from_json({
            "target_path": f"/dynamic/step_{i + 70}", "prompt": "x",
            "tools": [{"name": t.name, "arguments": [{"name": a.name, "required": a.required}
                                                      for a in t.arguments]} for t in p.tools],
            "budget": {"max_nodes": p.max_nodes, "max_tokens": 4096}}))
        r = random_walk(c.matcher_for(p, max_string=12, verify=True), c.vocab, rng, max_tokens=800)
        assert r.completed or r.reason == "token limit", r.reason


def test_accept_shortcut_agrees_with_the_line_check(compiler: GrammarCompiler) -> None:
    """``accept_token`` skips the line check where the position's slot decides it; at
    every position of some walks, for allowed and random tokens, the verdict and the
    next state equal the full check's."""
    rng = random.Random(11)
    vocab = compiler.vocab
    bm = xgr.allocate_token_bitmask(1, compiler.tokenizer_info.vocab_size)
    checked = 0
    for _ in range(6):
        p = random_plan(rng, max_tools=10, max_nodes=6)
        m = compiler.matcher_for(p, max_string=12)
        for _step in range(400):
            if m.is_terminated():
                break
            m.fill_next_token_bitmask(bm, 0)
            allowed = VocabIndex.ids_in(bm[0].numpy().view(np.uint32)).tolist()
            allowed = [t for t in allowed if vocab.texts[t]]
            if not allowed:
                break
            probe = rng.sample(allowed, min(5, len(allowed)))
            probe += [rng.randrange(len(vocab.texts)) for _ in range(5)]
            for tid in probe:
                tok = vocab.texts[tid]
                if tok and not m._g.done:  # noqa: SLF001
                    assert m._advance_known(tok) == m._advance(m._g, m.text, tok), (m.text, tok)  # noqa: SLF001
                    checked += 1
            assert m.accept_token(rng.choice(allowed))
    assert checked > 1000


def test_verified_walks_through_templates_at_the_string_cap() -> None:
    """Assign values on the shipped tokenizer: a template closing at the random
    walks' string cap (tokens such as `` }} and `` run past it) must give the
    same mask on the fast path as on the reference path."""
    from pathlib import Path

    import agentic_llm.models as models
    from agentic_llm.benchmarks.grammar import _request
    from agentic_llm.grammar import TokenizerInfo

    tok = Path(models.__file__).parent / "agentic-tiny" / "tokenizer.json"
    c = GrammarCompiler(TokenizerInfo.from_hf_tokenizer_json(tok))
    rng = random.Random(1)
    completed = 0
    for i in range(40):
        req = _request(2, target=f"/dynamic/cap_{i}")
        req["budget"] = {"max_nodes": rng.randint(2, 8), "max_tokens": 8192}
        req["node_types"] = ["assign", "end"]
        r = random_walk(c.matcher_for(plan(GenerateRequest.from_json(req)), max_string=16, verify=True),
                        c.vocab, rng, max_tokens=1500)
        completed += r.completed
    assert completed >= 20


def test_prefixes_of_matches_its_definition(compiler: GrammarCompiler) -> None:
    # The fast masks and the reference both read ``prefixes_of``, so ``verify`` cannot
    # catch a fault in it: compare with the definition (every token that is a
    # non-empty prefix of the text) on texts past the bounds of its walk.
    import random

    v = compiler.vocab
    rng = random.Random(3)
    texts = ["### AgenticDSL `/dynamic/plan_1`", '  - id: "', "    next: [\"", "\n", "\n\n    ",
             "#" * 90, " " * 70, "__init__", "    type: tool_call", "end"]
    texts += [v.texts[rng.randrange(len(v.texts))] + v.texts[rng.randrange(len(v.texts))] for _ in range(3000)]
    for t in texts:
        want = [v.by_text[t[:k]] for k in range(1, len(t) + 1) if t[:k] in v.by_text]
        assert v._prefixes_of(t) == want, t
