"""The engine loop: the one place that calls ``engine.step()``.

An :class:`EngineLoop` owns an engine. Front ends ``submit`` a prompt and read the
request's outputs from a :class:`Channel`; they ``abort`` a request by id. The loop
applies its mailbox (submits, aborts), expires deadlines, steps the engine, tells its
step observers (metrics, batch-size feedback) what the step did, and routes each
output to its request's channel. Everything that touches the engine runs on the one
thread that drives the loop, so the engine needs no locking of its own.

Two ways to drive it, the same code either way:

- ``EngineLoop(engine)`` starts a daemon thread (``serve``, the pipeline, the async
  API). It beats :attr:`EngineLoop.heartbeat` on every iteration and at least every
  ``idle_beat_s`` while idle, so liveness means "the loop thread is alive and
  responsive", not "it had work".
- ``EngineLoop(engine, thread=False)`` is stepped by its caller with
  :meth:`EngineLoop.run_once` or :meth:`EngineLoop.drain` (``LLMEngine.generate``,
  step-by-step benchmarks).

A request's deadline is the earlier of ``submit(deadline=...)`` and its
``params.timeout_s``; the loop is the only place that checks it. An expired request
finishes with ERR_TIMEOUT, an aborted one with ERR_CANCELLED, and a request the engine
refuses at ``add_request`` (any exception but ``KeyboardInterrupt``/``SystemExit``)
gets a finished item with its ERR_* code at once.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentic_llm.engine.outputs import FinishReason, RequestOutput
from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.observability.health import CheckFn, Heartbeat, heartbeat_check

__all__ = ["Channel", "ChannelItem", "EngineLoop", "LoopEngine", "StepObserver"]

_log = logging.getLogger(__name__)

#: how often an idle loop beats its heartbeat and refreshes its published stats
IDLE_BEAT_S = 0.5
#: seconds without a beat after which the loop counts as stuck (liveness fails)
STALL_AFTER_S = 8.0


class LoopEngine(Protocol):
    """What the loop needs from an engine (``agentic_llm.engine.LLMEngine`` has it)."""

    def add_request(self, prompt_token_ids: Any, params: Any = ..., matcher: Any = ...,
                    diagnostics: Any = ..., hook_info: Any = ..., request_id: str | None = ...,
                    **tags: Any) -> str: ...

    def step(self) -> list[RequestOutput]: ...

    def abort(self, request_id: str, error: AgenticError | None = None) -> bool: ...

    def has_unfinished_requests(self) -> bool: ...

    def stats(self) -> dict[str, Any]: ...


class StepObserver(Protocol):
    """Told about every engine step, on the loop's thread.

    ``before_step`` runs right before ``engine.step()``; ``after_step`` right after,
    with the step's outputs and its wall time. Observers may read and tune the engine
    (they run on the thread that owns it); an observer that raises is logged and
    dropped, the loop goes on.
    """

    def before_step(self) -> None: ...

    def after_step(self, outputs: Sequence[RequestOutput], duration_s: float) -> None: ...


@dataclass(frozen=True)
class ChannelItem:
    """One message to a request: new tokens, the finish, or an error.

    ``output`` is the engine's :class:`RequestOutput` when the item comes from a step
    (None for errors the loop raises itself: refusal at submit, deadline, shutdown).
    """

    token_ids: tuple[int, ...] = ()
    finished: bool = False
    finish_reason: str = ""
    error: AgenticError | None = None
    cached_tokens: int = 0
    forced_tokens: int = 0
    output: RequestOutput | None = None


@dataclass
class Channel:
    """Where the loop sends one request's output; read with :meth:`get`.

    With ``sink`` set, items are handed to it (on the loop thread) instead of being
    queued; the async API uses that to wake its event loop.
    """

    request_id: str
    deadline: float | None
    sink: Callable[[ChannelItem], None] | None = None
    queue: queue.Queue[ChannelItem] = field(default_factory=queue.Queue)
    closed: bool = False

    def put(self, item: ChannelItem) -> None:
        if item.finished:
            self.closed = True
        if self.sink is None:
            self.queue.put(item)
            return
        try:
            self.sink(item)
        except Exception:  # noqa: BLE001 - e.g. the caller's event loop is closed
            _log.warning("could not deliver output for %s", self.request_id)

    def get(self, timeout: float | None = None) -> ChannelItem:
        """Next item; ERR_TIMEOUT when nothing arrives within ``timeout`` seconds."""
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            raise AgenticError(ErrorCode.TIMEOUT, "no output from the engine in time") from None


@dataclass
class _Submit:
    channel: Channel
    prompt: Sequence[int] | str
    params: Any
    kwargs: dict[str, Any]


def _refusal(exc: BaseException) -> AgenticError:
    if isinstance(exc, AgenticError):
        return exc
    return AgenticError(ErrorCode.INTERNAL,
                        f"the engine refused the request: {type(exc).__name__}: {exc}")


class EngineLoop:
    """Owns an engine and steps it; see the module docstring.

    Args:
        engine: an ``LLMEngine`` (see :class:`LoopEngine`).
        observers: step observers, called in order around every step.
        thread: start a daemon thread that drives the loop; False: the caller drives
            it with :meth:`run_once` / :meth:`drain`.
        idle_beat_s: heartbeat (and published stats) period while idle.
        stall_after_s: seconds without a beat after which :meth:`health_check`
            reports the loop as stuck.
    """

    def __init__(self, engine: Any, *, observers: Iterable[StepObserver] = (),
                 thread: bool = True, idle_beat_s: float = IDLE_BEAT_S,
                 stall_after_s: float = STALL_AFTER_S) -> None:
        self.engine = engine
        self.observers: list[StepObserver] = list(observers)
        self.idle_beat_s = idle_beat_s
        self.stall_after_s = stall_after_s
        self._cond = threading.Condition()
        self._submits: list[_Submit] = []
        self._aborts: list[str] = []
        self._live: dict[str, Channel] = {}
        self._stop = False
        self._ids = itertools.count(1)
        self.steps = 0
        self.errors = 0
        #: beaten every iteration and at least every ``idle_beat_s`` while idle
        self.heartbeat = Heartbeat()
        self._stats: dict[str, Any] = {}
        self._stats_at = 0.0
        self._dirty = False  # stepped since the stats were last published
        self._thread: threading.Thread | None = None
        self._publish_stats(force=True)
        if thread:
            self._thread = threading.Thread(target=self._run, name="agentic-engine-loop", daemon=True)
            self._thread.start()

    # -- any thread -----------------------------------------------------------------
    def new_request_id(self) -> str:
        return f"req-{next(self._ids)}"

    def add_observer(self, observer: StepObserver) -> None:
        """Add a step observer (takes effect from the next step)."""
        with self._cond:
            self.observers = [*self.observers, observer]

    def remove_observer(self, observer: StepObserver) -> None:
        """Stop telling ``observer`` about steps (a no-op if it is not there)."""
        with self._cond:
            self.observers = [o for o in self.observers if o is not observer]

    def submit(
        self,
        prompt: Sequence[int] | str,
        params: Any,
        *,
        request_id: str | None = None,
        deadline: float | None = None,
        sink: Callable[[ChannelItem], None] | None = None,
        **kwargs: Any,
    ) -> Channel:
        """Queue a request; its output arrives on the returned channel.

        ``deadline`` is a ``time.monotonic()`` instant; ``params.timeout_s`` (from
        now) also bounds it. ``kwargs`` (``matcher``, ``diagnostics``, ``hook_info``,
        ``priority``, ``dag_id``, ``branch_id``) go to ``engine.add_request``; None
        values are left out.

        Raises:
            AgenticError: ERR_UNAVAILABLE once the loop is closing.
        """
        timeout_s = getattr(params, "timeout_s", None)
        if timeout_s is not None:
            own = time.monotonic() + float(timeout_s)
            deadline = own if deadline is None else min(deadline, own)
        ch = Channel(request_id or self.new_request_id(), deadline, sink)
        kw = {k: v for k, v in kwargs.items() if v is not None}
        with self._cond:
            if self._stop:
                raise AgenticError(ErrorCode.UNAVAILABLE, "the engine is shutting down")
            self._submits.append(_Submit(ch, prompt, params, kw))
            self._cond.notify()
        return ch

    def abort(self, request_id: str) -> None:
        """Stop a request (a client went away); frees its pages and slot."""
        with self._cond:
            self._aborts.append(request_id)
            self._cond.notify()

    @property
    def in_flight(self) -> int:
        """Requests submitted and not yet finished."""
        with self._cond:
            return len(self._live) + len(self._submits)

    @property
    def thread(self) -> threading.Thread | None:
        """The loop thread (health checks watch that it is alive); None when driven inline."""
        return self._thread

    def health_check(self) -> CheckFn:
        """Liveness of the loop: unhealthy when its thread died or it has not beaten
        for ``stall_after_s`` (a stuck step); an idle loop stays healthy."""
        return heartbeat_check(self.heartbeat, stale_after_s=self.stall_after_s, thread=self._thread)

    def stats(self) -> dict[str, Any]:
        """The engine's ``stats()`` as last published by the loop thread.

        Refreshed after every step (at most every ``idle_beat_s`` for the full
        walk) and while idle, so other threads (health, metrics, gRPC) never read
        the engine while it steps. Driven inline, the engine is read now.
        """
        if self._thread is None:
            self._publish_stats(force=True)
        return dict(self._stats)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the loop; requests in flight get ERR_UNAVAILABLE."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
        else:
            self._shutdown()

    # -- the driving thread ----------------------------------------------------------
    def run_once(self) -> list[RequestOutput]:
        """One iteration: mailbox, deadlines, one engine step, observers, channels.

        Returns the step's outputs (empty when there was nothing to step).
        """
        self.heartbeat.beat()
        with self._cond:
            submits, self._submits = self._submits, []
            aborts, self._aborts = self._aborts, []
        for s in submits:
            self._add(s)
        for rid in aborts:
            self._abort(rid, None)
        self._expire()
        if not self.engine.has_unfinished_requests():
            if self._live:
                # The engine forgot requests we still track: fail them, do not spin.
                for rid in list(self._live):
                    self._close(rid, AgenticError(ErrorCode.INTERNAL, "the engine dropped the request"))
            return []
        outputs = self._step()
        for out in outputs:
            self._dispatch(out)
        return outputs

    def drain(self, channels: Iterable[Channel] = ()) -> None:
        """Run iterations until every channel in ``channels`` is closed (all work, if none)."""
        chans = list(channels)
        while True:
            if chans:
                if all(c.closed for c in chans):
                    return
            elif not (self._submits or self._aborts or self.engine.has_unfinished_requests()):
                return
            self.run_once()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not (self._stop or self._submits or self._aborts or self._live
                           or self.engine.has_unfinished_requests()):
                    self.heartbeat.beat()
                    self._publish_stats(force=self._dirty)
                    self._cond.wait(self.idle_beat_s)
                if self._stop:
                    break
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 - the loop thread must survive anything
                self.errors += 1
                _log.exception("engine loop iteration failed")
        self._shutdown()

    def _shutdown(self) -> None:
        err = AgenticError(ErrorCode.UNAVAILABLE, "the engine is shutting down")
        for rid in list(self._live):
            self._abort(rid, err, now=True)
        with self._cond:
            pending, self._submits = self._submits, []
        for s in pending:
            s.channel.put(ChannelItem(finished=True, finish_reason=FinishReason.ERROR.value, error=err))

    def _step(self) -> list[RequestOutput]:
        observers = self.observers
        for obs in observers:
            self._notify(obs, "before_step")
        t0 = time.perf_counter()
        try:
            outputs = list(self.engine.step() or ())
        except Exception as exc:  # noqa: BLE001 - one bad batch must not kill the server
            self.errors += 1
            _log.exception("engine step failed")
            err = exc if isinstance(exc, AgenticError) else AgenticError(
                ErrorCode.INTERNAL, f"the engine failed: {type(exc).__name__}: {exc}")
            for rid in list(self._live):
                self._abort(rid, err, now=True)
            return []
        dt = time.perf_counter() - t0
        self.steps += 1
        for obs in observers:
            self._notify(obs, "after_step", outputs, dt)
        self._dirty = True
        self._publish_stats()
        return outputs

    def _notify(self, obs: StepObserver, what: str, *args: Any) -> None:
        try:
            getattr(obs, what)(*args)
        except Exception:  # noqa: BLE001 - a broken observer must not stop serving
            _log.exception("step observer %r failed; removed", obs)
            with self._cond:
                self.observers = [o for o in self.observers if o is not obs]

    def _publish_stats(self, force: bool = False) -> None:
        if self._thread is None and not force:
            return  # driven inline: the caller's thread owns the engine, stats() reads it
        now = time.monotonic()
        if not force and now - self._stats_at < self.idle_beat_s:
            return
        stats = getattr(self.engine, "stats", None)
        if not callable(stats):
            return
        try:
            snap = stats()
        except Exception:  # noqa: BLE001 - stats are best effort
            _log.exception("engine stats failed")
            return
        self._stats = dict(snap) if isinstance(snap, Mapping) else dict(vars(snap))
        self._stats["loop_steps"] = self.steps
        self._stats["loop_errors"] = self.errors
        self._stats_at = now
        self._dirty = False

    def _add(self, s: _Submit) -> None:
        ch = s.channel
        try:
            self.engine.add_request(s.prompt, s.params, request_id=ch.request_id, **s.kwargs)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - e.g. a tokenizer panic: the caller must hear
            if not isinstance(exc, AgenticError):
                _log.exception("add_request failed for %s", ch.request_id)
            ch.put(ChannelItem(finished=True, finish_reason=FinishReason.ERROR.value, error=_refusal(exc)))
            return
        self._live[ch.request_id] = ch

    def _dispatch(self, out: RequestOutput) -> None:
        ch = self._live.get(out.request_id)
        if ch is None:
            return
        new = tuple(out.new_token_ids)
        if new or out.finished:
            m = out.metrics
            reason = out.finish_reason.value if out.finish_reason is not None else ""
            ch.put(ChannelItem(
                token_ids=new, finished=out.finished, finish_reason=reason, error=out.error,
                cached_tokens=m.num_cached_tokens, forced_tokens=m.num_forced_tokens, output=out,
            ))
        if out.finished:
            del self._live[out.request_id]

    def _expire(self) -> None:
        now = time.monotonic()
        for rid, ch in list(self._live.items()):
            if ch.deadline is not None and now >= ch.deadline:
                self._abort(rid, AgenticError(
                    ErrorCode.TIMEOUT, "the request ran past its deadline and was stopped"))

    def _abort(self, rid: str, error: AgenticError | None, *, now: bool = False) -> None:
        """End a live request in the engine (its pages are freed).

        Its channel gets the engine's final output (finish reason ``abort`` or
        ``timeout``) from the next step, or, with ``now`` (no step will follow),
        a final item at once.
        """
        if rid not in self._live:
            return
        try:
            done = self.engine.abort(rid, error)
        except Exception:  # noqa: BLE001 - the request is gone either way
            _log.exception("engine abort failed for %s", rid)
            done = False
        if now or not done:
            self._close(rid, error or AgenticError(ErrorCode.CANCELLED, "request cancelled"))

    def _close(self, rid: str, error: AgenticError) -> None:
        ch = self._live.pop(rid, None)
        if ch is not None:
            ch.put(ChannelItem(finished=True, finish_reason=FinishReason.ABORT.value, error=error))
