"""Python SDK: blocking and asyncio gRPC clients, and an in-process ``Engine``.

    from agentic_llm.client import Client
    with Client("127.0.0.1:50051") as c:
        r = c.generate_subgraph(target_path="/dynamic/plan_1", prompt="Plan a trip")
        print(r.text, r.cache.value, r.document)

All three return the same typed results (``ServingResult`` with the parsed AST in
``document``, ``NodeEvent``, ``TokenDelta``, ``BranchResult``) and raise
``AgenticError`` (``ServiceError`` from a server) with the server's ERR_* code.
Only UNAVAILABLE is retried, with exponential backoff.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Client",
    "AsyncClient",
    "Engine",
    "RetryPolicy",
    "ServiceError",
    "ServingResult",
    "NodeEvent",
    "TokenDelta",
    "BranchResult",
    "CacheOutcome",
]

_WHERE = {
    "Client": "agentic_llm.client.sync",
    "AsyncClient": "agentic_llm.client.aio",
    "Engine": "agentic_llm.client.inprocess",
    "RetryPolicy": "agentic_llm.client.common",
    "ServiceError": "agentic_llm.client.errors",
    "ServingResult": "agentic_llm.serving.result",
    "NodeEvent": "agentic_llm.serving.result",
    "TokenDelta": "agentic_llm.serving.result",
    "BranchResult": "agentic_llm.serving.result",
    "CacheOutcome": "agentic_llm.serving.result",
}


def __getattr__(name: str) -> Any:
    # Lazy: importing the package (e.g. for agentic_llm.client.protos in setup.py)
    # must not pull in grpc or the planner.
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'agentic_llm.client' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
