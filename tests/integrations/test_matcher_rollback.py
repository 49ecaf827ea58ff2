"""DSLMatcher rollback over speculative draft trees: one history entry per accepted
step on every path (token, string, forced), so a rolled-back matcher is
indistinguishable from a fresh replay, also past the end of the document."""

from __future__ import annotations

import random

import numpy as np
import pytest
import xgrammar as xgr

from agentic_llm.grammar import GrammarCompiler
from agentic_llm.grammar.matcher import DSLMatcher
from agentic_llm.grammar.walk import random_walk
from agentic_llm.planner import ExecutionPlan
from tests.grammar.plans import random_plan
from tests.integrations.drafttree import DraftTree, allowed_ids, random_tree


def _finished_walk(compiler: GrammarCompiler, rng: random.Random) -> tuple[ExecutionPlan, list[int]]:
    """A plan and the tokens of a complete random document for it, stop token included."""
    for _ in range(50):
        p = random_plan(rng, max_tools=4, max_nodes=4)
        m = compiler.matcher_for(p, max_string=8)
        rec = _Recorder(m)
        r = random_walk(rec, compiler.vocab, rng, max_tokens=600)  # type: ignore[arg-type]
        if r.completed:
            return p, rec.ids
    raise AssertionError("no random walk finished")


class _Recorder:
    """Passes calls through to a matcher, recording the accepted tokens."""

    def __init__(self, m: DSLMatcher) -> None:
        self.m, self.ids = m, []  # type: ignore[var-annotated]

    def fill_next_token_bitmask(self, bm, index: int = 0) -> None:  # type: ignore[no-untyped-def]
        self.m.fill_next_token_bitmask(bm, index)

    def accept_token(self, t: int) -> bool:
        ok = self.m.accept_token(t)
        if ok:
            self.ids.append(t)
        return ok


def _replay_mask(compiler: GrammarCompiler, p: ExecutionPlan, ids: list[int]) -> np.ndarray:
    m = compiler.matcher_for(p, max_string=8)
    for t in ids:
        assert m.accept_token(t)
    bm = xgr.allocate_token_bitmask(1, compiler.tokenizer_info.vocab_size)
    m.fill_next_token_bitmask(bm, 0)
    return bm[0].numpy().copy()


