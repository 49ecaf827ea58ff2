"""Random walks through a matcher: uniformly random allowed token at every step."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import xgrammar as xgr

from agentic_llm.grammar.matcher import DSLMatcher
from agentic_llm.grammar.vocab import VocabIndex

__all__ = ["WalkResult", "random_walk", "check_text"]


@dataclass
class WalkResult:
    """A finished (or stopped) walk: its text, token count and why it stopped."""

    text: str
    tokens: int
    completed: bool
    reason: str = ""


def random_walk(matcher: DSLMatcher, vocab: VocabIndex, rng: random.Random,
                max_tokens: int = 4000, brace_bias: float = 0.0) -> WalkResult:
    """Sample a document token by token from the matcher's masks.

    ``brace_bias``: at each step, with this probability, draw among the allowed
    tokens that hold a ``{`` when there are any, so walks write templates (and with
    them references to earlier outputs) far more often than a uniform draw does."""
    size = vocab.info.vocab_size
    bm = xgr.allocate_token_bitmask(1, size)
    out = bytearray()
    stops = set(vocab.info.stop_token_ids)
    for n in range(max_tokens):
        matcher.fill_next_token_bitmask(bm, 0)
        ids = VocabIndex.ids_in(bm[0].numpy().view(np.uint32))
        ids = ids[ids < size]
        if ids.size == 0:
            return WalkResult(out.decode("utf-8", "replace"), n, False, "empty mask")
        if brace_bias and rng.random() < brace_bias:
            braced = ids[((vocab.brace_bits[ids >> 5] >> (ids & 31).astype(np.uint32)) & 1) == 1]
            if braced.size:
                ids = braced
        tid = int(ids[rng.randrange(ids.size)])
        if tid in stops:
            ok = matcher.accept_token(tid)
            return WalkResult(out.decode("utf-8", "replace"), n, ok, "" if ok else "stop rejected")
        if not matcher.accept_token(tid):
            return WalkResult(out.decode("utf-8", "replace"), n, False, f"token {tid} rejected")
        out += vocab.info.token_bytes[tid]
    return WalkResult(out.decode("utf-8", "replace"), max_tokens, False, "token limit")


def check_text(matcher: DSLMatcher, token_ids: list[int]) -> tuple[bool, int]:
    """Feed ``token_ids``; ``(accepted, index of the first rejected token or len)``.

    Accepted means every token was allowed and the document is complete."""
    for i, t in enumerate(token_ids):
        if not matcher.accept_token(t):
            return False, i
    return matcher.is_terminated(), len(token_ids)
