"""``Engine``: the client's methods over an in-process pipeline, no server needed.

    from agentic_llm.client import Engine
    with Engine.from_profile("dev") as eng:
        r = eng.generate_subgraph(target_path="/dynamic/plan_1", prompt="Plan a trip")

``Engine()`` runs what ``agentic-llm serve`` runs with no profile (the default one).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from agentic_llm.client.common import as_request
from agentic_llm.config import ServerConfig, load_config
from agentic_llm.planner import GenerateRequest
from agentic_llm.serving.knowledge import KnowledgeRecord
from agentic_llm.serving.pipeline import Pipeline
from agentic_llm.serving.result import BranchResult, ServingResult, StreamItemT

__all__ = ["Engine"]


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


class Engine:
    """Same methods as ``Client``, served by a :class:`Pipeline` in this process.

    Errors are raised as ``AgenticError`` with the same ERR_* codes the server sends.

    Args:
        pipeline: the pipeline to serve from; by default the one the default profile
            builds (as :meth:`from_profile` with no argument).
    """

    def __init__(self, pipeline: Pipeline | None = None) -> None:
        if pipeline is None:
            from agentic_llm.serving import build_pipeline

            pipeline = build_pipeline(load_config("default"))
        self.pipeline = pipeline

    @classmethod
    def from_config(cls, config: ServerConfig | None = None, *, model_dir: str | Path | None = None) -> Engine:
        """Build the pipeline a server with ``config`` would run (default profile)."""
        from agentic_llm.serving import build_pipeline

        config = config or load_config("default")
        if model_dir is not None:
            config = config.replace(**{"model.dir": str(model_dir)})
        return cls(build_pipeline(config))

    @classmethod
    def from_profile(cls, profile: str | Path = "default", **overrides: Any) -> Engine:
        """Build from a profile name or YAML path, with dotted-key overrides."""
        return cls.from_config(load_config(profile, overrides or None))

    def generate_subgraph(self, request: GenerateRequest | Mapping[str, Any] | str | None = None, /, *,
                          timeout: float | None = None, **fields: Any) -> ServingResult:
        return self.pipeline.run(as_request(request, fields), deadline=_deadline(timeout))

    def stream(self, request: GenerateRequest | Mapping[str, Any] | str | None = None, /, *,
               tokens: bool = False, timeout: float | None = None, **fields: Any) -> Iterator[StreamItemT]:
        return self.pipeline.events(as_request(request, fields), deadline=_deadline(timeout),
                                    stream_tokens=tokens)

    def fork(self, branches: Iterable[GenerateRequest | Mapping[str, Any]], *, dag_id: str = "",
             timeout: float | None = None) -> Iterator[BranchResult]:
        reqs = [as_request(b, {}) for b in branches]
        return self.pipeline.fork(reqs, dag_id=dag_id, deadline=_deadline(timeout))

    def cache_stats(self) -> dict[str, float]:
        return self.pipeline.cache_stats()

    def invalidate_cache(self, *, path_prefix: str = "", tenant: str = "", all: bool = False) -> int:
        if not (path_prefix or tenant or all):
            from agentic_llm.errors import AgenticError, ErrorCode

            raise AgenticError(ErrorCode.INVALID_REQUEST,
                               "give path_prefix and/or tenant, or all=True to empty the whole cache")
        return self.pipeline.invalidate(path_prefix=path_prefix, tenant=tenant)

    def _knowledge(self) -> Any:
        k = self.pipeline.parts.knowledge
        if k is None:
            from agentic_llm.errors import AgenticError, ErrorCode

            raise AgenticError(ErrorCode.RESOURCE_UNAVAILABLE, "knowledge injection (AGA) is not enabled")
        return k

    def register_knowledge(self, *, namespace: str, key: str = "", text: str = "", tenant: str = "",
                           id: str = "", metadata: Mapping[str, str] | None = None,
                           key_vector: Iterable[float] = (), value_vector: Iterable[float] = (),
                           reliability: float = 1.0) -> str:
        return str(self._knowledge().register(
            tenant=tenant, namespace=namespace, key=key, text=text, metadata=dict(metadata or {}),
            entry_id=id or None, key_vector=list(key_vector), value_vector=list(value_vector),
            reliability=reliability))

    def remove_knowledge(self, *, namespace: str, id: str, tenant: str = "") -> bool:
        return bool(self._knowledge().remove(tenant=tenant, namespace=namespace, entry_id=id))

    def list_knowledge(self, *, tenant: str = "", namespace: str = "") -> list[KnowledgeRecord]:
        return list(self._knowledge().list(tenant=tenant, namespace=namespace))

    def close(self) -> None:
        self.pipeline.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