def _traverse(m: DSLMatcher, tree: DraftTree, masks: dict[int, np.ndarray], bm) -> None:  # type: ignore[no-untyped-def]
    """What SGLang's ``traverse_tree`` does with a grammar: accept, fill, rollback(1)."""

    def dfs(node: int, parent: int) -> None:
        ok = node == 0
        if node:
            tok = tree.tokens[node]
            ok = bool((masks[parent][tok // 32] >> (tok % 32)) & 1)
        if ok:
            if node:
                assert m.accept_token(tree.tokens[node]), f"token allowed by the mask rejected at node {node}"
            if not m.is_terminated():
                m.fill_next_token_bitmask(bm, 0)
                masks[node] = bm[0].numpy().copy()
                if tree.first_child[node] != -1:
                    dfs(tree.first_child[node], node)
            if node:
                m.rollback(1)
        if tree.next_sibling[node] != -1:
            dfs(tree.next_sibling[node], parent)

    dfs(0, -1)


def test_random_draft_trees_equal_fresh_replays(tiny_compiler: GrammarCompiler) -> None:
    rng = random.Random(7)
    size = tiny_compiler.tokenizer_info.vocab_size
    stops = set(tiny_compiler.tokenizer_info.stop_token_ids)
    bm = xgr.allocate_token_bitmask(1, size)
    checked = trees_past_end = 0
    for _ in range(12):
        p, doc = _finished_walk(tiny_compiler, rng)
        for back in (2, 3, 4, rng.randint(5, max(5, len(doc) - 1))):
            cut = max(1, len(doc) - back)
            prefix = doc[:cut - 1]

            def mask_at(path: list[int], prefix: list[int] = prefix, root: int = doc[cut - 1],
                        p: ExecutionPlan = p) -> np.ndarray:
                return allowed_ids(_replay_mask(tiny_compiler, p, prefix + [root] + path), size)

            tree = random_tree(rng, mask_at, doc[cut - 1], stops, depth=4, width=3)
            trees_past_end += any(t in stops for t in tree.tokens[1:])
            m = tiny_compiler.matcher_for(p, max_string=8)
            for t in prefix + [doc[cut - 1]]:
                assert m.accept_token(t)
            masks: dict[int, np.ndarray] = {}
            _traverse(m, tree, masks, bm)
            for node, row in masks.items():
                want = _replay_mask(tiny_compiler, p, prefix + [doc[cut - 1]] + tree.path(node))
                assert np.array_equal(row, want), f"node {node}: mask differs from a fresh replay"
                checked += 1
            # after the traversal the matcher is back at the root
            m.fill_next_token_bitmask(bm, 0)
            assert np.array_equal(bm[0].numpy(), masks[0])
    assert checked > 100 and trees_past_end > 5


def test_rollback_past_the_stop_token(tiny_compiler: GrammarCompiler) -> None:
    rng = random.Random(3)
    p, doc = _finished_walk(tiny_compiler, rng)
    size = tiny_compiler.tokenizer_info.vocab_size
    bm = xgr.allocate_token_bitmask(1, size)
    m = tiny_compiler.matcher_for(p, max_string=8)
    for t in doc:
        assert m.accept_token(t)
    assert m.is_terminated()
    m.rollback(2)
    m.fill_next_token_bitmask(bm, 0)
    assert np.array_equal(bm[0].numpy(), _replay_mask(tiny_compiler, p, doc[:-2]))
    for t in doc[-2:]:
        assert m.accept_token(t)
    assert m.is_terminated()


def test_string_and_forced_steps_roll_back_as_one(tiny_compiler: GrammarCompiler) -> None:
    """``accept_string`` (jump-forward, forced closing text) is one step for
    rollback, before and after the document's end."""
    rng = random.Random(11)
    size = tiny_compiler.tokenizer_info.vocab_size
    info = tiny_compiler.tokenizer_info
    bm = xgr.allocate_token_bitmask(1, size)
    for _ in range(3):
        p, doc = _finished_walk(tiny_compiler, rng)
        m = tiny_compiler.matcher_for(p, max_string=8)
        steps: list[list[int]] = []
        pos = 0
        body = doc[:-1]
        while pos < len(body):
            jf = m.find_jump_forward_string()
            text = info.decode(body[pos:])
            if jf and text.startswith(jf) and len(info.encode(jf)) and info.decode(body[pos:pos + len(info.encode(jf))]) == jf:
                n = len(info.encode(jf))
                assert m.accept_string(jf)
                steps.append(body[pos:pos + n])
                pos += n
            else:
                assert m.accept_token(body[pos])
                steps.append([body[pos]])
                pos += 1
        assert m.accept_token(doc[-1])
        steps.append([doc[-1]])
        for k in (1, 2, 3):
            if k > len(steps):
                break
            m2 = tiny_compiler.matcher_for(p, max_string=8)
            for s in steps[:-k]:
                for t in s:
                    assert m2.accept_token(t)
            want = np.zeros_like(bm[0].numpy())
            if not m2.is_terminated():
                m2.fill_next_token_bitmask(bm, 0)
                want = bm[0].numpy().copy()
            m.rollback(k)
            got = np.zeros_like(want)
            if not m.is_terminated():
                m.fill_next_token_bitmask(bm, 0)
                got = bm[0].numpy().copy()
            assert np.array_equal(got, want), f"rollback({k}) differs from a replay"
            for s in steps[-k:]:
                text = info.decode(s)
                assert (m.accept_string(text) if len(s) > 1 else m.accept_token(s[0]))
        assert m.is_terminated()


def test_rollback_beyond_history_is_refused(tiny_compiler: GrammarCompiler) -> None:
    p, doc = _finished_walk(tiny_compiler, random.Random(5))
    m = tiny_compiler.matcher_for(p, max_string=8)
    for t in doc[:3]:
        assert m.accept_token(t)
    with pytest.raises(ValueError, match="rollback"):
        m.rollback(4)
    m.rollback(3)
    bm = xgr.allocate_token_bitmask(1, tiny_compiler.tokenizer_info.vocab_size)
    m.fill_next_token_bitmask(bm, 0)
    assert np.array_equal(bm[0].numpy(), _replay_mask(tiny_compiler, p, []))
