"""Memos of the grammar layer stay within their entry budget under unique traffic:
``BoundedMemo`` itself, and the per-text memos of the vocabulary index, the token
budget and the mask-cache entries after many texts that name a new target path."""

from __future__ import annotations

import numpy as np
import pytest

from agentic_llm.grammar import GrammarCompiler
from agentic_llm.grammar.maskcache import MaskCache
from agentic_llm.grammar.memo import (
    CLOSURE_MEMO_ENTRIES,
    DERIVED_MEMO_ENTRIES,
    TEXT_MEMO_ENTRIES,
    BoundedMemo,
)
from agentic_llm.grammar.vocab import VocabIndex
from agentic_llm.planner import GenerateRequest, plan


def test_bounded_memo_drops_the_oldest_half_when_full() -> None:
    m = BoundedMemo(8)
    for i in range(8):
        m[i] = i * i
    assert len(m) == 8
    m[100] = 1  # a new key into a full memo: the four oldest go first
    assert list(m) == [4, 5, 6, 7, 100]
    m[5] = -1  # overwriting a kept key evicts nothing
    assert len(m) == 5 and m[5] == -1
    for i in range(1000, 3000):
        m[i] = i
        assert len(m) <= 8
    assert m.setdefault(2999, 0) == 2999 and m.setdefault("new", 7) == 7 and len(m) <= 8
    with pytest.raises(ValueError, match="at least 2"):
        BoundedMemo(1)


def test_vocab_memos_stay_bounded_after_unique_texts(compiler: GrammarCompiler) -> None:
    v: VocabIndex = compiler.vocab
    n = max(TEXT_MEMO_ENTRIES, CLOSURE_MEMO_ENTRIES) + 500
    for i in range(n):
        path = f"/dynamic/soak_{i}/"
        v.prefixes_of(path)
        v.has_longer(path)
        v.prefix_closure((f'{path}"',))
    assert len(v._prefixes) <= TEXT_MEMO_ENTRIES  # noqa: SLF001
    assert len(v._longer) <= TEXT_MEMO_ENTRIES  # noqa: SLF001
    assert len(v._closure) <= CLOSURE_MEMO_ENTRIES  # noqa: SLF001
    # the newest answers are still memoized and still right
    last = f"/dynamic/soak_{n - 1}/"
    assert v._prefixes[last] == v._prefixes_of(last)  # noqa: SLF001


def test_token_budget_price_memo_stays_bounded(compiler: GrammarCompiler) -> None:
    p = plan(GenerateRequest.from_json({"target_path": "/dynamic/memo_budget", "prompt": "x"}))
    m = compiler.matcher_for(p, max_tokens=200)
    budget = m.budget
    assert budget is not None
    for i in range(TEXT_MEMO_ENTRIES + 500):
        n, ids = budget.spell(f'  - id: "/dynamic/soak_{i}/end"\n')
        assert n == len(ids) > 0
    assert len(budget._cost) <= TEXT_MEMO_ENTRIES  # noqa: SLF001


def test_mask_entry_memo_is_bounded() -> None:
    cache = MaskCache(capacity=4)
    e = cache.put("k", np.zeros(4, dtype=np.uint32))
    for i in range(DERIVED_MEMO_ENTRIES * 3):
        e.memo[("pre", f"/dynamic/soak_{i}/")] = [i]
    assert len(e.memo) <= DERIVED_MEMO_ENTRIES
