"""StreamingSession: per-token diagnostics during generation, summary, live knowledge updates."""

from __future__ import annotations

import torch

from agentic_llm.aga import AGAPlugin, EventBus

from .conftest import random_ids, small_config


def test_session_reports_each_generated_token(llama: torch.nn.Module) -> None:
    bus = EventBus()
    forward_events: list[dict] = []
    bus.subscribe(lambda e: forward_events.append(dict(e.fields)), "forward")
    plugin = AGAPlugin(small_config(gate2_min_score=-1.0, layers=(1, 2), tau_low=0.0,
                                    tau_high=1.0), event_bus=bus).attach(llama)
    try:
        ids = torch.tensor(random_ids(1, 6, seed=30))
        session = plugin.create_streaming_session()
        assert session.get_step_diagnostics()["aga_applied"] is False
        llama.generate(ids, max_new_tokens=4, do_sample=False)  # nothing registered yet
        assert session.get_step_diagnostics()["aga_applied"] is False
        assert session.get_step_diagnostics()["knowledge_visible"] is False
        session.update_knowledge("live", torch.randn(16), 3 * torch.randn(64))
        steps = []
        out = ids
        for _ in range(4):  # token-by-token generation with the plugin injecting
            out = llama.generate(out, max_new_tokens=1, do_sample=False)
            steps.append(session.get_step_diagnostics())
        assert all(d["aga_applied"] for d in steps)
        assert [d["step"] for d in steps] == [5, 6, 7, 8]  # generate(4) = 4 forwards
        assert all(d["layers_hooked"] == 2 for d in steps)
        assert all(0.0 < d["gate_mean"] <= plugin.config.max_gate for d in steps)
        summary = session.close()
        assert summary["total_steps"] == 8 and summary["injected_steps"] == 4
        assert abs(summary["injection_rate"] - 4 / 8) < 1e-9
        assert summary["knowledge_updates"] == 1
        assert plugin.get_audit_trail(operation="update")[0]["target"] == "live"
        assert forward_events and {"layer", "applied", "latency_us", "gate_value"} <= set(forward_events[-1])
    finally:
        plugin.detach()


def test_decode_steps_use_the_previous_step_entropy(llama: torch.nn.Module) -> None:
    # tau window above any entropy the random model produces: decode steps (which have
    # a previous entropy) stay closed, while the prompt (unknown entropy) is treated
    # as uncertain and gets knowledge.
    cfg = small_config(gate2_min_score=-1.0, layers=(1,), tau_low=50.0, tau_high=60.0,
                       gate1_unknown_uncertainty=100.0)
    plugin = AGAPlugin(cfg).attach(llama)
    plugin.register("k", torch.randn(16), torch.randn(64))
    session = plugin.create_streaming_session()
    try:
        llama.generate(torch.tensor(random_ids(1, 5, seed=31)), max_new_tokens=3, do_sample=False)
        diags = session.get_all_diagnostics()
    finally:
        plugin.detach()
    assert diags[0]["aga_applied"] is True and diags[0]["uncertainty_mean"] == 100.0
    assert [d["aga_applied"] for d in diags[1:]] == [False, False]
    assert all(d["uncertainty_mean"] < 50.0 for d in diags[1:])
