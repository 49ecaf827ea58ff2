"""The optional compiled decode step: same tokens and logits (within float rounding)
as the eager step where a C++ compiler exists; the eager step, with a warning, where
none does."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from agentic_llm.engine import LLMEngine, SamplingParams
from agentic_llm.engine.models.compiled_decode import compiler_available
from agentic_llm.engine.native import native_library
from agentic_llm.engine.outputs import RequestOutput

from .conftest import generate_staggered, random_prompts


def make(d: Path, compiled: bool) -> LLMEngine:
    return LLMEngine.from_pretrained(d, num_blocks=96, block_size=4, shuffle_seed=6, compile_decode=compiled)


def run(eng: LLMEngine, prompts: list[list[int]]) -> list[RequestOutput]:
    # rows leave at different steps, and the last one decodes alone (the eager step)
    return generate_staggered(eng, prompts, (12, 5, 16), top_k=4)


def assert_close(a: list[RequestOutput], b: list[RequestOutput]) -> None:
    for x, y in zip(a, b, strict=True):
        assert x.output_token_ids == y.output_token_ids
        for s, t in zip(x.diagnostics, y.diagnostics, strict=True):
            assert s.logprob == pytest.approx(t.logprob, rel=1e-4, abs=1e-4)
            assert s.entropy == pytest.approx(t.entropy, rel=1e-4, abs=1e-4)
            assert [i for i, _ in s.top_alternatives] == [i for i, _ in t.top_alternatives]


# one family: a compile costs tens of seconds on a small CI machine (Qwen3's per-head
# norms go through the same function; run with "qwen3" added to check them)
@pytest.mark.parametrize("family", ["llama"])
def test_compiled_step_matches_eager(family: str, checkpoint_factory: Callable[..., Path]) -> None:
    d = checkpoint_factory(family)
    prompts = random_prompts(3, [6, 11, 2], seed=31)
    ok, why = compiler_available(torch.device("cpu"))
    if ok:
        compiled = make(d, True)
    else:  # no compiler on this machine: the engine says so and decodes eagerly
        with pytest.warns(RuntimeWarning, match="compiled decode is off"):
            compiled = make(d, True)
    eager = make(d, False)
    assert_close(run(compiled, prompts), run(eager, prompts))
    stats = compiled.stats()
    if ok:
        assert stats["compiled_decode_off_reason"] == ""
        assert stats["compiled_decode_steps"] > 5
        assert stats["decode_compile_s"] > 0
        # the step that decodes one row alone runs eagerly
        assert stats["fast_decode_steps"] > stats["compiled_decode_steps"]
    else:
        assert stats["compiled_decode_off_reason"] == why
        assert stats["compiled_decode_steps"] == 0
    assert eager.stats()["compiled_decode_steps"] == 0
    compiled.pool.check_integrity()
    if ok:
        assert_releases_gil(compiled, prompts)
        assert_constrained_rows_match(compiled, eager, prompts)
        stats = compiled.stats()
    if ok:  # a weight replaced by one in another layout: the step it was compiled for is given up
        for eng in (compiled, eager):
            proj = eng.model.model.layers[0].self_attn.o_proj
            proj.weight = torch.nn.Parameter(proj.weight.detach().contiguous() * 1.01, requires_grad=False)
        with pytest.warns(RuntimeWarning, match="layout"):
            out = run(compiled, prompts)
        assert compiled.stats()["compiled_decode_steps"] == stats["compiled_decode_steps"]
        assert_close(out, run(eager, prompts))


def assert_releases_gil(eng: LLMEngine, prompts: list[list[int]]) -> None:
    """The compiled step runs with the GIL released: a Python thread started right
    before the call runs while the call is still going, far more than it does beside
    the same call through torch's loader."""
    comp = eng.model.decode_runner.compiled
    assert comp is not None and comp.gil_free
    runner = comp._runner
    assert runner is not None
    seen: list[list[torch.Tensor]] = []
    real = type(runner).__call__

    def record(self: object, inputs: list[torch.Tensor], before: object = None) -> list[torch.Tensor]:
        seen.append(inputs)
        return real(runner, inputs, before)  # type: ignore[arg-type]

    type(runner).__call__ = record  # type: ignore[method-assign]
    try:
        run(eng, prompts)
    finally:
        type(runner).__call__ = real  # type: ignore[method-assign]
    assert seen
    # the recorded step blown up to many rows, so one call lasts long enough for a
    # thread to start inside it: every activation repeats along its rows dimension
    h, pos, cos, sin, ws, *weights = seen[0]
    reps = 16384 // h.shape[0]
    big = [h.repeat(reps, 1), pos.repeat(reps), cos.repeat(reps, 1, 1), sin.repeat(reps, 1, 1),
           ws.repeat(1, 1, reps, 1, 1).contiguous(), *weights]
    wlist = comp._pinned_for
    assert wlist is not None
    loaded = comp._fn
    assert loaded is not None
    # against the same step through torch's own loader, which holds the GIL
    # medians of three calls each: one call on a shared machine can be an outlier
    gil_free = sorted((helper_runs(lambda before: runner(big, before=before)) for _ in range(3)), key=lambda r: r[1])[1]
    held = sorted((helper_runs(lambda before: (before(), loaded(*big[:5], wlist))) for _ in range(3)),
                  key=lambda r: r[1])[1]
    assert min(gil_free[0], held[0]) > 0.05, "the enlarged step is too short to tell"
    # Through torch's loader the helper still gets some turns (about a tenth of its
    # loops beside the GIL-free call when other tests load the machine, a twentieth
    # alone); a runner that held the GIL would give it about as few as the loader.
    assert gil_free[1] > 4 * max(1, held[1]), f"helper loops during the call: {gil_free[1]} vs {held[1]} held"
    # a counter handed back by ``before`` is bumped from C once the GIL is free: a
    # thread waiting on it in C wakes, and takes the GIL, while the call still runs
    lib = native_library()
    assert lib is not None  # the C compiler that built the step builds this too
    bell = np.zeros(1, dtype=np.int64)
    woke: list[float] = []
    waiter = threading.Thread(target=lambda: (lib.spin_until_changed(bell.ctypes.data, 0, 10**10),
                                              woke.append(time.perf_counter())))
    waiter.start()
    out = runner(big, before=lambda: bell.ctypes.data)
    end = time.perf_counter()
    waiter.join()
    assert bell[0] == 1 and woke and woke[0] < end
    assert torch.equal(out[0], runner(big)[0])


