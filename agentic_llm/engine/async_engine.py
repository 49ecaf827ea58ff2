"""A background loop around :class:`LLMEngine` with ``async for`` token streaming.

One daemon thread owns the engine and steps it while any request is live; callers on
any thread or event loop add and abort requests through a lock, and every output is
handed to the caller's event loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from agentic_llm.engine.constraints import TokenMatcher
from agentic_llm.engine.diagnostics import DiagnosticsConfig
from agentic_llm.engine.llm_engine import LLMEngine, PrefixCacheArg
from agentic_llm.engine.outputs import RequestOutput
from agentic_llm.engine.sampling import SamplingParams
from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["AsyncLLMEngine"]

log = logging.getLogger(__name__)

Sink = Callable[[RequestOutput | BaseException], None]


class AsyncLLMEngine:
    """Thread-safe, asyncio-friendly front of an :class:`LLMEngine`."""

    def __init__(self, engine: LLMEngine) -> None:
        self.engine = engine
        self._cond = threading.Condition()
        self._sinks: dict[str, Sink] = {}
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="agentic-engine", daemon=True)
        self._thread.start()

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
        """Queue a request whose outputs go to ``sink`` (called on the loop thread)."""
        with self._cond:
            if self._stopped:
                raise AgenticError(ErrorCode.UNAVAILABLE, "the engine is shut down")
            rid = self.engine.add_request(prompt, params, matcher, diagnostics, hook_info, request_id, **tags)
            self._sinks[rid] = sink
            self._cond.notify()
        return rid

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
                    raise item
                finished = item.finished
                yield item
                if finished:
                    return
        finally:
            if not finished:
                self.abort(rid)

    def abort(self, request_id: str) -> bool:
        """End a request (its stream gets a final ``abort`` output)."""
        with self._cond:
            ok = self.engine.abort(request_id)
            self._cond.notify()
            return ok

    def stats(self) -> dict[str, Any]:
        with self._cond:
            return self.engine.stats()

    def shutdown(self) -> None:
        """Stop the loop thread; live streams receive ERR_UNAVAILABLE."""
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(timeout=10)
        err = AgenticError(ErrorCode.UNAVAILABLE, "the engine shut down")
        for sink in self._sinks.values():
            sink(err)
        self._sinks.clear()
        self.engine.close()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and not self.engine.has_unfinished_requests():
                    self._cond.wait()
                if self._stopped:
                    return
                try:
                    outs = self.engine.step()
                except Exception as exc:  # the loop must survive anything a step does
                    log.exception("engine step failed")
                    outs = []
                    err = AgenticError(ErrorCode.INTERNAL, f"engine step failed: {exc}")
                    for rid in list(self._sinks):
                        self.engine.abort(rid)
                        self._sinks.pop(rid)(err)
                sends = []
                for o in outs:
                    sink = self._sinks.get(o.request_id)
                    if sink is not None:
                        sends.append((sink, o))
                        if o.finished:
                            del self._sinks[o.request_id]
            for sink, o in sends:
                try:
                    sink(o)
                except Exception:  # a closed event loop on the caller's side
                    log.warning("could not deliver output for %s", o.request_id)
