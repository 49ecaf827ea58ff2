"""Shared set-up of the constrained-decoding bench scripts (not a script itself)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def constrained_batch(batch: int, model: str | None = None) -> tuple[Any, Any, list[Any], list[list[int]]]:
    """``(engine, compiler, plans, prompts)`` for the first ``batch`` held-out requests.

    One torch thread, the compiled decode step (already compiled on return) and the
    grammar compiler prepared as ``serve`` prepares it.
    """
    import torch

    from agentic_llm.engine import LLMEngine, SamplingParams
    from agentic_llm.models import default_model_dir
    from agentic_llm.planner import GenerateRequest, plan
    from agentic_llm.serving.build import build_compiler

    torch.set_num_threads(1)
    model_dir = Path(model) if model else default_model_dir()
    with (HERE / "validity_requests.jsonl").open(encoding="utf-8") as fh:
        reqs = [json.loads(line) for line in fh if line.strip()][:batch]
    plans = [plan(GenerateRequest.from_json(r)) for r in reqs]
    engine = LLMEngine.from_pretrained(model_dir, device="cpu", dtype=torch.float32,
                                       max_num_seqs=max(2, batch), compile_decode=True)
    compiler = build_compiler(model_dir, engine)
    prompts = [engine.tokenizer.encode(p.render_prompt()).ids for p in plans]
    engine.generate(prompts[:2], SamplingParams(max_tokens=4, ignore_eos=True))  # compiles the step
    return engine, compiler, plans, prompts
