"""The SDK: asyncio client, in-process Engine, retries on UNAVAILABLE only."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import grpc
import pytest

from agentic_llm.client import AsyncClient, Client, Engine, RetryPolicy, ServiceError
from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.planner import GenerateRequest
from agentic_llm.serving import CacheOutcome, NodeEvent, ServingResult
from tests.server.conftest import REQUEST


def test_async_client_generate_stream_fork(server: Any) -> None:
    async def main() -> None:
        async with AsyncClient(server.address) as c:
            assert await c.health() == "SERVING"
            r = await c.generate_subgraph(dict(REQUEST, target_path="/dynamic/async_1"))
            assert r.valid and r.document is not None
            again = await c.generate_subgraph(dict(REQUEST, target_path="/dynamic/async_1"))
            assert again.cache == CacheOutcome.EXACT
            items = [i async for i in c.stream(dict(REQUEST, target_path="/dynamic/async_2"))]
            assert isinstance(items[-1], ServingResult)
            assert any(isinstance(i, NodeEvent) for i in items[:-1])
            branches = [dict(REQUEST, target_path=f"/dynamic/async_f{i}") for i in range(2)]
            got = [b async for b in c.fork(branches, dag_id="adag")]
            assert sorted(b.index for b in got) == [0, 1]
            assert all(b.result is not None and b.result.valid for b in got)
            with pytest.raises(ServiceError) as info:
                await c.generate_subgraph(dict(REQUEST, target_path="/lib/nope"))
            assert info.value.code == ErrorCode.NAMESPACE_VIOLATION
            assert (await c.cache_stats())["entries"] >= 1

    asyncio.run(main())


def test_in_process_engine_has_the_same_methods(pipeline: Any) -> None:
    eng = Engine(pipeline)
    r = eng.generate_subgraph(target_path="/dynamic/inproc_1", prompt="Plan a trip to {{ city }}",
                              context={"available_vars": {"city": "string"}, "values": {"city": "Nice"}},
                              budget={"max_tokens": 200})
    assert r.valid and r.document is not None
    same = eng.generate_subgraph(GenerateRequest.from_json({
        "target_path": "/dynamic/inproc_1", "prompt": "Plan a trip to {{ city }}",
        "context": {"available_vars": {"city": "string"}, "values": {"city": "Nice"}},
        "budget": {"max_tokens": 200}}))
    assert same.cache == CacheOutcome.EXACT
    items = list(eng.stream(dict(REQUEST, target_path="/dynamic/inproc_2")))
    assert isinstance(items[-1], ServingResult)
    branches = list(eng.fork([dict(REQUEST, target_path=f"/dynamic/inproc_f{i}") for i in range(2)]))
    assert len(branches) == 2 and all(b.result is not None for b in branches)
    with pytest.raises(AgenticError) as info:
        eng.generate_subgraph(dict(REQUEST, target_path="/lib/nope"))
    assert info.value.code == ErrorCode.NAMESPACE_VIOLATION
    assert eng.invalidate_cache(path_prefix="/dynamic/inproc_1") == 1
    assert "engine_blocks_total" in eng.cache_stats()


def test_retry_policy_retries_unavailable_only() -> None:
    policy = RetryPolicy(max_attempts=3)
    def err(status: grpc.StatusCode) -> ServiceError:
        return ServiceError(ErrorCode.INTERNAL, "x", status)
    assert policy.should_retry(err(grpc.StatusCode.UNAVAILABLE), 1)
    assert policy.should_retry(err(grpc.StatusCode.UNAVAILABLE), 2)
    assert not policy.should_retry(err(grpc.StatusCode.UNAVAILABLE), 3)
    for status in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED,
                   grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INTERNAL):
        assert not policy.should_retry(err(status), 1)
    assert all(0 <= policy.delay(a) <= policy.max_backoff_s for a in range(1, 10))
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


def test_client_retries_until_the_server_comes_up(make_server: Any) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    starter = threading.Timer(0.5, lambda: make_server(listen=f"127.0.0.1:{port}"))
    starter.start()
    retry = RetryPolicy(max_attempts=40, initial_backoff_s=0.05, max_backoff_s=0.3)
    with Client(f"127.0.0.1:{port}", retry=retry, timeout=30) as c:
        r = c.generate_subgraph(dict(REQUEST, target_path="/dynamic/retry_1"))
    starter.join()
    assert r.valid


def test_refusals_are_not_retried(server: Any) -> None:
    calls = 0
    with Client(server.address, retry=RetryPolicy(max_attempts=5)) as c:
        real = c._stub.GenerateSubgraph

        def counting(*args: Any, **kw: Any) -> Any:
            nonlocal calls
            calls += 1
            return real(*args, **kw)

        c._stub.GenerateSubgraph = counting
        with pytest.raises(ServiceError):
            c.generate_subgraph(dict(REQUEST, budget={"max_tokens": 8}))
    assert calls == 1


def test_unreachable_server_gives_unavailable_after_retries() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    retry = RetryPolicy(max_attempts=3, initial_backoff_s=0.01, max_backoff_s=0.02)
    c = Client(f"127.0.0.1:{port}", retry=retry, timeout=5)
    with c, pytest.raises(ServiceError) as info:
        c.health()
    assert info.value.code == ErrorCode.UNAVAILABLE
    assert time.monotonic() - t0 < 15


def test_request_must_be_a_request_or_fields() -> None:
    from agentic_llm.client.common import as_request

    with pytest.raises(AgenticError) as info:
        as_request(dict(REQUEST), {"prompt": "x"})
    assert info.value.code == ErrorCode.INVALID_REQUEST
    with pytest.raises(AgenticError):
        as_request(None, {"target_path": "/dynamic/x"})
