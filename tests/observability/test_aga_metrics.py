"""The real AGA plugin, hooked into the real engine, moves the seed's aga_* metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from prometheus_client.parser import text_string_to_metric_families

from agentic_llm.observability.engine_probe import EngineObserver
from agentic_llm.observability.events import EventBus
from agentic_llm.observability.prometheus import PrometheusExporter

from .tiny_model import HIDDEN, write_tiny_llama


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("aga-tiny"))


def samples(exporter: PrometheusExporter) -> dict[tuple[str, tuple], float]:
    text = exporter.exposition().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_aga_forward_audit_and_store_metrics(model_dir: Path) -> None:
    from agentic_llm.aga import AGAConfig, AGAPlugin
    from agentic_llm.engine import LLMEngine, SamplingParams

    engine = LLMEngine.from_pretrained(model_dir, num_blocks=64, block_size=16)
    bus = EventBus()
    exporter = PrometheusExporter(bus).start()
    cfg = AGAConfig(hidden_dim=HIDDEN, bottleneck_dim=8, max_slots=16, gate2_top_k=4,
                    gate2_min_score=-1.0, value_norm_target=50.0, encoder_steps=20)
    plugin = AGAPlugin(cfg, event_bus=bus).attach(engine.model)
    try:
        g = torch.Generator().manual_seed(0)
        for i in range(4):
            plugin.register(f"fact_{i}", torch.randn(8, generator=g), torch.randn(HIDDEN, generator=g))
        engine.generate([[1, 2, 3, 4, 5]], SamplingParams(max_tokens=4, ignore_eos=True),
                        observers=[EngineObserver(engine, bus)])
        s = samples(exporter)
        forwards = sum(v for (n, _), v in s.items() if n == "aga_forward_total")
        assert forwards >= 4  # at least one hooked layer per step
        assert sum(v for (n, _), v in s.items() if n == "aga_forward_latency_us_count") == forwards
        assert s[("aga_audit_operations_total", (("operation", "register"), ("success", "true")))] == 4
        assert s[("aga_knowledge_count", ())] == 4
        assert s[("aga_knowledge_utilization", ())] == 4 / 16
        assert 0.0 <= s[("aga_activation_rate", ())] <= 1.0
        assert s[("agentic_requests_total", (("error_code", "none"), ("outcome", "success")))] == 1
    finally:
        plugin.detach()
        exporter.stop()
        engine.close()
