"""``GrammarCompiler``: plan -> compiled grammar (cached) -> per-request ``DSLMatcher``.

The grammar text depends only on the plan's node-type whitelist (``GrammarSpec``), so compiled grammars are shared by every
plan with the same shape; everything else a plan varies (target, tools, argument
keys, references, budget) lives in the graph layer, which costs microseconds per
plan. ``precompile_standard()`` compiles the shapes the planner produces by default.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.grammar.budget import TokenBudget
from agentic_llm.grammar.ebnf import GrammarSpec, build_ebnf
from agentic_llm.grammar.graph import GraphPlan
from agentic_llm.grammar.maskcache import MaskCache
from agentic_llm.grammar.matcher import DSLMatcher
from agentic_llm.grammar.runtime import MAX_BLOCK_BYTES
from agentic_llm.grammar.tokenizer import TokenizerInfo
from agentic_llm.grammar.vocab import VocabIndex
from agentic_llm.observability import emit

__all__ = ["GrammarCompiler", "STANDARD_SHAPES"]

_ALL = ("start", "end", "assign", "tool_call", "assert", "fork", "join", "generate_subgraph",
        "dsl_call", "llm_call")
_BASE = ("start", "end", "assign", "assert", "fork", "join")
# Whitelists the planner derives for common permission sets.
STANDARD_SHAPES: tuple[tuple[str, ...], ...] = (
    _ALL,
    tuple(t for t in _ALL if t != "tool_call"),
    tuple(t for t in _ALL if t != "generate_subgraph"),
    ("start", "end", "assign", "tool_call", "assert", "fork", "join", "generate_subgraph"),
    ("start", "end", "assign", "tool_call", "assert", "fork", "join", "llm_call"),
    _BASE + ("tool_call",),
    _BASE,
)


class GrammarCompiler:
    """Compiles plans for one vocabulary and caches the results.

    Args:
        tokenizer_info: the vocabulary the masks are for.
        max_threads: xgrammar compile threads.
    """

    def __init__(self, tokenizer_info: TokenizerInfo, *, max_threads: int = 2) -> None:
        import xgrammar as xgr

        self.tokenizer_info = tokenizer_info
        self.vocab = VocabIndex(tokenizer_info)
        self._xc = xgr.GrammarCompiler(tokenizer_info.xgrammar, max_threads=max_threads)
        self._cache: dict[str, Any] = {}
        self._mask_caches: dict[str, MaskCache] = {}
        self._lock = threading.Lock()
        self.compile_seconds: dict[str, float] = {}

    def compiled_for(self, spec: GrammarSpec) -> Any:
        """The compiled grammar for ``spec`` (compiled once, then cached)."""
        key = spec.fingerprint
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        with self._lock:
            hit = self._cache.get(key)
            if hit is None:
                t0 = time.perf_counter()
                try:
                    hit = self._xc.compile_grammar(build_ebnf(spec))
                except RuntimeError as exc:  # xgrammar reports grammar errors this way
                    raise AgenticError(ErrorCode.GRAMMAR, f"grammar compile failed: {exc}") from exc
                self.compile_seconds[key] = time.perf_counter() - t0
                self._cache[key] = hit
        return hit

    def compiled_for_plan(self, plan: Any) -> Any:
        """The compiled grammar for ``plan`` (cached by its grammar shape)."""
        return self.compiled_for(GrammarSpec.from_plan(plan))

    def precompile_standard(self) -> int:
        """Compile the standard shapes; returns how many were compiled."""
        for types in STANDARD_SHAPES:
            self.compiled_for(GrammarSpec(types))
        return len(STANDARD_SHAPES)

    def warm_masks(self, shapes: tuple[tuple[str, ...], ...] = STANDARD_SHAPES, *,
                   walks: int = 2, seed: int = 0) -> int:
        """Fill the mask caches of ``shapes``: each shape's exemplar document
        (``warmup.exemplar_document``: every node type and field once) fed token by
        token, then ``walks`` random walks. Start-up work, like
        ``precompile_standard``, so that the first requests find the lexical
        classes they use already cached. Returns the number of cached classes."""
        import random

        import xgrammar as xgr

        from agentic_llm.grammar.walk import random_walk
        from agentic_llm.grammar.warmup import exemplar_document, warm_request
        from agentic_llm.planner import PlanRefusal, plan

        rng = random.Random(seed)
        bm = xgr.allocate_token_bitmask(1, self.tokenizer_info.vocab_size)
        for types in shapes:
            try:
                p = plan(warm_request(types))
            except PlanRefusal:
                continue
            m = self.matcher_for(p)
            for tid in self.tokenizer_info.encode(exemplar_document(p.node_types)):
                m.fill_next_token_bitmask(bm, 0)
                if not m.accept_token(tid):
                    break
            for _ in range(walks):
                random_walk(self.matcher_for(p, max_string=16), self.vocab, rng, max_tokens=1500)
        return sum(len(c) for c in self._mask_caches.values())

    def mask_cache(self, spec: GrammarSpec) -> MaskCache:
        """The mask cache shared by every matcher of ``spec``'s compiled grammar."""
        mc = self._mask_caches.get(spec.fingerprint)
        if mc is None:
            mc = self._mask_caches.setdefault(spec.fingerprint, MaskCache())
        return mc

    def clear_caches(self) -> None:
        """Forget compiled grammars and cached masks (cold-start measurements)."""
        with self._lock:
            self._cache.clear()
            self._mask_caches.clear()
            self._xc.clear_cache()

    def matcher_for(self, plan: Any, *, max_string: int | None = None,
                    verify: bool = False, max_tokens: int | None = None) -> DSLMatcher:
        """A fresh matcher for ``plan`` (an ``ExecutionPlan``).

        ``max_string`` caps string contents at about that many characters (a string
        that reaches it must close); random walks use it to stay finite. ``verify``
        checks every mask against the directly computed one (tests).
        ``max_tokens``: the output token limit the document must close within (the
        engine passes ``min(plan.max_tokens, context window - prompt tokens)``);
        with it the matcher reserves the tokens that close the document and, for
        the ``agenticrt`` target, keeps the text under ``MAX_BLOCK_BYTES``
        (``grammar.budget``). Without it the mask is the grammar's alone.
        """
        t0 = time.perf_counter()
        spec = GrammarSpec.from_plan(plan)
        cache_hit = spec.fingerprint in self._cache
        compiled = self.compiled_for(spec)
        gp = GraphPlan.from_plan(plan, max_string=max_string)
        # the brace tokens a string of this plan may hold: built once per set of
        # template variables, here rather than at the first string position
        self.vocab.brace_drop_bits(gp.variables)
        budget = None
        if max_tokens is not None:
            budget = TokenBudget(gp, self.vocab, max_tokens,
                                 MAX_BLOCK_BYTES if gp.strict_strings else None)
        matcher = DSLMatcher(compiled, gp, self.vocab, cache=self.mask_cache(spec), verify=verify,
                             budget=budget)
        emit.grammar_compile(time.perf_counter() - t0, cache_hit)
        return matcher

    def json_baseline(self) -> Any:
        """xgrammar's builtin JSON grammar on the same vocabulary (benchmark baseline)."""
        return self._xc.compile_builtin_json_grammar()
