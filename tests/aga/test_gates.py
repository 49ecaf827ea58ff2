"""Gate-1 ramp, early exit, cross-layer decay and its per-thread state."""

from __future__ import annotations

import threading

import torch

from agentic_llm.aga import AGAConfig, EntropyGateSystem, PersistenceDecay


def test_gate1_ramps_between_tau_low_and_tau_high() -> None:
    gates = EntropyGateSystem(AGAConfig(tau_low=1.0, tau_high=3.0, max_gate=0.8))
    g = gates.gate1(torch.tensor([0.0, 1.0, 2.0, 3.0, 9.0]))
    assert torch.allclose(g, torch.tensor([0.0, 0.0, 0.4, 0.8, 0.8]))


def test_early_exit_zeroes_small_gates_exactly() -> None:
    gates = EntropyGateSystem(AGAConfig(early_exit_threshold=0.1))
    g = torch.tensor([0.05, 0.1, 0.5])
    out = gates.finalize(g)
    assert out[0].item() == 0.0 and torch.equal(out[1:], g[1:])
    off = EntropyGateSystem(AGAConfig(early_exit_enabled=False))
    assert torch.equal(off.finalize(g), g)


def test_unknown_previous_entropy_uses_the_configured_value() -> None:
    gates = EntropyGateSystem(AGAConfig(tau_low=0.5, tau_high=2.0, gate1_unknown_uncertainty=1.25))
    rows = torch.tensor([0, 0, 1])
    unc = gates.uncertainty_from_rows(torch.tensor([float("nan"), 3.0]), rows, 3, torch.device("cpu"))
    assert unc.tolist() == [1.25, 1.25, 3.0]
    disabled = EntropyGateSystem(AGAConfig(gate1_enabled=False, max_gate=0.7))
    assert torch.allclose(disabled.gate1(torch.tensor([0.0])), torch.tensor([0.7]))


def test_decay_strategies_and_hard_reset() -> None:
    def run(strategy: str, steps: int = 3) -> list[float]:
        d = PersistenceDecay(AGAConfig(decay_strategy=strategy, decay_gamma=0.5,
                                       decay_hard_reset_threshold=10.0))
        st = d.begin(1, torch.device("cpu"))
        out = []
        for _ in range(steps):
            f = d.factor(st)
            out.append(round(float(f[0]), 4))
            d.update(st, torch.ones(1) * f)
        return out

    assert run("exponential") == [1.0, 0.5, 0.25]
    assert run("linear") == [1.0, 0.5, 0.0]
    assert run("adaptive") == [1.0, 0.5, round(0.5 ** 1.5, 4)]
    d = PersistenceDecay(AGAConfig(decay_hard_reset_threshold=1.5))
    st = d.begin(2, torch.device("cpu"))
    d.update(st, torch.tensor([1.0, 0.2]))
    d.update(st, torch.tensor([0.9, 0.2]))
    f = d.factor(st)
    assert f[0].item() == 0.0 and f[1].item() > 0.0


def test_decay_state_is_per_thread() -> None:
    d = PersistenceDecay(AGAConfig())
    d.begin(3, torch.device("cpu"))
    seen: list[object] = []
    th = threading.Thread(target=lambda: seen.append(d.state()))
    th.start()
    th.join()
    assert seen == [None]
    assert d.state() is not None
    d.reset()
    assert d.state() is None
