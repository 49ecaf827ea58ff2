"""The asyncio client: the same methods as :class:`~agentic_llm.client.Client`, awaitable.

    async with AsyncClient("127.0.0.1:50051") as c:
        r = await c.generate_subgraph(target_path="/dynamic/plan_1", prompt="Plan a trip")
        async for item in c.stream(target_path="/dynamic/p2", prompt="..."):
            ...
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import grpc
from grpc_health.v1 import health_pb2

from agentic_llm.client.common import GrpcClientBase, as_request
from agentic_llm.client.convert import (
    branch_from_proto,
    cache_stats_from_proto,
    fork_to_proto,
    health_from_proto,
    knowledge_entry_to_proto,
    knowledge_from_proto,
    request_to_proto,
    result_from_proto,
    stream_item_from_proto,
)
from agentic_llm.client.library import LibraryClientMixin
from agentic_llm.client.protos import SERVICE_NAME, load
from agentic_llm.planner import GenerateRequest
from agentic_llm.serving.knowledge import KnowledgeRecord
from agentic_llm.serving.result import BranchResult, ServingResult, StreamItemT

__all__ = ["AsyncClient"]


class AsyncClient(LibraryClientMixin, GrpcClientBase):
    """asyncio client of the AgenticLLM service; arguments as for ``Client``."""

    GRPC = grpc.aio

    async def _library_call(self, rpc: str, msg: Any, timeout: float | None, parse: Any) -> Any:
        return parse(await self._call(getattr(self._stub, rpc), msg, timeout))

    async def _call(self, method: Any, msg: Any, timeout: float | None) -> Any:
        attempt = 0
        while True:
            attempt += 1
            try:
                return await method(msg, **self._options(timeout))
            except grpc.RpcError as exc:
                await asyncio.sleep(self._backoff(exc, attempt))

    async def _streaming(self, method: Any, msg: Any, timeout: float | None) -> AsyncIterator[Any]:
        attempt = 0
        while True:
            attempt += 1
            received = False
            call = method(msg, **self._options(timeout))
            try:
                async for item in call:
                    received = True
                    yield item
                return
            except grpc.RpcError as exc:
                await asyncio.sleep(self._backoff(exc, attempt, received=received))
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
        msg = fork_to_proto((as_request(b, {}) for b in branches), dag_id)
        async for item in self._streaming(self._stub.GenerateFork, msg, timeout):
            yield branch_from_proto(item)

    async def cache_stats(self, *, timeout: float | None = None) -> dict[str, float]:
        m = await self._call(self._stub.CacheStats, load().pb2.CacheStatsRequest(), timeout)
        return cache_stats_from_proto(m)

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
        msg = knowledge_entry_to_proto(namespace=namespace, key=key, text=text, tenant=tenant, id=id,
                                       metadata=metadata, key_vector=key_vector,
                                       value_vector=value_vector, reliability=reliability)
        return str((await self._call(self._stub.RegisterKnowledge, msg, timeout)).id)

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
        return knowledge_from_proto(m)

    async def health(self, service: str = SERVICE_NAME, *, timeout: float | None = 5.0) -> str:
        m = await self._call(self._health.Check, health_pb2.HealthCheckRequest(service=service), timeout)
        return health_from_proto(m)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
