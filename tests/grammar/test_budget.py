"""The budget guarantee (grammar.budget, grammar.closing): from any position the
closing text finishes a valid document, and a walk that takes uniformly random
allowed tokens (it never closes on its own) ends in a valid document within its
token limit, for the strict runtime target and the spec target."""

from __future__ import annotations

import random

import numpy as np
import pytest
import xgrammar as xgr

from agentic_llm.dsl import check_text
from agentic_llm.grammar import GrammarCompiler
from agentic_llm.grammar.closing import closing_text
from agentic_llm.grammar.vocab import VocabIndex
from agentic_llm.planner import GenerateRequest, PlanRefusal, plan

from .plans import random_plan
from .runtime_check import problems


def _step(m, bm, vocab, rng) -> int:  # type: ignore[no-untyped-def]
    m.fill_next_token_bitmask(bm, 0)
    ids = VocabIndex.ids_in(bm[0].numpy().view(np.uint32))
    ids = ids[ids < vocab.info.vocab_size]
    ids = ids[~np.isin(ids, list(vocab.info.stop_token_ids))]
    assert ids.size, "empty mask"
    tid = int(ids[rng.randrange(ids.size)])
    assert m.accept_token(tid)
    return tid


def _errors(text: str, p) -> list[str]:  # type: ignore[no-untyped-def]
    return [str(d) for d in check_text(text, p.validation_policy()) if d.severity == "error"]


@pytest.mark.parametrize("seed", range(4))
def test_closing_text_finishes_a_valid_document_from_any_position(compiler: GrammarCompiler, seed: int) -> None:
    rng = random.Random(seed)
    vocab = compiler.vocab
    bm = xgr.allocate_token_bitmask(1, vocab.info.vocab_size)
    for _ in range(12):
        p = random_plan(rng, max_tools=12, max_nodes=10)
        m = compiler.matcher_for(p, max_string=8)
        out = bytearray()
        for _ in range(rng.randrange(0, 250)):
            if m._g.done:  # noqa: SLF001
                break
            out += vocab.info.token_bytes[_step(m, bm, vocab, rng)]
        if m._g.done:  # noqa: SLF001
            continue
        close = closing_text(m._gp, m._g, m.text).encode("latin-1").decode("utf-8")  # noqa: SLF001
        assert m.accept_string(close) and m.is_terminated(), (m.text, close)
        doc = out.decode("utf-8") + close
        assert not _errors(doc, p), (_errors(doc, p), doc)


@pytest.mark.parametrize("runtime", ["agenticrt", "spec"])
def test_random_walks_close_within_their_token_limit(compiler: GrammarCompiler, runtime: str) -> None:
    rng = random.Random(5 if runtime == "spec" else 6)
    vocab = compiler.vocab
    bm = xgr.allocate_token_bitmask(1, vocab.info.vocab_size)
    forced = 0
    for i in range(16):
        base = random_plan(rng, max_tools=40, max_nodes=30)
        req = base.request.to_json()
        req["target_runtime"] = runtime
        p = plan(GenerateRequest.from_json(req))
        limit = rng.randint(40, 512)
        m = compiler.matcher_for(p, max_tokens=limit, verify=i < 3)
        if m.min_tokens() > limit:
            continue  # refused before generation (the pipeline says so)
        out = bytearray()
        n = 0
        while not m.is_terminated():
            assert n < limit, "past the limit"
            out += vocab.info.token_bytes[_step(m, bm, vocab, rng)]
            n += 1
        doc = out.decode("utf-8")
        assert not _errors(doc, p), (_errors(doc, p), doc[-300:])
        if runtime == "agenticrt":
            assert not any(problems(doc, [e.path for e in p.library]).values()), doc
        forced += m.forced_tokens > 0
    assert forced >= 4  # the limit, not the model, ended most walks


def test_min_tokens_is_the_smallest_document_and_refusal_comes_first(compiler: GrammarCompiler) -> None:
    p = plan(GenerateRequest.from_json({"target_path": "/dynamic/p", "prompt": "x",
                                        "budget": {"max_nodes": 4, "max_tokens": 64}}))
    m = compiler.matcher_for(p, max_tokens=10)
    need = m.min_tokens()
    assert need > 10
    # the smallest document spelled token by token takes exactly that many tokens
    vocab = compiler.vocab
    bm = xgr.allocate_token_bitmask(1, vocab.info.vocab_size)
    m = compiler.matcher_for(p, max_tokens=need)
    n = 0
    while not m.is_terminated():
        _step(m, bm, vocab, random.Random(n))
        n += 1
    assert n <= need


def test_a_plan_that_cannot_fit_is_refused_by_the_planner() -> None:
    with pytest.raises(PlanRefusal):
        plan(GenerateRequest.from_json({"target_path": "/dynamic/p", "prompt": "x",
                                        "budget": {"max_nodes": 4, "max_tokens": 8}}))
