"""Fills constraint bitmasks on a worker thread while the forward runs."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor

import torch

from agentic_llm.engine.constraints import TokenMatcher, bitmask_words
from agentic_llm.observability import emit

__all__ = ["MaskFiller"]


class MaskFiller:
    """One worker thread that writes the next-token bitmasks of a step's matchers.

    The engine does not touch those matchers until :meth:`Future.result` returns,
    so each matcher is only used by one thread at a time.
    """

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentic-mask")

    def submit(self, matchers: list[TokenMatcher]) -> Future[torch.Tensor]:
        """Start filling a ``[len(matchers), words]`` int32 mask (all disallowed first)."""
        return self._pool.submit(self._fill, matchers)

    def _fill(self, matchers: list[TokenMatcher]) -> torch.Tensor:
        t0 = time.perf_counter()
        mask = torch.zeros((len(matchers), bitmask_words(self.vocab_size)), dtype=torch.int32)
        for i, m in enumerate(matchers):
            m.fill_next_token_bitmask(mask, i)
        emit.grammar_mask(time.perf_counter() - t0, batch_size=len(matchers))
        return mask

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
