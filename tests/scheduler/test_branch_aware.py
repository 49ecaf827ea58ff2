"""Branch-aware policy: group admission, shared prefix, preemption, aging, same outputs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from agentic_llm.cache.radix import RadixCache
from agentic_llm.engine import LLMEngine, SamplingParams
from agentic_llm.engine.kv import PagedKVPool
from agentic_llm.engine.outputs import FinishReason
from agentic_llm.scheduler import Request, RequestStatus, Scheduler, get_policy
from agentic_llm.scheduler.branch_aware import BranchAwarePolicy, common_prefix_len

BS = 4


def req(tokens: Sequence[int], seq: int, **kw: object) -> Request:
    return Request(
        request_id=f"r{seq}",
        token_ids=list(tokens),
        num_prompt_tokens=len(tokens),
        params=SamplingParams(),
        generator=torch.Generator(),
        seq_no=seq,
        **kw,  # type: ignore[arg-type]
    )


def sched(blocks: int, policy: BranchAwarePolicy | None = None, **kw: int) -> Scheduler:
    return Scheduler(PagedKVPool(blocks, BS, 1, 1, 4), policy or BranchAwarePolicy(), **kw)


def step(s: Scheduler) -> list[tuple[Request, int, int]]:
    """One schedule plus a pretend forward: sampling rows get one new token."""
    out = s.schedule()
    for r in out.rows:
        r.request.num_computed_tokens = r.start + r.num_tokens
        if r.samples:
            r.request.token_ids.append(7)
    return [(r.request, r.start, r.num_tokens) for r in out.rows]


def group(dag: str, shared: int, width: int, first_seq: int, **kw: object) -> list[Request]:
    prefix = list(range(100, 100 + shared))
    return [req(prefix + [i, i + 1], first_seq + i, dag_id=dag, branch_id=str(i), **kw) for i in range(width)]


def test_registered_and_resolved_by_name() -> None:
    assert isinstance(get_policy("branch_aware"), BranchAwarePolicy)
    assert common_prefix_len([[1, 2, 3], [1, 2, 4], [1, 2]]) == 2
    with pytest.raises(ValueError):
        BranchAwarePolicy(aging_steps=0)
    policy = get_policy("branch_aware", {"coalesce_steps": 0, "aging_steps": 8})
    assert isinstance(policy, BranchAwarePolicy) and (policy.coalesce_steps, policy.aging_steps) == (0, 8)
    with pytest.raises(ValueError, match="coalesce"):
        get_policy("branch_aware", {"coalesce": 1})


def test_serve_config_options_reach_the_engines_policy(tiny_dir: Path) -> None:
    from agentic_llm.config import ServerConfig
    from agentic_llm.serving.build import build_engine

    cfg = ServerConfig.from_dict({"model": {"scheduling_options": {"coalesce_steps": 1}}})
    policy = build_engine(cfg, tiny_dir).scheduler.policy
    assert isinstance(policy, BranchAwarePolicy) and policy.coalesce_steps == 1


def test_fork_group_admitted_in_one_step_sharing_the_leaders_prefill() -> None:
    s = sched(64)
    sibs = group("d", 16, 3, 0)
    for r in sibs:
        s.add(r)
    out = s.schedule()
    # one step admits the whole group: the leader prefills the prefix, the siblings
    # only their own suffix, reading the leader's 4 full prefix pages by reference
    assert [(r.request, r.start, r.num_tokens, r.reads_pending) for r in out.rows] == [
        (sibs[0], 0, 18, False), (sibs[1], 16, 2, True), (sibs[2], 16, 2, True)]
    assert all(r.samples for r in out.rows)  # every member samples its first token now
    for b in sibs[0].block_table[:4]:
        assert s.pool.ref_count(b) == 3
    assert sibs[1].block_table[:4] == sibs[0].block_table[:4]
    assert sibs[1].block_table[4] != sibs[2].block_table[4]  # own page past the prefix
    assert s.policy.shared_tokens == 32  # type: ignore[attr-defined]
    for r in out.rows:
        r.request.num_computed_tokens = r.start + r.num_tokens
        r.request.token_ids.append(7)
    # next step: the group decodes together and nothing reads unwritten pages
    rows = s.schedule().rows
    assert [(r.request, r.num_tokens, r.reads_pending) for r in rows] == [(x, 1, False) for x in sibs]
    # finishing everything returns every page
    for r in sibs:
        s.finish(r, FinishReason.STOP)
    s.pool.check_integrity()
    assert s.pool.num_free == s.pool.num_blocks


def test_last_waiting_sibling_forks_a_running_siblings_pages() -> None:
    s = sched(64, BranchAwarePolicy(coalesce_steps=0), max_num_seqs=2)
    sibs = group("d", 16, 3, 0)
    for r in sibs:
        s.add(r)
    step(s)  # alone in an idle engine the group goes in as far as the sequence limit
    assert [r.status for r in sibs] == [RequestStatus.RUNNING, RequestStatus.RUNNING, RequestStatus.WAITING]
    s.finish(sibs[0], FinishReason.STOP)
    rows = step(s)
    # the one sibling left waiting is still a fork branch: it starts from the running
    # sibling's computed prefix pages instead of prefilling the prefix again
    assert (sibs[2], 16, 2) in rows
    assert sibs[2].block_table[:4] == sibs[1].block_table[:4]


def test_group_waits_whole_for_the_next_steps_token_budget() -> None:
    s = sched(256, BranchAwarePolicy(coalesce_steps=0), max_num_batched_tokens=40)
    first = group("a", 16, 2, 0)  # 18 + 2 tokens
    second = group("b", 16, 3, 2)  # 18 + 2 + 2 tokens: more than the 20 left
    single = req([1, 2, 3], 5)
    for r in [*first, *second, single]:
        s.add(r)
    rows = step(s)
    # the second fork is not split across steps: it waits whole, and the step's
    # remaining tokens go to the independent request behind it
    assert [r for r, _, _ in rows] == [*first, single]
    rows = step(s)
    assert [(r, n) for r, _, n in rows if r in second] == [(second[0], 18), (second[1], 2), (second[2], 2)]


def test_group_waits_whole_for_the_sequence_limit() -> None:
    s = sched(256, BranchAwarePolicy(coalesce_steps=0), max_num_seqs=4)
    s.add(req([1, 2, 3], 0))
    step(s)
    sibs = group("d", 8, 4, 1)  # 4 more sequences than the 3 free slots
    for r in sibs:
        s.add(r)
    step(s)
    assert all(r.status is RequestStatus.WAITING and not r.block_table for r in sibs)


def test_admissions_coalesce_while_a_batch_decodes() -> None:
    s = sched(256, BranchAwarePolicy(coalesce_steps=3))
    first = req([1, 2, 3], 0)
    s.add(first)
    assert [r for r, _, _ in step(s)] == [first]  # an idle engine admits at once
    late = req([4, 5, 6], 1)
    later = req([7, 8, 9], 2)
    s.add(late)
    step(s)
    s.add(later)
    step(s)
    step(s)
    assert late.status is RequestStatus.WAITING and later.status is RequestStatus.WAITING
    rows = step(s)  # `late` was held for 3 steps: both join in the same step
    assert {r for r, _, _ in rows} == {first, late, later}
    assert late.status is RequestStatus.RUNNING and later.status is RequestStatus.RUNNING


def test_coalescing_gives_way_to_a_full_step_and_to_priority() -> None:
    s = sched(256, BranchAwarePolicy(coalesce_steps=8), max_num_batched_tokens=16)
    s.add(req([1, 2, 3], 0))
    step(s)
    small = req([4, 5, 6], 1)
    s.add(small)
    step(s)
    assert small.status is RequestStatus.WAITING
    big = req(list(range(20)), 2)  # the waiting work now fills the step
    s.add(big)
    step(s)
    assert small.status is RequestStatus.RUNNING and big.status is RequestStatus.RUNNING
    urgent = req([9, 9], 3, priority=1)
    s.add(urgent)
    step(s)
    assert urgent.status is RequestStatus.RUNNING


def test_group_admitted_all_or_nothing_under_memory_pressure() -> None:
    s = sched(14, BranchAwarePolicy(coalesce_steps=0))
    hog = req(list(range(30)), 0)  # 8 pages with its first output token
    s.add(hog)
    step(s)
    sibs = group("d", 12, 4, 1)  # leader 4 pages + 1 page per sibling = 7 > 6 free
    late = req([1, 2, 3], 9)
    for r in [*sibs, late]:
        s.add(r)
    rows = step(s)
    assert [r for r, _, _ in rows] == [hog]  # no sibling, and nobody jumps the group
    assert all(r.status is RequestStatus.WAITING and not r.block_table for r in sibs)
    s.finish(hog, FinishReason.STOP)
    step(s)
    step(s)
    assert all(r.status is RequestStatus.RUNNING for r in sibs)
    assert late.status is RequestStatus.RUNNING


def test_group_larger_than_pool_still_progresses_when_alone() -> None:
    s = sched(6)
    sibs = group("d", 8, 4, 0)  # needs 2 + 4 * 1 + ... more than fits with room to grow
    for r in sibs:
        s.add(r)
    for _ in range(4):
        step(s)
    assert any(r.status is RequestStatus.RUNNING for r in sibs)


def test_victim_is_outside_the_oldest_group() -> None:
    policy = BranchAwarePolicy()
    s = sched(64, policy)
    sibs = group("old", 8, 2, 0)
    other = req([5, 6, 7], 2, priority=1)
    young = group("young", 8, 2, 3)
    for r in [*sibs, other, *young]:
        s.add(r)
    for _ in range(3):
        step(s)
    assert policy.choose_victim([*sibs, other, *young]) is young[1]
    assert policy.choose_victim([*sibs, other]) is other
    assert policy.choose_victim(sibs) is sibs[1]


def test_preemption_then_resume_shares_a_running_siblings_pages() -> None:
    s = sched(10)
    sibs = group("d", 8, 2, 0)  # 2 prefix pages + one page each
    indep = req([1, 2, 3, 4, 5, 6, 7], 5)
    for r in [*sibs, indep]:
        s.add(r)
    step(s)
    step(s)
    step(s)
    assert {r.status for r in [*sibs, indep]} == {RequestStatus.RUNNING}
    # grow everyone until the pool is exhausted: the independent request goes first
    preempted: list[Request] = []
    for _ in range(20):
        out = s.schedule()
        preempted += out.preempted
        for r in out.rows:
            r.request.num_computed_tokens = r.start + r.num_tokens
            if r.samples:
                r.request.token_ids.append(7)
        if preempted:
            break
    assert preempted and preempted[0] is indep
    assert indep.status is RequestStatus.WAITING and indep.num_computed_tokens == 0
    s.finish(sibs[0], FinishReason.STOP)
    s.finish(sibs[1], FinishReason.STOP)
    rows = step(s)
    assert rows and rows[0][0] is indep and rows[0][1] == 0  # resumed by recompute
    assert indep.metrics.num_preemptions == 1


def test_aging_bounds_waiting_behind_higher_priority_groups() -> None:
    aging = 3
    s = sched(64, BranchAwarePolicy(aging_steps=aging), max_num_seqs=2)
    low = req([1, 2, 3], 0, priority=0)
    s.add(low)
    seq = 1
    admitted_at = None
    for t in range(40):
        # a new high-priority fork arrives every step and the old ones finish
        for r in list(s.running):
            s.finish(r, FinishReason.STOP)
        for r in group(f"g{t}", 4, 2, seq, priority=2):
            s.add(r)
        seq += 2
        step(s)
        if low.status is RequestStatus.RUNNING:
            admitted_at = t
            break
    # priority gap 2 means at most (2 + 1) * aging steps of waiting
    assert admitted_at is not None and admitted_at <= 3 * aging


def test_priority_then_deadline_order() -> None:
    policy = BranchAwarePolicy()
    s = sched(64, policy)
    a = req([1, 2], 0)
    b = req([1, 2], 1, priority=1)
    c = req([1, 2], 2)
    c.deadline = 5.0
    assert policy.order_waiting([a, b, c], []) == [b, c, a]
    assert s.pool.num_free == 64


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import transformers

    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                                   num_key_value_heads=2, vocab_size=128, max_position_embeddings=256,
                                   bos_token_id=None, eos_token_id=None, pad_token_id=None)
    model = transformers.LlamaForCausalLM(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    path = tmp_path_factory.mktemp("tiny") / "llama"
    model.float().eval().save_pretrained(path)
    return path


def _serve(model_dir: Path, policy: str, num_blocks: int) -> tuple[dict[str, list[int]], LLMEngine]:
    engine = LLMEngine.from_pretrained(model_dir, block_size=4, num_blocks=num_blocks, scheduling_policy=policy,
                                       prefix_cache=RadixCache, shuffle_seed=1)
    g = torch.Generator().manual_seed(3)
    params = SamplingParams(max_tokens=12, ignore_eos=True)
    ids = []
    for d in range(3):
        shared = torch.randint(0, 128, (13,), generator=g).tolist()
        for b in range(2 + d):
            tail = torch.randint(0, 128, (2 + b,), generator=g).tolist()
            ids.append(engine.add_request(shared + tail, params, request_id=f"d{d}b{b}", dag_id=f"d{d}"))
        ids.append(engine.add_request(torch.randint(0, 128, (6,), generator=g).tolist(), params, request_id=f"i{d}"))
    outs: dict[str, list[int]] = {}
    while engine.has_unfinished_requests():
        for o in engine.step():
            if o.finished:
                assert o.error is None
                outs[o.request_id] = o.output_token_ids
    engine.close()
    assert set(outs) == set(ids)
    return outs, engine


def test_greedy_outputs_identical_under_both_policies(tiny_dir: Path) -> None:
    fcfs, _ = _serve(tiny_dir, "fcfs", 256)
    branch, eng = _serve(tiny_dir, "branch_aware", 256)
    assert branch == fcfs
    assert eng.scheduler.policy.shared_tokens > 0  # type: ignore[attr-defined]
    tight, eng = _serve(tiny_dir, "branch_aware", 24)  # forces preemption and resume
    assert eng.stats()["preemptions"] > 0
    assert tight == fcfs
    eng.pool.check_integrity()


def test_engine_prefills_a_fork_in_one_step_next_to_a_decoding_batch(tiny_dir: Path) -> None:
    """The siblings read the leader's prefix pages in the step that writes them, while
    other rows decode from the kept K/V workspace; results equal FCFS's."""
    g = torch.Generator().manual_seed(5)
    shared = torch.randint(0, 128, (22,), generator=g).tolist()
    tails = [torch.randint(0, 128, (3,), generator=g).tolist() for _ in range(3)]
    early = [torch.randint(0, 128, (7,), generator=g).tolist() for _ in range(2)]
    outs = {}
    for policy in ("fcfs", "branch_aware"):
        engine = LLMEngine.from_pretrained(tiny_dir, block_size=4, num_blocks=128, scheduling_policy=policy,
                                           prefix_cache=RadixCache)
        params = SamplingParams(max_tokens=6, ignore_eos=True)
        for i, p in enumerate(early):
            engine.add_request(p, params, request_id=f"e{i}")
        engine.step()
        engine.step()  # the early requests decode
        for i, t in enumerate(tails):
            engine.add_request(shared + t, params, request_id=f"b{i}", dag_id="fork")
        firsts: dict[str, int] = {}
        got: dict[str, list[int]] = {}
        n = 0
        while engine.has_unfinished_requests():
            n += 1
            for o in engine.step():
                if o.request_id.startswith("b") and o.output_token_ids:
                    firsts.setdefault(o.request_id, n)
                if o.finished:
                    assert o.error is None
                    got[o.request_id] = o.output_token_ids
        if policy == "branch_aware":
            assert len(set(firsts.values())) == 1  # every branch sampled its first token in one step
            assert engine.scheduler.policy.shared_tokens == 2 * 20  # type: ignore[attr-defined]
        engine.pool.check_integrity()
        engine.close()
        outs[policy] = got
    assert outs["branch_aware"] == outs["fcfs"]


