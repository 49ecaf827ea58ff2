"""A background thread that owns an ``LLMEngine`` and drives its ``step()`` loop.

Front ends never touch the engine directly: they ``submit`` a prompt and receive the
request's tokens through a :class:`Channel` (a thread-safe queue). The loop thread is
the only thread that calls ``add_request``, ``step`` and ``abort``, so the engine needs
no locking of its own. Deadlines are enforced here: an expired request is aborted in
the engine (its pages and slot are freed) and its channel gets ERR_TIMEOUT.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.observability.health import Heartbeat

__all__ = ["Channel", "ChannelItem", "EngineLoop"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChannelItem:
    """One message to a request: new tokens, the finish, or an error."""

    token_ids: tuple[int, ...] = ()
    finished: bool = False
    finish_reason: str = ""
    error: AgenticError | None = None
    cached_tokens: int = 0
    forced_tokens: int = 0


@dataclass
class Channel:
    """Where the loop sends one request's output; read with :meth:`get`."""

    request_id: str
    deadline: float | None
    queue: queue.Queue[ChannelItem] = field(default_factory=queue.Queue)
    closed: bool = False

    def get(self, timeout: float | None = None) -> ChannelItem:
        """Next item; ERR_TIMEOUT when nothing arrives within ``timeout`` seconds."""
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            raise AgenticError(ErrorCode.TIMEOUT, "no output from the engine in time") from None


@dataclass
class _Submit:
    channel: Channel
    prompt_ids: list[int]
    params: Any
    kwargs: dict[str, Any]


def _field(obj: Any, *names: str, default: Any = None) -> Any:
    for n in names:
        if hasattr(obj, n):
            return getattr(obj, n)
    return default


