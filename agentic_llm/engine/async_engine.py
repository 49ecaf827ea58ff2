"""A background loop around :class:`LLMEngine` with ``async for`` token streaming.

A thin adapter: an :class:`~agentic_llm.engine.loop.EngineLoop` owns the engine and
its thread; each request's channel hands outputs to the caller's event loop with
``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from agentic_llm.engine.constraints import TokenMatcher
from agentic_llm.engine.diagnostics import DiagnosticsConfig
from agentic_llm.engine.llm_engine import LLMEngine, PrefixCacheArg
from agentic_llm.engine.loop import ChannelItem, EngineLoop
from agentic_llm.engine.outputs import RequestOutput
from agentic_llm.engine.sampling import SamplingParams

__all__ = ["AsyncLLMEngine"]

Sink = Callable[[RequestOutput | BaseException], None]


class AsyncLLMEngine:
    """``async for`` streaming over an :class:`EngineLoop` (the loop owns the engine)."""

    def __init__(self, engine: LLMEngine) -> None:
        self.engine = engine
        self.loop = EngineLoop(engine)

    @classmethod
    def from_pretrained(
        cls,
        model_dir: str | Path,
        *,
        device: str = "cpu",
        dtype: torch.dtype = torch.float32,
        prefix_cache: PrefixCacheArg = None,
        **engine_options: Any,
    ) -> AsyncLLMEngine:
        """Like :meth:`LLMEngine.from_pretrained`, with the loop thread started."""
        return cls(LLMEngine.from_pretrained(model_dir, device=device, dtype=dtype, prefix_cache=prefix_cache, **engine_options))

    @property
    def tokenizer(self) -> Any:
        return self.engine.tokenizer

    def submit(
        self,
        prompt: Sequence[int] | str,
        params: SamplingParams | None,
        sink: Sink,
        *,
        matcher: TokenMatcher | None = None,
        diagnostics: DiagnosticsConfig | None = None,
        hook_info: Any = None,
        request_id: str | None = None,
        **tags: Any,
    ) -> str:
        """Queue a request whose outputs go to ``sink`` (called on the loop thread).

        ``sink`` gets each :class:`RequestOutput`, or an :class:`AgenticError` when
        the loop ends the request without one (shutdown, a refusal at submit).
        """

        def deliver(item: ChannelItem) -> None:
            if item.output is not None:
                sink(item.output)
            elif item.error is not None:
                sink(item.error)

        ch = self.loop.submit(prompt, params or SamplingParams(), request_id=request_id, sink=deliver,
                              matcher=matcher, diagnostics=diagnostics, hook_info=hook_info, **tags)
        return ch.request_id

    async def generate(
        self,
        prompt: Sequence[int] | str,
        params: SamplingParams | None = None,
        *,
        matcher: TokenMatcher | None = None,
        diagnostics: DiagnosticsConfig | None = None,
        hook_info: Any = None,
        request_id: str | None = None,
        **tags: Any,
    ) -> AsyncIterator[RequestOutput]:
        """Stream a request's outputs (``new_token_ids`` are the deltas); the last one is finished.

        Leaving the ``async for`` early (or cancelling the task) aborts the request.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[RequestOutput | BaseException] = asyncio.Queue()

        def sink(item: RequestOutput | BaseException) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        rid = self.submit(prompt, params, sink, matcher=matcher, diagnostics=diagnostics,
                          hook_info=hook_info, request_id=request_id, **tags)
        finished = False
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    finished = True
                    raise item
                finished = item.finished
                yield item
                if finished:
                    return
        finally:
            if not finished:
                self.abort(rid)

    def abort(self, request_id: str) -> None:
        """End a request (its stream gets a final ``abort`` output)."""
        self.loop.abort(request_id)

    def stats(self) -> dict[str, Any]:
        """The engine's counters as last published by the loop thread."""
        return self.loop.stats()

    def shutdown(self) -> None:
        """Stop the loop thread; live streams receive ERR_UNAVAILABLE."""
        self.loop.close(timeout=10)
        self.engine.close()
