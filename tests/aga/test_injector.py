"""BottleneckInjector: routing to the matching slot, the similarity floor, exact fusion."""

from __future__ import annotations

import torch

from agentic_llm.aga import AGAConfig, BottleneckInjector, KVStore


def _setup(min_score: float = 0.9) -> tuple[BottleneckInjector, KVStore, torch.Tensor]:
    cfg = AGAConfig(hidden_dim=32, bottleneck_dim=16, max_slots=8, gate2_top_k=2,
                    gate2_min_score=min_score, gate2_temperature=0.05)
    inj = BottleneckInjector(cfg, device=torch.device("cpu"), dtype=torch.float32)
    store = KVStore(8, 16, 32)
    hidden = torch.randn(3, 32, generator=torch.Generator().manual_seed(0))
    keys = inj.project_query(hidden)
    for i in range(3):
        store.put(f"f{i}", keys[i], torch.full((32,), float(i + 1)))
    return inj, store, hidden


def test_each_token_routes_to_its_own_slot() -> None:
    inj, store, hidden = _setup()
    none = torch.zeros(3, 8, dtype=torch.bool)
    res = inj.inject(hidden, store.get_active(), none, torch.full((3,), 0.5))
    assert [store.entries()[int(s)].id for s in res.top_slot] == ["f0", "f1", "f2"]
    for i in range(3):
        assert torch.allclose(res.hidden[i], hidden[i] + 0.5 * (i + 1), atol=1e-4)


def test_below_floor_or_invisible_tokens_are_bit_identical() -> None:
    inj, store, hidden = _setup()
    invisible = torch.zeros(3, 8, dtype=torch.bool)
    invisible[1] = True  # token 1 sees nothing
    other = torch.randn(1, 32)  # unrelated token: best cosine far below 0.9
    h = torch.cat([hidden, other])
    inv = torch.cat([invisible, torch.zeros(1, 8, dtype=torch.bool)])
    res = inj.inject(h, store.get_active(), inv, torch.full((4,), 0.8))
    assert torch.equal(res.hidden[1], h[1]) and res.gate[1].item() == 0.0
    assert torch.equal(res.hidden[3], h[3]) and res.gate[3].item() == 0.0
    assert not torch.equal(res.hidden[0], h[0])


def test_zero_gate_is_exact_and_usage_is_tracked() -> None:
    inj, store, hidden = _setup()
    view = store.get_active()
    store.tick()
    res = inj.inject(hidden, view, torch.zeros(3, 8, dtype=torch.bool), torch.zeros(3))
    assert torch.equal(res.hidden, hidden)
    slot0 = store.get("f0").slot  # type: ignore[union-attr]
    assert int(view.usage[slot0]) == int(view.clock[0])


def test_long_prefill_uses_the_dense_path_with_the_same_result() -> None:
    inj, store, hidden = _setup(min_score=-1.0)
    many = hidden.repeat(4, 1)  # 12 tokens * top-2 > 8 slots -> dense path
    none = torch.zeros(12, 8, dtype=torch.bool)
    dense = inj.inject(many, store.get_active(), none, torch.full((12,), 0.5)).hidden
    sparse = inj.inject(hidden, store.get_active(), none[:3], torch.full((3,), 0.5)).hidden
    assert torch.allclose(dense[:3], sparse, atol=1e-5)


def test_center_is_subtracted_before_projection() -> None:
    inj, _, hidden = _setup()
    center = hidden.mean(0)
    inj.set_center(center)
    q = inj.project_query(hidden)
    manual = torch.nn.functional.normalize((hidden - center) @ inj.w_query.T, dim=-1)
    assert torch.allclose(q, manual, atol=1e-5)
