"""Fixtures: a tiny random-weight model, one shared pipeline, servers on loopback port 0."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server.tiny_model import build_tiny_model

REQUEST: dict[str, Any] = {
    "target_path": "/dynamic/plan_1",
    "prompt": "Find three hotels in {{ city }} and rank them",
    "context": {"available_vars": {"city": "string"}, "values": {"city": "Rome"}},
    "budget": {"max_nodes": 4, "max_tokens": 200, "timeout_sec": 60},
}

#: Requests the random model answers with several nodes (seed 7, about 540 tokens)
#: or a long document (seed 2, about 740 tokens of random strings), for tests that
#: must see several node events or act while a generation is still running.
MULTI_NODE_REQUEST: dict[str, Any] = {
    **REQUEST,
    "target_path": "/dynamic/long_1",
    "budget": {"max_nodes": 8, "max_tokens": 1200, "timeout_sec": 60},
    "sampling": {"temperature": 1.0, "seed": 7},
    "flags": {"bypass_cache": True},
}
LONG_REQUEST: dict[str, Any] = {**MULTI_NODE_REQUEST, "sampling": {"temperature": 1.0, "seed": 2}}


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def pipeline(tiny_model_dir: Path) -> Iterator[Any]:
    from agentic_llm.config import ServerConfig
    from agentic_llm.serving import build_pipeline

    cfg = ServerConfig.from_dict({"model": {"dir": str(tiny_model_dir), "num_blocks": 512},
                                  "cache": {"store": "memory"}})
    p = build_pipeline(cfg)
    yield p
    p.close()


@pytest.fixture
def make_server(pipeline: Any) -> Iterator[Callable[..., Any]]:
    """``make_server(**dotted_config)`` -> a started server over the shared engine,
    with its own admission gate sized by the config's limits."""
    from agentic_llm.config import ServerConfig
    from agentic_llm.server import AgenticServer
    from agentic_llm.serving import Admission

    servers: list[Any] = []

    def make(**dotted: Any) -> Any:
        cfg = ServerConfig.from_dict({"listen": "127.0.0.1:0"}).replace(**dotted)
        view = pipeline.with_admission(Admission(cfg.limits.max_concurrent, cfg.limits.max_queue))
        srv = AgenticServer(cfg, view).start()
        servers.append(srv)
        return srv

    yield make
    for s in servers:
        s.stop()


@pytest.fixture
def server(make_server: Callable[..., Any]) -> Any:
    return make_server()


@pytest.fixture
def client(server: Any) -> Iterator[Any]:
    from agentic_llm.client import Client

    with Client(server.address, timeout=60) as c:
        yield c
