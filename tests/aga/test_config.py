"""AGAConfig: nested flattening, YAML, validation, from_config."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentic_llm.aga import AGAConfig, AGAPlugin
from agentic_llm.errors import AgenticError, ErrorCode

NESTED = {
    "aga": {
        "hidden_dim": 768, "bottleneck_dim": 32, "max_slots": 128,
        "gate": {"gate1_uncertainty_source": "hidden_variance", "gate2_top_k": 4,
                 "tau_low": 0.1, "tau_high": 1.5, "early_exit_enabled": False},
        "decay": {"strategy": "linear", "gamma": 0.8, "hard_reset_threshold": 2.0},
        "retriever": {"backend": "null", "top_k": 3, "timeout_ms": 5},
        "slot_governance": {"pin_registered": False, "retriever_slot_ratio": 0.25},
        "instrumentation": {"event_buffer_size": 10},
        "streaming": {"diagnostics_buffer_size": 7},
    }
}


def test_nested_dict_is_flattened() -> None:
    cfg = AGAConfig.from_dict(NESTED)
    assert (cfg.hidden_dim, cfg.bottleneck_dim, cfg.max_slots) == (768, 32, 128)
    assert cfg.gate1_uncertainty_source == "hidden_variance" and cfg.gate2_top_k == 4
    assert cfg.decay_strategy == "linear" and cfg.decay_gamma == 0.8
    assert cfg.decay_hard_reset_threshold == 2.0
    assert cfg.retriever_top_k == 3 and cfg.retriever_timeout_ms == 5
    assert cfg.pin_registered is False and cfg.retriever_slot_ratio == 0.25
    assert cfg.event_buffer_size == 10 and cfg.streaming_diagnostics_buffer_size == 7


def test_yaml_file_and_from_config(tmp_path: Path) -> None:
    import yaml

    p = tmp_path / "aga.yaml"
    p.write_text(yaml.safe_dump(NESTED))
    assert AGAConfig.from_config(p) == AGAConfig.from_dict(NESTED)
    plugin = AGAPlugin.from_config(str(p))
    assert plugin.config.hidden_dim == 768
    assert AGAPlugin.from_config({"hidden_dim": 64, "bottleneck_dim": 8}).config.bottleneck_dim == 8


@pytest.mark.parametrize("bad, needle", [
    ({"tau_low": 3.0, "tau_high": 2.0}, "tau_low"),
    ({"max_slots": 0}, "max_slots"),
    ({"max_gate": 1.5}, "max_gate"),
    ({"decay": {"strategy": "cubic"}}, "decay_strategy"),
    ({"gate": {"gate1_uncertainty_source": "vibes"}}, "gate1_uncertainty_source"),
    ({"gate2_top_k": 64, "max_slots": 8}, "gate2_top_k"),
    ({"hidden_dimm": 8}, "unknown AGA config keys"),
])
def test_invalid_configs_name_the_problem(bad: dict, needle: str) -> None:
    with pytest.raises(AgenticError) as info:
        AGAConfig.from_dict(bad)
    assert info.value.code == ErrorCode.INVALID_CONFIG
    assert needle in str(info.value)


def test_bad_yaml_is_reported(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("aga: [unclosed")
    with pytest.raises(AgenticError) as info:
        AGAConfig.from_yaml(p)
    assert info.value.code == ErrorCode.YAML


def test_kvstore_backend_needs_a_store() -> None:
    with pytest.raises(AgenticError) as info:
        AGAPlugin(AGAConfig(hidden_dim=16, bottleneck_dim=4, max_slots=8, gate2_top_k=4,
                            retriever_backend="kvstore"))
    assert "KVStoreRetriever" in str(info.value)
