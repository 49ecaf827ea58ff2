"""Forked siblings share KV pages; a write into a shared page never changes the other's logits."""

from __future__ import annotations

from pathlib import Path

import torch

from agentic_llm.engine import LLMEngine, SamplingParams
from agentic_llm.engine.attention import get_backend
from agentic_llm.engine.forward import build_forward_batch
from agentic_llm.engine.kv import PagedKVPool
from agentic_llm.engine.loader import load_model

from .conftest import random_prompts


def run(eng: LLMEngine) -> dict[str, list[int]]:
    final: dict[str, list[int]] = {}
    while eng.has_unfinished_requests():
        for o in eng.step():
            if o.finished:
                final[o.request_id] = o.prompt_token_ids + o.output_token_ids
    return final


def test_fork_shares_pages_and_copies_on_write(llama_dir: Path) -> None:
    prompt = random_prompts(1, [6], seed=11)[0]  # 6 tokens: the second page is partial
    eng = LLMEngine.from_pretrained(llama_dir, num_blocks=64, block_size=4)
    parent = eng.add_request(prompt, SamplingParams(max_tokens=12), request_id="p")
    eng.step()  # prefill + first token; pages hold 6 tokens
    child = eng.fork(parent, SamplingParams(max_tokens=12, temperature=1.5, seed=3), request_id_child="c")
    assert eng.stats()["blocks_shared"] == 2
    seqs = run(eng)
    eng.pool.check_integrity()
    assert eng.pool.num_free == eng.pool.num_blocks
    # the parent is exactly what it is without a sibling
    solo = LLMEngine.from_pretrained(llama_dir, num_blocks=64, block_size=4)
    ref = solo.generate([prompt], SamplingParams(max_tokens=12))[0]
    assert seqs[parent] == prompt + ref.output_token_ids
    # the child equals a fresh request with the same prefix, sampled with its seed
    child_prompt = seqs[child][: len(prompt) + 1]
    fresh = solo.generate([child_prompt], SamplingParams(max_tokens=12, temperature=1.5, seed=3))[0]
    assert seqs[child] == child_prompt + fresh.output_token_ids


def test_copy_on_write_copies_every_layer(llama_dir: Path) -> None:
    loaded = load_model(llama_dir)
    cfg = loaded.config
    pool = PagedKVPool(8, 4, cfg.num_hidden_layers, cfg.num_key_value_heads, cfg.head_dim)
    backend = get_backend()
    seq = random_prompts(1, [6], seed=2)[0]
    table = pool.allocate(2)
    loaded.model(build_forward_batch([(seq, 0, table)], 4, "cpu"), pool, backend)
    pool.incref(table)  # a sibling now holds both pages
    sib_table = list(table)
    before = loaded.model(build_forward_batch([([seq[-1]], 5, sib_table)], 4, "cpu"), pool, backend)
    # the sibling appends different tokens into its private copy of the partial page
    new = pool.copy_on_write(sib_table[1])
    assert new != table[1] and pool.ref_count(table[1]) == 1
    for layer in range(cfg.num_hidden_layers):
        assert torch.equal(pool.k_cache[layer, new], pool.k_cache[layer, table[1]])
        assert torch.equal(pool.v_cache[layer, new], pool.v_cache[layer, table[1]])
    sib_table[1] = new
    loaded.model(build_forward_batch([([7, 8], 6, sib_table)], 4, "cpu"), pool, backend)
    after = loaded.model(build_forward_batch([([seq[-1]], 5, table)], 4, "cpu"), pool, backend)
    assert torch.equal(before, after)


def test_waiting_requests_never_deadlock(llama_dir: Path) -> None:
    """Pages held by waiting fork children: the stuck request ends with ERR_OVERLOADED."""
    from agentic_llm.errors import ErrorCode

    eng = LLMEngine.from_pretrained(llama_dir, num_blocks=6, block_size=4, max_num_seqs=1)
    parent = eng.add_request(list(range(9)), SamplingParams(max_tokens=2), request_id="p")
    eng.step()
    # queued first, "big" needs the whole pool, but fork siblings queued after it
    # hold the parent's pages: FCFS cannot admit anyone
    blocker = eng.add_request(list(range(20)), SamplingParams(max_tokens=3), request_id="big")
    for i in range(3):
        eng.fork(parent, request_id_child=f"c{i}")
    final = run_outputs(eng)
    assert final[blocker].error is not None and final[blocker].error.code is ErrorCode.OVERLOADED
    assert all(final[f"c{i}"].error is None for i in range(3))
    eng.pool.check_integrity()
    assert eng.pool.num_free == eng.pool.num_blocks


def run_outputs(eng: LLMEngine) -> dict[str, object]:
    final: dict[str, object] = {}
    for _ in range(500):
        if not eng.has_unfinished_requests():
            break
        for o in eng.step():
            if o.finished:
                final[o.request_id] = o
    assert not eng.has_unfinished_requests()
    return final
