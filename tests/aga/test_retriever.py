"""Retriever protocol and slot governance: budget, dedup, cooldown, audited injections."""

from __future__ import annotations

import torch

from agentic_llm.aga import AGAPlugin, BottleneckInjector, KVStore, KVStoreRetriever, NullRetriever
from agentic_llm.aga.retriever import RetrievalQuery
from agentic_llm.engine.hooks import HookContext, HookPoint, HookRegistry

from .conftest import small_config

H, D = 64, 16


def _ctx(n: int = 1) -> HookContext:
    return HookContext(token_rows=torch.zeros(n, dtype=torch.long), num_rows=1,
                       is_last_token=torch.arange(n) == n - 1,
                       prev_entropy=torch.tensor([float("nan")]), namespaces=[("kb",)])


def _setup(**cfg: object) -> tuple[AGAPlugin, HookRegistry, KVStore, torch.Tensor]:
    kw: dict = dict(max_slots=8, retriever_slot_ratio=0.25, retriever_cooldown_steps=2,
                    retriever_top_k=1, gate2_min_score=0.9, layers=(0,))
    kw.update(cfg)
    cfg = small_config(**kw)
    hidden = torch.randn(6, H, generator=torch.Generator().manual_seed(3))
    backing = KVStore(32, D, H)
    # the query projection is seeded by the config: keys made here match the plugin's
    keys = BottleneckInjector(cfg, device=torch.device("cpu"), dtype=torch.float32).project_query(hidden)
    for i in range(6):
        backing.put(f"doc{i}", keys[i], torch.full((H,), float(i + 1)), namespace="kb")
    plugin = AGAPlugin(cfg, retriever=KVStoreRetriever(backing, min_score=0.5))
    reg = HookRegistry(2)
    plugin.attach(reg)
    return plugin, reg, backing, hidden


def test_retrieved_knowledge_is_injected_in_the_same_step_and_audited() -> None:
    plugin, reg, _, hidden = _setup()
    out = reg.run(HookPoint.ATTN_OUTPUT, 0, hidden[:1], _ctx())
    assert plugin.store.get("doc0", "kb") is not None
    assert not torch.equal(out, hidden[:1])  # routed to the slot it just retrieved
    assert plugin.get_audit_trail(operation="retriever_inject")[0]["target"] == "doc0"
    stats = plugin.get_diagnostics()["retrieval"]
    assert stats["calls"] == 1 and stats["injected"] == 1


def test_budget_cooldown_and_eviction_of_retrieved_slots() -> None:
    plugin, reg, _, hidden = _setup()
    plugin.register("pinned", torch.randn(D), torch.randn(H), namespace="kb")
    calls = []
    for i in range(6):  # one new query per step
        reg.run(HookPoint.ATTN_OUTPUT, 0, hidden[i:i + 1], _ctx())
        calls.append(plugin.retrieval.calls)  # type: ignore[union-attr]
        assert plugin.store.count(source="retriever") <= 2  # 0.25 * 8 slots
    # step 1 retrieves, steps 2-3 cool down, step 4 retrieves, 5-6 cool down
    assert calls == [1, 1, 1, 2, 2, 2]
    assert plugin.store.get("pinned", "kb") is not None
    gov = plugin.get_diagnostics()["retrieval"]
    assert gov["suppressed_cooldown"] == 4 and gov["budget"] == 2


def test_budget_full_evicts_the_least_recent_retrieved_entry() -> None:
    plugin, reg, _, hidden = _setup(retriever_cooldown_steps=0)
    for i in range(3):
        reg.run(HookPoint.ATTN_OUTPUT, 0, hidden[i:i + 1], _ctx())
    ids = {e["id"] for e in plugin.list_knowledge("kb")}
    assert ids == {"doc1", "doc2"}
    evict = plugin.get_audit_trail(operation="evict")
    assert [e["target"] for e in evict] == ["doc0"]
    assert evict[0]["details"]["reason"] == "retriever_budget"


def test_duplicate_results_are_not_injected_twice() -> None:
    plugin, reg, backing, hidden = _setup(retriever_cooldown_steps=0)
    key, value = backing.vectors("doc0", "kb")
    plugin.register("mine", key, value, namespace="kb")
    reg.run(HookPoint.ATTN_OUTPUT, 0, hidden[:1], _ctx())
    assert plugin.store.get("doc0", "kb") is None
    assert plugin.get_diagnostics()["retrieval"]["deduplicated"] == 1


def test_other_tenants_backing_entries_are_not_retrieved() -> None:
    plugin, reg, _, hidden = _setup()
    ctx = _ctx()
    ctx.namespaces = [("other",)]
    out = reg.run(HookPoint.ATTN_OUTPUT, 0, hidden[:1], ctx)
    assert torch.equal(out, hidden[:1]) and len(plugin.store) == 0


def test_null_retriever_is_never_called() -> None:
    plugin = AGAPlugin(small_config())
    assert isinstance(plugin.retriever, NullRetriever) and plugin.retrieval is None
    q = RetrievalQuery(torch.zeros(1, D), torch.zeros(1, H), torch.zeros(1), [("a",)], 0, 3)
    assert plugin.retriever.retrieve(q) == []
