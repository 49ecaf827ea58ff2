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


def test_shared_prefix_found_in_the_tables() -> None:
    import torch

    from agentic_llm.engine.attention.workspace import SHARED_MIN_TOKENS, shared_prefix

    bs = 4
    pages = SHARED_MIN_TOKENS // bs + 3
    same = list(range(10, 10 + pages))
    t = torch.tensor([same + [1, 2], same + [3, 4], same[:-1] + [5, 6, 7]])
    # rows 0-2 share pages-1 pages; bounded by the tokens every row has computed
    assert shared_prefix(t, 10_000, bs) == (pages - 1) * bs
    assert shared_prefix(t, SHARED_MIN_TOKENS + 1, bs) == SHARED_MIN_TOKENS + 1
    assert shared_prefix(t, SHARED_MIN_TOKENS - 1, bs) == 0  # too short to pay
    assert shared_prefix(t[:1], 10_000, bs) == 0  # one row shares with nobody
    assert shared_prefix(torch.tensor([[1, 2, 3], [9, 2, 3]]), 10_000, bs) == 0  # differs at page 0


def test_decode_attention_over_a_shared_prefix_equals_sdpa() -> None:
    import torch
    import torch.nn.functional as F

    from agentic_llm.engine.attention.torch_sdpa import decode_attention

    g = torch.Generator().manual_seed(5)
    kvh, rows, groups, d, key_len, shared = 2, 5, 3, 16, 90, 70
    kv = torch.randn(2, kvh, rows, key_len, d, generator=g)
    kv[:, :, 1:, :shared] = kv[:, :, :1, :shared]  # every row holds the same prefix
    ctx = torch.tensor([75, 90, 71, 88, 80])
    mask = torch.where(torch.arange(key_len)[None, :] < ctx[:, None], 0.0, float("-inf"))[None, :, None, :]
    q = torch.randn(kvh, rows, groups, d, generator=g)
    ref = F.scaled_dot_product_attention(q, kv[0], kv[1], attn_mask=mask, scale=0.25)
    out = decode_attention(q, kv[0], kv[1], mask, 0.25, shared)
    assert torch.allclose(out, ref, atol=1e-5)
    assert torch.equal(decode_attention(q, kv[0], kv[1], mask, 0.25), ref)  # no shared prefix: SDPA itself


def test_rows_sharing_a_prompt_attend_over_it_once(llama_dir: Path) -> None:
    """Requests that reuse a cached prompt decode together over its shared pages: the
    workspace reports the shared prefix, and the tokens equal those of the gathering
    path (every row's pages read on their own) and of each request alone."""
    from agentic_llm.cache.radix import RadixCache
    from agentic_llm.engine.attention import workspace as ws_mod

    stem = random_prompts(1, [90], seed=30)[0]
    prompts = [stem + tail for tail in random_prompts(4, [3, 5, 2, 6], seed=31)]
    params = SamplingParams(max_tokens=12)
    seen: list[int] = []
    found = ws_mod.shared_prefix

    def record(*a: object) -> int:
        n = found(*a)  # type: ignore[arg-type]
        seen.append(n)
        return n

    def run(eng: LLMEngine) -> list[list[int]]:
        first = eng.generate([stem], SamplingParams(max_tokens=1))  # caches the prompt's pages
        assert first
        return [o.output_token_ids for o in eng.generate(prompts, params)]

    eng = make(llama_dir, prefix_cache=RadixCache)
    ws_mod.shared_prefix = record  # type: ignore[assignment]
    try:
        outs = run(eng)
    finally:
        ws_mod.shared_prefix = found  # type: ignore[assignment]
    assert max(seen) >= ws_mod.SHARED_MIN_TOKENS
    plain = make(llama_dir, prefix_cache=RadixCache)
    assert isinstance(plain.backend, TorchSDPABackend)
    plain.backend.workspace = KVWorkspace(max_bytes=0)
    assert run(plain) == outs
    solo = make(llama_dir)
    assert outs == [solo.generate([p], params)[0].output_token_ids for p in prompts]