class EngineLoop:
    """Runs ``engine.step()`` on its own thread while any request is in flight.

    Args:
        engine: an object with ``add_request``, ``step``, ``abort`` and
            ``has_unfinished_requests`` (or ``stats``), as ``agentic_llm.engine.LLMEngine``.
    """

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._cond = threading.Condition()
        self._submits: list[_Submit] = []
        self._aborts: list[str] = []
        self._live: dict[str, Channel] = {}
        self._stop = False
        self._ids = itertools.count(1)
        try:
            sig = inspect.signature(engine.add_request)
            var_kw = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
            self._add_params: frozenset[str] | None = None if var_kw else frozenset(sig.parameters)
        except (TypeError, ValueError):
            self._add_params = None
        self.steps = 0
        self.errors = 0
        #: beaten every iteration (at least every 0.5 s when idle), for health checks
        self.heartbeat = Heartbeat()
        self._thread = threading.Thread(target=self._run, name="agentic-engine-loop", daemon=True)
        self._thread.start()

    # -- front-end side -------------------------------------------------------------
    def new_request_id(self) -> str:
        return f"req-{next(self._ids)}"

    def submit(
        self,
        prompt_ids: Sequence[int],
        params: Any,
        *,
        request_id: str | None = None,
        deadline: float | None = None,
        **kwargs: Any,
    ) -> Channel:
        """Queue a request for the engine; its output arrives on the returned channel.

        ``deadline`` is a ``time.monotonic()`` instant after which the request is
        aborted. ``kwargs`` (``matcher``, ``hook_info``, scheduler fields) go to
        ``engine.add_request``; those its signature does not take are dropped.
        """
        if self._stop:
            raise AgenticError(ErrorCode.UNAVAILABLE, "the engine is shutting down")
        ch = Channel(request_id or self.new_request_id(), deadline)
        with self._cond:
            kw = self._accepted({**kwargs, "deadline": deadline})
            self._submits.append(_Submit(ch, list(prompt_ids), params, kw))
            self._cond.notify()
        return ch

    def abort(self, request_id: str) -> None:
        """Stop a request (a client went away); frees its pages and slot."""
        with self._cond:
            self._aborts.append(request_id)
            self._cond.notify()

    def _accepted(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        if self._add_params is None:
            return {k: v for k, v in kwargs.items() if v is not None}
        return {k: v for k, v in kwargs.items() if k in self._add_params and v is not None}

    @property
    def in_flight(self) -> int:
        """Requests submitted and not yet finished."""
        with self._cond:
            return len(self._live) + len(self._submits)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread; requests still in flight get ERR_UNAVAILABLE."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout)

    # -- loop thread ----------------------------------------------------------------
    def _has_work(self) -> bool:
        fn = getattr(self.engine, "has_unfinished_requests", None)
        if callable(fn):
            return bool(fn())
        return bool(self._live)

    @property
    def thread(self) -> threading.Thread:
        """The loop thread (health checks watch that it is alive)."""
        return self._thread

    def _run(self) -> None:
        while True:
            self.heartbeat.beat()
            with self._cond:
                while not (self._stop or self._submits or self._aborts or self._live
                           or self._has_work()):
                    # Poll now and then: an aborted request leaves work in the engine
                    # (its final output) that only a step reports.
                    self._cond.wait(0.5)
                if self._stop:
                    break
                submits, self._submits = self._submits, []
                aborts, self._aborts = self._aborts, []
            for s in submits:
                self._add(s)
            for rid in aborts:
                self._abort(rid, None)
            self._expire()
            if not self._live and not self._has_work():
                continue
            if self._live and not self._has_work():
                # The engine forgot requests we still track: fail them, do not spin.
                for rid in list(self._live):
                    self._fail(rid, AgenticError(ErrorCode.INTERNAL, "the engine dropped the request"))
                continue
            try:
                outputs = self.engine.step()
            except Exception as exc:  # noqa: BLE001 - one bad batch must not kill the server
                self.errors += 1
                _log.exception("engine step failed")
                err = exc if isinstance(exc, AgenticError) else AgenticError(
                    ErrorCode.INTERNAL, f"the engine failed: {type(exc).__name__}: {exc}")
                for rid in list(self._live):
                    self._abort(rid, err)
                continue
            self.steps += 1
            for out in outputs or ():
                self._dispatch(out)
        for rid in list(self._live):
            self._abort(rid, AgenticError(ErrorCode.UNAVAILABLE, "the engine is shutting down"))
        with self._cond:
            pending, self._submits = self._submits, []
        for s in pending:
            s.channel.queue.put(ChannelItem(error=AgenticError(
                ErrorCode.UNAVAILABLE, "the engine is shutting down")))

    def _add(self, s: _Submit) -> None:
        ch = s.channel
        try:
            self.engine.add_request(s.prompt_ids, s.params, request_id=ch.request_id, **s.kwargs)
        except AgenticError as exc:
            ch.queue.put(ChannelItem(error=exc))
            return
        except Exception as exc:  # noqa: BLE001 - reported to the caller, loop goes on
            _log.exception("add_request failed")
            ch.queue.put(ChannelItem(error=AgenticError(
                ErrorCode.INTERNAL, f"the engine refused the request: {type(exc).__name__}: {exc}")))
            return
        self._live[ch.request_id] = ch

    def _dispatch(self, out: Any) -> None:
        rid = str(_field(out, "request_id", "rid", default=""))
        ch = self._live.get(rid)
        if ch is None:
            return
        new = tuple(int(t) for t in _field(out, "new_token_ids", default=()) or ())
        finished = bool(_field(out, "finished", default=False))
        metrics = _field(out, "metrics")
        reason = _field(out, "finish_reason", default="")
        reason = str(getattr(reason, "value", reason) or "")
        error = _field(out, "error")
        if new or finished:
            ch.queue.put(ChannelItem(
                token_ids=new, finished=finished, finish_reason=reason,
                error=error if isinstance(error, AgenticError) else None,
                cached_tokens=int(_field(metrics, "num_cached_tokens", default=0) or 0),
                forced_tokens=int(_field(metrics, "num_forced_tokens", default=0) or 0),
            ))
        if finished:
            del self._live[rid]

    def _expire(self) -> None:
        now = time.monotonic()
        for rid, ch in list(self._live.items()):
            if ch.deadline is not None and now >= ch.deadline:
                self._abort(rid, AgenticError(
                    ErrorCode.TIMEOUT, "the request ran past its deadline and was stopped"))

    def _abort(self, rid: str, error: AgenticError | None) -> None:
        ch = self._live.pop(rid, None)
        if ch is None:
            return
        try:
            self.engine.abort(rid)
        except Exception:  # noqa: BLE001 - the request is gone either way
            _log.exception("engine abort failed for %s", rid)
        ch.queue.put(ChannelItem(finished=True, finish_reason="abort",
                                 error=error or AgenticError(ErrorCode.CANCELLED, "request cancelled")))

    def _fail(self, rid: str, error: AgenticError) -> None:
        ch = self._live.pop(rid, None)
        if ch is not None:
            ch.queue.put(ChannelItem(finished=True, finish_reason="abort", error=error))
