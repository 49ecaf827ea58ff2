"""Draft-tree traversal cost of DSLMatcher: rollback restoring the position's
fast-path caches (the matcher) against rollback dropping them (as before).

Trees along the benchmark's realistic documents on the 151k Qwen vocabulary: at
every 8th position a tree of depth 4, each node's children the document's next
token plus up to 2 other allowed tokens, traversed as SGLang's ``traverse_tree``
does (accept, fill, rollback(1)). Warm mask caches; medians of 5 rounds.

    PYTHONPATH=. python scripts/bench-draft-tree-rollback.py
"""

from __future__ import annotations

import random
import statistics
import time

import numpy as np
import xgrammar as xgr

from agentic_llm.benchmarks.grammar import realistic_documents
from agentic_llm.grammar import GrammarCompiler, TokenizerInfo
from agentic_llm.grammar.matcher import DSLMatcher
from agentic_llm.grammar.vocab import VocabIndex
from agentic_llm.planner import GenerateRequest, plan


class DroppingMatcher(DSLMatcher):
    """Rollback that forgets the fast-path caches, as the matcher did before."""

    def rollback(self, num_tokens: int) -> None:
        super().rollback(num_tokens)
        self._slot_pre = self._free_row = self._free_carry = None


def traverse(m: DSLMatcher, doc: list[int], pos: int, rng: random.Random, bm, depth: int = 4) -> int:  # type: ignore[no-untyped-def]
    nodes = 0
    if depth == 0 or m.is_terminated():
        return nodes
    m.fill_next_token_bitmask(bm, 0)
    allowed = VocabIndex.ids_in(bm[0].numpy().view(np.uint32))
    kids = [doc[pos]] if pos < len(doc) else []
    kids += [int(allowed[rng.randrange(allowed.size)]) for _ in range(2)] if allowed.size else []
    for i, t in enumerate(dict.fromkeys(kids)):
        if m.accept_token(t):
            nodes += 1 + traverse(m, doc, pos + 1 if i == 0 else len(doc), rng, bm, depth - 1)
            m.rollback(1)
    return nodes


def run(compiler: GrammarCompiler, cls: type[DSLMatcher]) -> tuple[float, int]:
    rng = random.Random(0)
    bm = xgr.allocate_token_bitmask(1, compiler.tokenizer_info.vocab_size)
    total = 0
    t0 = time.perf_counter()
    for req, text in realistic_documents():
        p = plan(GenerateRequest.from_json(req))
        base = compiler.matcher_for(p)
        m = cls(base._compiled, base._gp, base._vocab, cache=base._cache)  # noqa: SLF001
        doc = compiler.tokenizer_info.encode(text)
        for pos, t in enumerate(doc):
            if pos % 8 == 0:
                total += traverse(m, doc, pos, rng, bm)
            assert m.accept_token(t)
    return time.perf_counter() - t0, total


def main() -> None:
    compiler = GrammarCompiler(TokenizerInfo.from_qwen())
    run(compiler, DSLMatcher)  # warm the mask caches
    rows = {"restore caches (matcher)": [], "drop caches (before)": []}
    nodes = 0
    for _ in range(5):
        for name, cls in (("restore caches (matcher)", DSLMatcher), ("drop caches (before)", DroppingMatcher)):
            secs, nodes = run(compiler, cls)
            rows[name].append(secs)
    base = statistics.median(rows["drop caches (before)"])
    for name, xs in rows.items():
        med = statistics.median(xs)
        print(f"{name:28s} median {med * 1e3:8.1f} ms  {med / nodes * 1e6:7.1f} us/node  "
              f"ratio to before {med / base:5.2f}")
    print(f"{nodes} tree nodes per round")


if __name__ == "__main__":
    main()
