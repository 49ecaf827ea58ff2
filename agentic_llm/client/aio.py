"""The asyncio client: the same methods as :class:`~agentic_llm.client.Client`, awaitable.

    async with AsyncClient("127.0.0.1:50051") as c:
        r = await c.generate_subgraph(target_path="/dynamic/plan_1", prompt="Plan a trip")
        async for item in c.stream(target_path="/dynamic/p2", prompt="..."):
            ...
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agentic_llm.client.common import (
    RetryPolicy,
    as_request,
    auth_metadata,
    open_channel,
)
from agentic_llm.client.convert import (
    branch_from_proto,
    request_to_proto,
    result_from_proto,
    stream_item_from_proto,
)
from agentic_llm.client.errors import from_rpc_error
from agentic_llm.client.protos import SERVICE_NAME, load
from agentic_llm.planner import GenerateRequest
from agentic_llm.serving.knowledge import KnowledgeRecord
from agentic_llm.serving.result import BranchResult, ServingResult, StreamItemT

__all__ = ["AsyncClient"]


class AsyncClient:
    """asyncio client of the AgenticLLM service; arguments as for ``Client``."""

    def __init__(
        self,
        address: str,
        *,
        token: str | None = None,
        root_certificates: bytes | str | Path | None = None,
        timeout: float | None = 120.0,
        retry: RetryPolicy | None = None,
        max_message_bytes: int = 64 * 1024 * 1024,
        server_name: str | None = None,
    ) -> None:
        self._channel = open_channel(grpc.aio, address, root_certificates=root_certificates,
                                     max_message_bytes=max_message_bytes, server_name=server_name)
        self._stub = load().pb2_grpc.AgenticLLMStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._metadata = auth_metadata(token)
        self.timeout = timeout
        self.retry = retry or RetryPolicy()

    async def _call(self, method: Any, msg: Any, timeout: float | None) -> Any:
        attempt = 0
        while True:
            attempt += 1
            try:
                return await method(msg, timeout=timeout or self.timeout, metadata=self._metadata)
            except grpc.RpcError as exc:
                err = from_rpc_error(exc)
                if not self.retry.should_retry(err, attempt):
                    raise err from None
                await asyncio.sleep(self.retry.delay(attempt))

    async def _streaming(self, method: Any, msg: Any, timeout: float | None) -> AsyncIterator[Any]:
        attempt = 0
        while True:
            attempt += 1
            received = False
            call = method(msg, timeout=timeout or self.timeout, metadata=self._metadata)
            try:
                async for item in call:
                    received = True
                    yield item
                return
            except grpc.RpcError as exc:
                err = from_rpc_error(exc)
                if received or not self.retry.should_retry(err, attempt):
                    raise err from None
                await asyncio.sleep(self.retry.delay(attempt))
            finally:
                call.cancel()

    async def generate_subgraph(self, request: GenerateRequest | Mapping[str, Any] | str | None = None,
                                /, *, timeout: float | None = None, **fields: Any) -> ServingResult:
        """See ``Client.generate_subgraph``."""
        msg = request_to_proto(as_request(request, fields))
        return result_from_proto(await self._call(self._stub.GenerateSubgraph, msg, timeout))

    async def stream(self, request: GenerateRequest | Mapping[str, Any] | str | None = None, /, *,
                     tokens: bool = False, timeout: float | None = None,
                     **fields: Any) -> AsyncIterator[StreamItemT]:
        """See ``Client.stream``."""
        msg = request_to_proto(as_request(request, fields), stream_tokens=tokens)
        async for item in self._streaming(self._stub.GenerateSubgraphStream, msg, timeout):
            out = stream_item_from_proto(item)
            if out is not None:
                yield out

    async def fork(self, branches: Iterable[GenerateRequest | Mapping[str, Any]], *,
                   dag_id: str = "", timeout: float | None = None) -> AsyncIterator[BranchResult]:
        """See ``Client.fork``."""
        msg = load().pb2.GenerateForkRequest(dag_id=dag_id)
        for b in branches:
            msg.branches.append(request_to_proto(as_request(b, {})))
        async for item in self._streaming(self._stub.GenerateFork, msg, timeout):
            yield branch_from_proto(item)

    async def cache_stats(self, *, timeout: float | None = None) -> dict[str, float]:
        pb = load().pb2
        m = await self._call(self._stub.CacheStats, pb.CacheStatsRequest(), timeout)
        out = {"entries": float(m.subgraph_entries), "exact_hits": float(m.exact_hits),
               "fuzzy_hits": float(m.fuzzy_hits), "misses": float(m.misses),
               "prefix_query_tokens": float(m.prefix_query_tokens),
               "prefix_hit_tokens": float(m.prefix_hit_tokens)}
        out.update(dict(m.extra))
        return out

    async def invalidate_cache(self, *, path_prefix: str = "", tenant: str = "", all: bool = False,
                               timeout: float | None = None) -> int:
        pb = load().pb2
        m = await self._call(self._stub.InvalidateCache, pb.InvalidateCacheRequest(
            path_prefix=path_prefix, tenant=tenant, all=all), timeout)
        return int(m.removed)

    async def register_knowledge(self, *, namespace: str, key: str = "", text: str = "", tenant: str = "",
                                 id: str = "", metadata: Mapping[str, str] | None = None,
                                 key_vector: Iterable[float] = (), value_vector: Iterable[float] = (),
                                 reliability: float = 1.0, timeout: float | None = None) -> str:
        pb = load().pb2
        entry = pb.KnowledgeEntry(id=id, tenant=tenant, namespace=namespace, key=key, text=text,
                                  metadata=dict(metadata or {}), key_vector=list(key_vector),
                                  value_vector=list(value_vector), reliability=reliability)
        m = await self._call(self._stub.RegisterKnowledge, pb.RegisterKnowledgeRequest(entry=entry), timeout)
        return str(m.id)

    async def remove_knowledge(self, *, namespace: str, id: str, tenant: str = "",
                               timeout: float | None = None) -> bool:
        pb = load().pb2
        m = await self._call(self._stub.RemoveKnowledge, pb.RemoveKnowledgeRequest(
            tenant=tenant, namespace=namespace, id=id), timeout)
        return bool(m.removed)

    async def list_knowledge(self, *, tenant: str = "", namespace: str = "",
                             timeout: float | None = None) -> list[KnowledgeRecord]:
        pb = load().pb2
        m = await self._call(self._stub.ListKnowledge, pb.ListKnowledgeRequest(
            tenant=tenant, namespace=namespace), timeout)
        return [KnowledgeRecord(e.id, e.tenant, e.namespace, e.key, e.text, dict(e.metadata))
                for e in m.entries]

    async def health(self, service: str = SERVICE_NAME, *, timeout: float | None = 5.0) -> str:
        m = await self._call(self._health.Check, health_pb2.HealthCheckRequest(service=service), timeout)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(m.status))

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
