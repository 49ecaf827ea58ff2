"""The server with the observability stack: one health registry for HTTP and gRPC,
request metrics from the pipeline's events."""

from __future__ import annotations

import urllib.request
from typing import Any

from agentic_llm.client import Client
from tests.server.conftest import REQUEST


def test_metrics_and_shared_health(pipeline: Any) -> None:
    from agentic_llm.config import ServerConfig
    from agentic_llm.observability.config import ObservabilityConfig
    from agentic_llm.observability.stack import ObservabilityStack
    from agentic_llm.server import AgenticServer
    from agentic_llm.serving import Admission

    view = pipeline.with_admission(Admission(4, 4))
    stack = ObservabilityStack(ObservabilityConfig(http_host="127.0.0.1", http_port=0)).start()
    try:
        stack.bind_pipeline(view, store="memory")
        srv = AgenticServer(ServerConfig.from_dict({"listen": "127.0.0.1:0"}), view,
                            health_registry=stack.health).start()
        try:
            with Client(srv.address) as c:
                assert c.generate_subgraph(dict(REQUEST, target_path="/dynamic/obs_1")).valid
                assert srv._health_adapter.refresh().ok
                assert c.health() == "SERVING"
            stack.flush()
            with urllib.request.urlopen(f"{stack.url}/metrics", timeout=10) as resp:
                metrics = resp.read().decode()
            assert "agentic_requests_total" in metrics
            assert 'outcome="success"' in metrics
            with urllib.request.urlopen(f"{stack.url}/health", timeout=10) as resp:
                assert resp.status == 200
            assert {"engine_loop", "kv_pool"} <= set(stack.health.names)
        finally:
            srv.stop()
    finally:
        stack.shutdown()


def test_serve_builds_the_stack_from_config(pipeline: Any) -> None:
    from agentic_llm.cli.serve import _observability
    from agentic_llm.config import ServerConfig

    off = ServerConfig.from_dict({})
    assert _observability(off, pipeline) is None
    on = ServerConfig.from_dict({"observability": {"enabled": True, "http_listen": "127.0.0.1:0"}})
    stack = _observability(on, pipeline)
    try:
        assert stack is not None and stack.url.startswith("http://127.0.0.1:")
        assert "engine_loop" in stack.health.names
    finally:
        stack.shutdown()
