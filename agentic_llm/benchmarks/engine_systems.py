"""Our engine's rows in ``bench engine``: an engine per decode step, started and warmed.

Each step (``eager``, ``compiled``) gets its own engine over its own copy of the
model (the compiled step is attached to the model it runs). The warm-up, one short
batch of two requests, is timed: for the compiled step it is the compiled step's
warm-up (``compile_warmup_s``), compiling or loading the package from the compile
cache. With the cache mode ``fresh`` the compiled engine starts twice on one new
cache folder, in this process: the first start compiles and stores the package,
the second loads it (torch's compiler modules are then already imported, which a
new process would pay for once, a few seconds).
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from agentic_llm.benchmarks.report import median
from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["OursRunner", "cache_setting", "parse_steps", "pool_bytes", "start_ours"]

STEPS = ("eager", "compiled")


def parse_steps(steps: str, compile_decode: str | None) -> list[str]:
    """The decode steps to measure from ``--steps`` (or the older ``--compile-decode``).

    Raises:
        AgenticError: ERR_INVALID_CONFIG naming an unknown step.
    """
    if compile_decode is not None:
        return ["compiled" if compile_decode == "on" else "eager"]
    out = [s.strip() for s in steps.split(",") if s.strip()]
    bad = [s for s in out if s not in STEPS]
    if bad or not out:
        raise AgenticError(ErrorCode.INVALID_CONFIG,
                           f"--steps: {', '.join(bad) or 'none given'}; choose from {', '.join(STEPS)}")
    return list(dict.fromkeys(out))


def cache_setting(mode: str) -> tuple[str | None, bool, tempfile.TemporaryDirectory[str] | None]:
    """``(EngineConfig.compile_cache_dir, start twice, folder to remove at the end)``
    for the ``--compile-cache`` value ``mode``."""
    if mode == "default":
        return None, False, None
    if mode == "off":
        return "", False, None
    if mode == "fresh":
        tmp = tempfile.TemporaryDirectory(prefix="agentic-bench-compile-")
        return tmp.name, True, tmp
    return str(Path(mode).expanduser()), False, None


class OursRunner:
    """One of our engines behind the runner interface ``bench engine`` times."""

    def __init__(self, engine: Any, name: str) -> None:
        self.engine = engine
        self.name = name
        self.weight_bytes: int | None = None  # what a decode step reads, when set

    def batch(self, prompts: list[list[int]], new_tokens: int,
              ttft_prompts: list[list[int]] | None = None) -> dict[str, Any]:
        """One call on ``prompts``. TTFT is read per request from the call itself, so
        ``ttft_prompts`` (the other systems' separate TTFT call) are not run."""
        from agentic_llm.engine import SamplingParams

        sp = SamplingParams(max_tokens=new_tokens, ignore_eos=True, jump_forward=False)
        before = self.engine.stats()
        t0 = time.perf_counter()
        outs = self.engine.generate(prompts, sp)
        wall = time.perf_counter() - t0
        after = self.engine.stats()
        n_out = sum(len(o.output_token_ids) for o in outs)
        ttft = [o.metrics.first_token_time - o.metrics.arrival_time for o in outs]
        tpot = [(o.metrics.finish_time - o.metrics.first_token_time) / max(1, len(o.output_token_ids) - 1)
                for o in outs]
        return {"tok_s": n_out / wall, "ttft_s": median(ttft), "tpot_s": median(tpot), "wall_s": wall,
                "tokens": [o.output_token_ids for o in outs],
                # decode steps through the flat runner (eager or compiled) and through
                # the compiled function; the rest took the generic path
                "fast_steps": after["fast_decode_steps"] - before["fast_decode_steps"],
                "compiled_steps": after["compiled_decode_steps"] - before["compiled_decode_steps"]}


def pool_bytes(cfg: Any, rows: int, context: int, *, block_size: int = 16, elem: int = 4) -> int:
    """A KV pool (bytes) whose decode workspace (``attention.torch_sdpa.workspace_limit``)
    holds ``rows`` sequences of ``context`` tokens: below that, decode steps leave the
    fast and compiled paths for the generic one. Never below the engine's default 256
    MiB, nor above what the largest workspace needs: past that no pool helps."""
    from agentic_llm.engine.attention.torch_sdpa import WORKSPACE_MAX_BYTES, WORKSPACE_SHARE

    per_token = cfg.num_hidden_layers * 2 * cfg.num_key_value_heads * cfg.head_dim * elem
    slots = -(-context // block_size) * block_size
    need = math.ceil(per_token * rows * slots / WORKSPACE_SHARE)
    return min(max(256 << 20, need + (16 << 20)), math.ceil(WORKSPACE_MAX_BYTES / WORKSPACE_SHARE) + (16 << 20))


def start_ours(loaded: Any, step: str, *, max_num_seqs: int, kv_memory_bytes: int, cache_dir: str | None,
               twice: bool, warm_prompts: list[list[int]], device: str = "cpu",
               prefix_cache: bool = True, dtype: torch.dtype = torch.float32,
               pack_weights: bool | None = None) -> tuple[OursRunner, dict[str, Any]]:
    """Build the engine of ``step`` over ``loaded`` (a model of its own; with the radix
    prefix cache ``serve`` uses unless ``prefix_cache`` is False) and warm it on
    ``warm_prompts``; ``(runner, start-up figures)``."""
    from agentic_llm.cache import RadixCache
    from agentic_llm.engine import LLMEngine
    from agentic_llm.engine.engine_config import EngineConfig

    compiled = step.split("-", 1)[0] == "compiled"  # also "compiled-w<dtype>"
    info: dict[str, Any] = {"kv_memory_bytes": kv_memory_bytes, "prefix_cache": "radix" if prefix_cache else "none"}

    def start() -> tuple[Any, float, dict[str, Any]]:
        # as `serve` builds it (serving.build): a radix prefix cache over the pool
        engine = LLMEngine(loaded, EngineConfig(device=device, dtype=dtype, max_num_seqs=max_num_seqs,
                                                kv_memory_bytes=kv_memory_bytes, compile_decode=compiled,
                                                compile_cache_dir=cache_dir, pack_weights=pack_weights),
                           prefix_cache=RadixCache if prefix_cache else None)
        t = time.perf_counter()
        OursRunner(engine, step).batch(warm_prompts, 4)
        return engine, time.perf_counter() - t, engine.stats()

    engine, warm, st = start()
    info["warmup_s"] = warm
    if compiled:
        info.update(_compiled_info(engine, warm, st))
        if twice and info["compiled"]:
            first = {f"first_start_{k}": info[k] for k in ("compile_warmup_s", "compile_s", "compile_cache_hit")}
            engine.close()
            engine, warm, st = start()
            info.update(_compiled_info(engine, warm, st), **first)
            info["warmup_s"] = warm
    return OursRunner(engine, f"ours-{step}"), info


def _compiled_info(engine: Any, warm: float, st: dict[str, Any]) -> dict[str, Any]:
    comp = engine.model.decode_runner.compiled
    path = getattr(comp, "cache_path", None)
    return {"compiled": not st["compiled_decode_off_reason"], "off_reason": st["compiled_decode_off_reason"],
            "compile_warmup_s": warm, "compile_s": st["decode_compile_s"],
            "compile_cache_hit": st["decode_compile_cache_hit"],
            "compile_cache_path": str(path) if path is not None else ""}
