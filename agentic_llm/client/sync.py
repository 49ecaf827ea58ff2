"""The blocking client.

    from agentic_llm.client import Client
    with Client("127.0.0.1:50051") as c:
        r = c.generate_subgraph(target_path="/dynamic/plan_1", prompt="Plan a trip")
        print(r.text, r.cache, r.document)
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
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

__all__ = ["Client"]


class Client(LibraryClientMixin, GrpcClientBase):
    """Blocking client of the AgenticLLM service; constructor arguments as for
    :class:`~agentic_llm.client.common.GrpcClientBase` (address, token,
    root_certificates, timeout, retry, max_message_bytes, server_name)."""

    GRPC = grpc

    # -- plumbing -------------------------------------------------------------------
    def _call(self, method: Any, msg: Any, timeout: float | None) -> Any:
        attempt = 0
        while True:
            attempt += 1
            try:
                return method(msg, **self._options(timeout))
            except grpc.RpcError as exc:
                time.sleep(self._backoff(exc, attempt))

    def _library_call(self, rpc: str, msg: Any, timeout: float | None, parse: Any) -> Any:
        return parse(self._call(getattr(self._stub, rpc), msg, timeout))

    def _streaming(self, method: Any, msg: Any, timeout: float | None) -> Iterator[Any]:
        attempt = 0
        while True:
            attempt += 1
            received = False
            call = method(msg, **self._options(timeout))
            try:
                for item in call:
                    received = True
                    yield item
                return
            except grpc.RpcError as exc:
                time.sleep(self._backoff(exc, attempt, received=received))
            finally:
                call.cancel()

    # -- generation -----------------------------------------------------------------
    def generate_subgraph(self, request: GenerateRequest | Mapping[str, Any] | str | None = None, /, *,
                          timeout: float | None = None, **fields: Any) -> ServingResult:
        """Generate the subgraph for a request (a :class:`GenerateRequest`, the
        request JSON, or its fields as keywords)."""
        msg = request_to_proto(as_request(request, fields))
        return result_from_proto(self._call(self._stub.GenerateSubgraph, msg, timeout))

    def stream(self, request: GenerateRequest | Mapping[str, Any] | str | None = None, /, *,
               tokens: bool = False, timeout: float | None = None, **fields: Any) -> Iterator[StreamItemT]:
        """Node events as nodes complete (token deltas too with ``tokens``), then the result.

        Closing the iterator early cancels the call on the server (its engine pages
        and slot are freed).
        """
        msg = request_to_proto(as_request(request, fields), stream_tokens=tokens)
        for item in self._streaming(self._stub.GenerateSubgraphStream, msg, timeout):
            out = stream_item_from_proto(item)
            if out is not None:
                yield out

    def fork(self, branches: Iterable[GenerateRequest | Mapping[str, Any]], *, dag_id: str = "",
             timeout: float | None = None) -> Iterator[BranchResult]:
        """Run the branches of one fork together; yield each branch's result as it completes."""
        msg = fork_to_proto((as_request(b, {}) for b in branches), dag_id)
        for item in self._streaming(self._stub.GenerateFork, msg, timeout):
            yield branch_from_proto(item)

    # -- admin ----------------------------------------------------------------------
    def cache_stats(self, *, timeout: float | None = None) -> dict[str, float]:
        """Subgraph-cache, prefix-cache and engine counters."""
        m = self._call(self._stub.CacheStats, load().pb2.CacheStatsRequest(), timeout)
        return cache_stats_from_proto(m)

    def invalidate_cache(self, *, path_prefix: str = "", tenant: str = "", all: bool = False,
                         timeout: float | None = None) -> int:
        """Drop cached subgraphs under ``path_prefix`` and/or of ``tenant`` (or ``all``)."""
        pb = load().pb2
        m = self._call(self._stub.InvalidateCache,
                       pb.InvalidateCacheRequest(path_prefix=path_prefix, tenant=tenant, all=all), timeout)
        return int(m.removed)

    def register_knowledge(self, *, namespace: str, key: str = "", text: str = "", tenant: str = "",
                           id: str = "", metadata: Mapping[str, str] | None = None,
                           key_vector: Iterable[float] = (), value_vector: Iterable[float] = (),
                           reliability: float = 1.0, timeout: float | None = None) -> str:
        """Register a knowledge entry (AGA) in ``tenant``'s ``namespace``; returns its id."""
        msg = knowledge_entry_to_proto(namespace=namespace, key=key, text=text, tenant=tenant, id=id,
                                       metadata=metadata, key_vector=key_vector,
                                       value_vector=value_vector, reliability=reliability)
        return str(self._call(self._stub.RegisterKnowledge, msg, timeout).id)

    def remove_knowledge(self, *, namespace: str, id: str, tenant: str = "",
                         timeout: float | None = None) -> bool:
        pb = load().pb2
        return bool(self._call(self._stub.RemoveKnowledge, pb.RemoveKnowledgeRequest(
            tenant=tenant, namespace=namespace, id=id), timeout).removed)

    def list_knowledge(self, *, tenant: str = "", namespace: str = "",
                       timeout: float | None = None) -> list[KnowledgeRecord]:
        pb = load().pb2
        m = self._call(self._stub.ListKnowledge,
                       pb.ListKnowledgeRequest(tenant=tenant, namespace=namespace), timeout)
        return knowledge_from_proto(m)

    def health(self, service: str = SERVICE_NAME, *, timeout: float | None = 5.0) -> str:
        """``SERVING``, ``NOT_SERVING``, ... as the server's health service reports."""
        m = self._call(self._health.Check, health_pb2.HealthCheckRequest(service=service), timeout)
        return health_from_proto(m)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