def test_slack_follows_the_decode_step(llama_dir: Path) -> None:
    """Rows that outgrow the workspace get more slack under the eager step (it attends
    over the rows' keys only) than under the compiled step (over the whole capacity);
    a rebuild after rows joined or left keeps the small slack."""
    from agentic_llm.engine.attention.workspace import GROW_SLACK, SLACK

    eager = make(llama_dir)
    backend = eager.backend
    assert isinstance(backend, TorchSDPABackend)
    caps: list[int] = []
    eager.add_request(random_prompts(1, [5])[0], SamplingParams(max_tokens=GROW_SLACK + 2 * SLACK))
    while eager.has_unfinished_requests():
        eager.step()
        ws = backend.workspace
        if ws is not None and ws.kv is not None and (not caps or ws.kv.shape[3] != caps[-1]):
            caps.append(ws.kv.shape[3])
    # built with SLACK after the row joined, then grown by GROW_SLACK
    assert len(caps) >= 2 and caps[0] <= 5 + SLACK + 4 and caps[1] - caps[0] >= GROW_SLACK - 4
    assert backend.workspace is not None and backend.workspace.grow_slack == GROW_SLACK > SLACK
    compiled = make(llama_dir, compile_decode=True)  # compiled at the first decode step: not run here
    assert isinstance(compiled.backend, TorchSDPABackend) and compiled.backend.workspace_grow_slack == SLACK


def _pool_and_tables(rows: int, pages: int) -> tuple[object, object]:
    import torch

    from agentic_llm.engine.kv.pool import PagedKVPool

    pool = PagedKVPool(64, 4, num_layers=2, num_kv_heads=2, head_dim=8, shuffle_seed=5)
    pool.kv_store.copy_(torch.randn(pool.kv_store.shape))
    tables = torch.tensor([[(r * pages + p) % 64 for p in range(pages)] for r in range(rows)])
    return pool, tables


def _gathered(pool: object, tables: object, ctx: int) -> object:
    """Each row's first ``ctx`` tokens straight from the pool pages, as the workspace
    lays them out: ``[layers, 2 * kv_heads, rows, ctx, d]``."""
    store = pool.kv_store  # type: ignore[attr-defined]
    layers, _, kvh, blocks, bs, d = store.shape
    rows = tables.shape[0]  # type: ignore[attr-defined]
    kv = store.view(layers * 2 * kvh, blocks, bs, d).index_select(1, tables.reshape(-1))  # type: ignore[attr-defined]
    return kv.view(layers, 2 * kvh, rows, -1, d)[:, :, :, :ctx]


def test_slack_shrinks_to_the_byte_limit_instead_of_dropping_the_workspace() -> None:
    """Rows whose context fits the byte limit, but not with the slack, keep a
    workspace (with the slack the limit leaves); only a context past the limit drops
    it. Dropping it made every later step rebuild it from scratch."""
    import torch

    pool, tables = _pool_and_tables(rows=2, pages=6)
    page = 2 * 2 * 2 * 2 * 4 * 8 * 4  # layers x K,V x kv_heads x rows x block x d x bytes
    ws = KVWorkspace(max_bytes=5 * page, grow_slack=64)
    b = ws.bind([1, 2], [0, 0], [17, 17], tables, pool)  # type: ignore[arg-type]
    assert b is not None and b.kv.shape[3] == 20  # 5 pages: 3 of slack, not the 16 asked
    torch.testing.assert_close(b.kv[:, :, :, :17], _gathered(pool, tables, 17), rtol=0, atol=0)
    # the same rows outgrow it by one token: the limit leaves no room, so it goes
    assert ws.bind([1, 2], [17, 17], [21, 21], tables, pool) is None  # type: ignore[arg-type]
    assert ws.kv is None and ws.buffer_bytes == 0


def test_a_rebuild_reuses_the_buffer_of_the_last_one() -> None:
    """A rebuild writes into the buffer the previous one used when it is large
    enough (a new allocation of this size is memory the kernel maps page by page at
    first touch), with the same contents a fresh gather gives."""
    import torch

    pool, tables = _pool_and_tables(rows=3, pages=8)
    ws = KVWorkspace(max_bytes=1 << 20)
    b1 = ws.bind([1, 2, 3], [0, 0, 0], [20, 20, 20], tables, pool)  # type: ignore[arg-type]
    assert b1 is not None
    first = b1.kv.data_ptr()
    # a row leaves: rebuilt, smaller, in the same memory
    b2 = ws.bind([1, 3], [20, 20], [21, 21], tables[[0, 2]], pool)  # type: ignore[arg-type]
    assert b2 is not None and b2.kv.data_ptr() == first and ws.num_rebuilds == 2
    torch.testing.assert_close(b2.kv[:, :, :, :21], _gathered(pool, tables[[0, 2]], 21), rtol=0, atol=0)
    # a failed step frees it
    ws.invalidate(release=True)
    assert ws.buffer_bytes == 0