class ModMatcher:
    """Allows the tokens ``t % 5 == n % 5`` at output position ``n``."""

    def __init__(self, vocab: int) -> None:
        self.vocab, self.n = vocab, 0

    def fill_next_token_bitmask(self, bitmask: torch.Tensor, index: int = 0) -> None:
        allowed = np.arange(self.vocab) % 5 == self.n % 5
        words = np.packbits(np.pad(allowed, (0, bitmask.shape[1] * 32 - self.vocab)), bitorder="little")
        bitmask[index] = torch.from_numpy(words.view(np.int32).copy())

    def accept_token(self, token_id: int) -> bool:
        if token_id % 5 != self.n % 5:
            return False
        self.n += 1
        return True

    def rollback(self, num_tokens: int) -> None:
        self.n -= num_tokens

    def find_jump_forward_string(self) -> str:
        return ""

    def is_terminated(self) -> bool:
        return False


def assert_constrained_rows_match(compiled: LLMEngine, eager: LLMEngine, prompts: list[list[int]]) -> None:
    """Greedy constrained rows decode the same tokens on the compiled step (masks
    filled by the worker beside the call, handed over by the bell, picked in C) as on
    the eager step with inline fills; every token keeps to its mask."""
    vocab = compiled.model_config.vocab_size
    params = [SamplingParams(max_tokens=n, jump_forward=False) for n in (12, 5, 16)]
    assert not eager.mask_filler.threaded  # the eager step holds the GIL: inline fills
    outs = []
    for eng in (compiled, eager):
        matchers = [ModMatcher(vocab), None, ModMatcher(vocab)]
        outs.append([o.output_token_ids for o in eng.generate(prompts, params, matchers=matchers)])
    assert outs[0] == outs[1]
    for row in (0, 2):
        assert [t % 5 for t in outs[0][row]] == [n % 5 for n in range(len(outs[0][row]))]
    assert compiled.mask_filler.threaded



def helper_runs(call: Callable[[Callable[[], None]], object]) -> tuple[float, int]:
    """How long ``call`` took and how many times a Python loop on another thread,
    started right before the compiled call, ran while that call went on."""
    stamps: list[float] = []
    stop = threading.Event()

    def helper() -> None:  # Python code, so it needs the GIL to make each stamp
        while not stop.is_set():
            stamps.append(time.perf_counter())

    thread = threading.Thread(target=helper)
    marks: list[float] = []

    def before() -> None:
        thread.start()
        marks.append(time.perf_counter())

    call(before)
    end = time.perf_counter()
    stop.set()
    thread.join()
    return end - marks[0], sum(marks[0] < t < end for t in stamps)


def test_missing_compiler_falls_back_to_eager(llama_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch._inductor.config as inductor_config

    monkeypatch.setattr(inductor_config.cpp, "cxx", ("/nonexistent/c++-for-this-test",))
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        eng = make(llama_dir, True)
    assert not eng.mask_filler.threaded  # no GIL-free forward to fill beside: inline, fixed at build
    prompts = random_prompts(3, [6, 11, 2], seed=32)
    out = run(eng, prompts)
    stats = eng.stats()
    assert stats["compiled_decode_steps"] == 0 and stats["fast_decode_steps"] > 5
    assert "compiler" in stats["compiled_decode_off_reason"]
    ref = run(make(llama_dir, False), prompts)
    assert [o.output_token_ids for o in out] == [o.output_token_ids for o in ref]
