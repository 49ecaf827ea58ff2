"""The engine loop: refusals, cancellation, channel close, observers, liveness and stalls."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agentic_llm.engine import LLMEngine, SamplingParams
from agentic_llm.engine.loop import ChannelItem, EngineLoop
from agentic_llm.errors import ErrorCode
from agentic_llm.observability.health import HEALTHY, UNHEALTHY, CheckResult

from .conftest import random_prompts


class Panic(BaseException):
    """Like the tokenizer's ``PanicException``: a BaseException, not an Exception."""


class _FailingHookInfo(dict[str, Any]):
    """Hook info whose reading raises inside ``add_request``, on the loop thread."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__()
        self.exc = exc

    def get(self, *args: Any) -> Any:
        raise self.exc


@pytest.fixture
def engine(llama_dir: Path) -> Any:
    eng = LLMEngine.from_pretrained(llama_dir, num_blocks=64, block_size=4)
    yield eng
    eng.close()


def _status(check: Any) -> str:
    r = check()
    return r.status if isinstance(r, CheckResult) else (HEALTHY if r else UNHEALTHY)


@pytest.mark.parametrize("exc", [
    UnicodeEncodeError("ascii", "plan_\u65e5", 5, 6, "ordinal not in range(128)"),  # an Exception
    Panic("tokenizer panicked"),  # a BaseException: used to kill the loop thread
])
def test_add_request_failure_is_delivered_finished_at_once(engine: LLMEngine, exc: BaseException) -> None:
    loop = EngineLoop(engine)
    try:
        ch = loop.submit([1, 2, 3], SamplingParams(max_tokens=4), hook_info=_FailingHookInfo(exc))
        # before: an unfinished error item (or none), and the caller waited for its deadline
        item = ch.get(timeout=5)
        assert item.finished and item.error is not None and item.error.code is ErrorCode.INTERNAL
        assert type(exc).__name__ in item.error.message
        assert loop.in_flight == 0 and loop.thread is not None and loop.thread.is_alive()
        # the loop goes on serving
        ok = loop.submit([1, 2, 3], SamplingParams(max_tokens=3, ignore_eos=True))
        items = [ok.get(timeout=10)]
        while not items[-1].finished:
            items.append(ok.get(timeout=10))
        assert items[-1].error is None and sum(len(i.token_ids) for i in items) == 3
    finally:
        loop.close()


def test_cancel_frees_pages_and_close_ends_channels(engine: LLMEngine) -> None:
    loop = EngineLoop(engine)
    long = SamplingParams(max_tokens=500, ignore_eos=True)
    ch = loop.submit([1, 2, 3], long)
    assert ch.get(timeout=10).token_ids  # running
    loop.abort(ch.request_id)
    item = ch.get(timeout=10)
    while not item.finished:
        item = ch.get(timeout=10)
    assert item.finish_reason == "abort" and item.error is not None
    assert item.error.code is ErrorCode.CANCELLED
    deadline = time.monotonic() + 5
    while loop.stats().get("blocks_free") != engine.pool.num_blocks and time.monotonic() < deadline:
        time.sleep(0.05)
    assert loop.stats()["blocks_free"] == engine.pool.num_blocks  # published by the loop thread
    # closing the loop ends every live channel with ERR_UNAVAILABLE and refuses new work
    live = loop.submit([4, 5, 6], long)
    assert live.get(timeout=10).token_ids
    loop.close()
    item = live.get(timeout=5)
    while not item.finished:
        item = live.get(timeout=5)
    assert item.error is not None and item.error.code is ErrorCode.UNAVAILABLE
    with pytest.raises(Exception) as exc:
        loop.submit([1], long)
    assert getattr(exc.value, "code", None) is ErrorCode.UNAVAILABLE


def test_deadline_from_submit_ends_with_timeout(engine: LLMEngine) -> None:
    loop = EngineLoop(engine, thread=False)
    got: list[ChannelItem] = []
    ch = loop.submit([1, 2], SamplingParams(max_tokens=500, ignore_eos=True),
                     deadline=time.monotonic() + 0.05, sink=got.append)
    time.sleep(0.06)
    loop.drain([ch])
    assert got[-1].finished and got[-1].error is not None and got[-1].error.code is ErrorCode.TIMEOUT
    assert got[-1].finish_reason == "timeout" and engine.pool.num_free == engine.pool.num_blocks


class _Recorder:
    def __init__(self) -> None:
        self.before = 0
        self.after: list[tuple[int, float]] = []

    def before_step(self) -> None:
        self.before += 1

    def after_step(self, outputs: Any, duration_s: float) -> None:
        self.after.append((len(outputs), duration_s))


class _Broken:
    def before_step(self) -> None:
        raise RuntimeError("observer bug")

    def after_step(self, outputs: Any, duration_s: float) -> None:
        pass


def test_observers_see_every_step_and_a_broken_one_is_dropped(engine: LLMEngine) -> None:
    rec, broken = _Recorder(), _Broken()
    outs = engine.generate(random_prompts(2), SamplingParams(max_tokens=4), observers=[broken, rec])
    assert all(len(o.output_token_ids) == 4 for o in outs)
    assert rec.before == len(rec.after) >= 4 and all(d >= 0 for _, d in rec.after)


def test_idle_loop_stays_live_and_a_stuck_loop_fails_liveness(engine: LLMEngine) -> None:
    # Shortened intervals: beats every 20 ms while idle, stuck after 0.3 s without one.
    loop = EngineLoop(engine, idle_beat_s=0.02, stall_after_s=0.3)
    check = loop.health_check()
    try:
        for _ in range(20):  # 2 s idle: 6x the stall limit, never unhealthy
            time.sleep(0.1)
            assert _status(check) == HEALTHY
        release = threading.Event()

        class Stall:
            def before_step(self) -> None:
                release.wait(30)  # the injected stall: the step never returns on its own

            def after_step(self, outputs: Any, duration_s: float) -> None:
                pass

        loop.add_observer(Stall())
        ch = loop.submit([1, 2, 3], SamplingParams(max_tokens=2))
        t0 = time.monotonic()
        while _status(check) == HEALTHY and time.monotonic() - t0 < 5:
            time.sleep(0.02)
        assert _status(check) == UNHEALTHY and time.monotonic() - t0 < 2
        release.set()
        item = ch.get(timeout=10)
        while not item.finished:
            item = ch.get(timeout=10)
        time.sleep(0.1)
        assert _status(check) == HEALTHY
    finally:
        loop.close()

