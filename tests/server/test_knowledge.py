"""Knowledge admin RPCs over AGA: register / list / remove per tenant namespace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from agentic_llm.client import Client, ServiceError
from agentic_llm.errors import ErrorCode


@pytest.fixture(scope="module")
def aga_server(tiny_model_dir: Path) -> Iterator[Any]:
    from agentic_llm.config import ServerConfig
    from agentic_llm.engine import LLMEngine
    from agentic_llm.server import AgenticServer
    from agentic_llm.serving import Pipeline, PipelineParts
    from agentic_llm.serving.aga_admin import attach_aga

    # Its own small engine: the AGA hooks must not reach the shared one.
    engine = LLMEngine.from_pretrained(tiny_model_dir, num_blocks=32)
    knowledge = attach_aga(engine)
    pipeline = Pipeline(PipelineParts(engine=engine, knowledge=knowledge))
    srv = AgenticServer(ServerConfig.from_dict({"listen": "127.0.0.1:0"}), pipeline).start()
    yield srv, knowledge
    srv.stop()
    pipeline.close()


def _vectors(knowledge: Any, seed: float) -> tuple[list[float], list[float]]:
    cfg = knowledge.plugin.config
    return [seed] * cfg.bottleneck_dim, [seed / 2] * cfg.hidden_dim


def test_register_list_remove_per_tenant(aga_server: Any) -> None:
    srv, knowledge = aga_server
    kv1 = _vectors(knowledge, 0.1)
    kv2 = _vectors(knowledge, 0.2)
    with Client(srv.address) as c:
        a = c.register_knowledge(tenant="acme", namespace="hotels", key="best hotel in Rome",
                                 text="Hotel Roma", key_vector=kv1[0], value_vector=kv1[1],
                                 metadata={"source": "test"})
        b = c.register_knowledge(tenant="globex", namespace="hotels", id="g1", key="k", text="t",
                                 key_vector=kv2[0], value_vector=kv2[1])
        assert b == "g1" and a
        acme = c.list_knowledge(tenant="acme")
        assert [(e.id, e.namespace, e.key, e.text) for e in acme] == [(a, "hotels", "best hotel in Rome", "Hotel Roma")]
        assert acme[0].metadata["source"] == "test"
        assert [e.id for e in c.list_knowledge(tenant="globex", namespace="hotels")] == ["g1"]
        # One tenant cannot remove another tenant's entry.
        assert not c.remove_knowledge(tenant="acme", namespace="hotels", id="g1")
        assert c.remove_knowledge(tenant="acme", namespace="hotels", id=a)
        assert c.list_knowledge(tenant="acme") == []
        assert [e.id for e in c.list_knowledge(tenant="globex")] == ["g1"]


def test_bad_knowledge_requests(aga_server: Any) -> None:
    srv, knowledge = aga_server
    key, _ = _vectors(knowledge, 0.3)
    with Client(srv.address) as c:
        with pytest.raises(ServiceError) as info:
            c.register_knowledge(tenant="acme", namespace="", key="k", text="t")
        assert info.value.code == ErrorCode.INVALID_REQUEST
        with pytest.raises(ServiceError) as info:
            c.register_knowledge(tenant="acme", namespace="n", key_vector=key)
        assert info.value.status == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(ServiceError) as info:
            c.register_knowledge(tenant="acme", namespace="n", key_vector=key[:3], value_vector=[1.0])
        assert info.value.status == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(ServiceError) as info:
            c.register_knowledge(tenant="a/b", namespace="n", key="k", text="t")
        assert info.value.code == ErrorCode.INVALID_REQUEST
