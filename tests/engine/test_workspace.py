"""The decode K/V workspace: reused while the same rows decode, rebuilt when they change."""

from __future__ import annotations

from pathlib import Path

from agentic_llm.engine import LLMEngine, SamplingParams
from agentic_llm.engine.attention.torch_sdpa import TorchSDPABackend
from agentic_llm.engine.attention.workspace import KVWorkspace

from .conftest import random_prompts, staggered_equals_solo


def make(d: Path, **kw: object) -> LLMEngine:
    opts: dict[str, object] = {"num_blocks": 128, "block_size": 4, "shuffle_seed": 3}
    opts.update(kw)
    return LLMEngine.from_pretrained(d, **opts)  # type: ignore[arg-type]


def test_reused_across_steps_and_same_tokens_as_gathering(llama_dir: Path) -> None:
    prompts = random_prompts(4, [5, 9, 3, 14], seed=8)
    params = [SamplingParams(max_tokens=n) for n in (20, 7, 13, 20)]  # rows leave at different steps
    eng = make(llama_dir)
    outs = eng.generate(prompts, params)
    backend = eng.backend
    assert isinstance(backend, TorchSDPABackend) and backend.workspace is not None
    # one rebuild per change of the decoding rows (and capacity growth), not per step
    assert 0 < backend.workspace.num_rebuilds <= 8 < eng.num_steps

    plain = make(llama_dir)
    assert isinstance(plain.backend, TorchSDPABackend)
    plain.backend.workspace = KVWorkspace(max_bytes=0)  # never fits: pages gathered every layer
    ref = plain.generate(prompts, params)
    assert plain.backend.workspace.num_rebuilds == 0
    assert [o.output_token_ids for o in outs] == [o.output_token_ids for o in ref]


def test_rows_joining_and_leaving_keep_tokens(llama_dir: Path) -> None:
    prompts = random_prompts(5, [4, 6, 21, 2, 9], seed=9)
    params = SamplingParams(max_tokens=9)
    # a new row every other step: the workspace must follow
    staggered_equals_solo(make(llama_dir), make(llama_dir), prompts, params, steps_between=2)


def test_a_failed_step_drops_the_workspace(llama_dir: Path) -> None:
    eng = make(llama_dir)
    eng.generate(random_prompts(2, [5, 6]), SamplingParams(max_tokens=4))
    backend = eng.backend
    assert isinstance(backend, TorchSDPABackend) and backend.workspace is not None
    assert backend.workspace.kv is not None
    backend.invalidate()
    assert backend.workspace.kv is None and backend.workspace.seq_ids == ()


def test_step_without_workspace_then_reuse(llama_dir: Path) -> None:
    """A shared-prefill row among decode rows makes a step skip the workspace; the
    rows it holds then miss that step's K/V and the next step must rebuild it."""
    stem = random_prompts(1, [12], seed=20)[0]
    early = random_prompts(2, [5, 7], seed=21)
    late = [stem + [1, 2], stem + [3]]  # the second computes 1 token: a short row reading the first's pages
    params = SamplingParams(max_tokens=8)
    eng = make(llama_dir)
    rids = [eng.add_request(p, params) for p in early]
    done: dict[str, list[int]] = {}
    for _ in range(3):
        for o in eng.step():
            if o.finished:
                done[o.request_id] = o.output_token_ids
    rids += [eng.add_request(p, params) for p in late]
    while eng.has_unfinished_requests():
        for o in eng.step():
            if o.finished:
                done[o.request_id] = o.output_token_ids
    assert eng.stats()["shared_prefill_tokens"] == 12
    solo = make(llama_dir, share_prefill_prefixes=False)
    for rid, p in zip(rids, early + late, strict=True):
        assert done[rid] == solo.generate([p], params)[0].output_token_ids