def test_heterogeneous_fork_batch_same_outputs_as_fcfs() -> None:
    """Constrained fork branches and unconstrained requests share steps; results do not move."""
    import json

    from agentic_llm.grammar import GrammarCompiler, TokenizerInfo
    from agentic_llm.models import shipped_model_dir
    from agentic_llm.planner import GenerateRequest, plan

    d = shipped_model_dir()
    raw = json.loads((Path(__file__).resolve().parents[2] / "bench" / "validity_requests.jsonl")
                     .read_text(encoding="utf-8").splitlines()[0])
    plans = []
    for i in range(3):
        r = dict(raw, target_path=f"/dynamic/branch_{i}", dag_id="fork-1", branch_id=str(i))
        r["budget"] = {"max_nodes": 3, "max_tokens": 160, "timeout_sec": 60}
        plans.append(plan(GenerateRequest.from_json(r)))
    results = {}
    vocab = json.loads((d / "config.json").read_text())["vocab_size"]
    compiler = GrammarCompiler(TokenizerInfo.from_hf_tokenizer_json(d / "tokenizer.json", vocab_size=vocab))
    for policy in ("fcfs", "branch_aware"):
        engine = LLMEngine.from_pretrained(d, block_size=16, num_blocks=256, scheduling_policy=policy,
                                           prefix_cache=RadixCache)
        params = SamplingParams(max_tokens=40)
        for i, p in enumerate(plans):
            engine.add_request(p.render_prompt(), params, compiler.matcher_for(p), request_id=f"b{i}",
                               dag_id="fork-1", branch_id=str(i))
        engine.add_request("free text request", SamplingParams(max_tokens=12, ignore_eos=True), request_id="free")
        outs = {}
        while engine.has_unfinished_requests():
            for o in engine.step():
                if o.finished:
                    assert o.error is None
                    outs[o.request_id] = o.output_token_ids
        if policy == "branch_aware":
            assert engine.scheduler.policy.shared_tokens > 0  # type: ignore[attr-defined]
        engine.close()
        results[policy] = outs
    assert results["fcfs"] == results["branch_aware"]


def test_benchmark_counts_one_prefill_per_fork(tiny_dir: Path) -> None:
    """The benchmark's deterministic figures: same outputs, the shared prompt computed once."""
    from agentic_llm.benchmarks.scheduler import run_benchmark

    out = run_benchmark(dags=2, independent=2, shared_len=48, max_tokens=3, rate=1e6, num_blocks=256,
                        model=str(tiny_dir))
    assert out["outputs_identical"]
    pol = out["policies"]
    assert pol["fcfs"]["failed_requests"] == pol["branch_aware"]["failed_requests"] == 0
    assert pol["fcfs"]["output_tokens"] == pol["branch_aware"]["output_tokens"] == 3 * out["workload"]["requests"]
    # every fork's 48 shared tokens: prefilled by each branch under FCFS, once under branch-aware
    assert pol["branch_aware"]["prefill_tokens"] < pol["fcfs"]["prefill_tokens"]
    assert set(out["ratios"]) == {"group_p50", "throughput", "prefill_tokens", "independent_p99"}
