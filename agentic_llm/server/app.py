"""The gRPC server: AgenticLLM service, health, reflection, limits, auth, TLS, drain.

    server = AgenticServer(config, pipeline)
    server.start()              # binds; server.port is the bound port
    ...
    server.drain()              # refuse new calls (UNAVAILABLE), finish in-flight, stop
"""

from __future__ import annotations

import logging
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from agentic_llm import registry as plugin_registry
from agentic_llm.config import ServerConfig
from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.observability.health import (
    GrpcHealthAdapter,
    HealthRegistry,
    kv_pool_check,
)
from agentic_llm.server.auth import BearerTokenInterceptor
from agentic_llm.server.errors import abort_with
from agentic_llm.server.heap import HeapBound, bound_tokenizer_cache
from agentic_llm.server.identity import IdentityMap
from agentic_llm.server.servicer import AgenticLLMServicer, Malformed
from agentic_llm.serving.knowledge import KnowledgeAdmin
from agentic_llm.serving.pipeline import Pipeline
from agentic_llm.wire import SERVICE_NAME, load

__all__ = ["AgenticServer"]

_log = logging.getLogger(__name__)

# (method, request type, response type, response streams)
_METHODS: tuple[tuple[str, str, str, bool], ...] = (
    ("GenerateSubgraph", "GenerateSubgraphRequest", "GenerateSubgraphResponse", False),
    ("GenerateSubgraphStream", "GenerateSubgraphRequest", "GenerateSubgraphStreamResponse", True),
    ("GenerateFork", "GenerateForkRequest", "GenerateForkResponse", True),
    ("CacheStats", "CacheStatsRequest", "CacheStatsResponse", False),
    ("InvalidateCache", "InvalidateCacheRequest", "InvalidateCacheResponse", False),
    ("RegisterKnowledge", "RegisterKnowledgeRequest", "RegisterKnowledgeResponse", False),
    ("RemoveKnowledge", "RemoveKnowledgeRequest", "RemoveKnowledgeResponse", False),
    ("ListKnowledge", "ListKnowledgeRequest", "ListKnowledgeResponse", False),
    # the library registry (agentic_llm/server/library_rpc.py)
    ("PublishLibrary", "PublishLibraryRequest", "LibraryDocument", False),
    ("GetLibrary", "GetLibraryRequest", "LibraryDocument", False),
    ("ListLibrary", "ListLibraryRequest", "ListLibraryResponse", False),
    ("DeprecateLibrary", "DeprecateLibraryRequest", "LibraryDocument", False),
    ("DeleteLibrary", "DeleteLibraryRequest", "DeleteLibraryResponse", False),
    ("SetLibrarySplit", "SetLibrarySplitRequest", "LibrarySplit", False),
    ("ListVersions", "ListVersionsRequest", "ListVersionsResponse", False),
    ("ReportOutcome", "ReportOutcomeRequest", "ReportOutcomeResponse", False),
    ("PromoteVersion", "PromoteVersionRequest", "Promotion", False),
    ("ListSolved", "ListSolvedRequest", "ListSolvedResponse", False),
)


def _safe_decoder(message_cls: Any) -> Any:
    def decode(data: bytes) -> Any:
        try:
            return message_cls.FromString(data)
        except (DecodeError, ValueError, RuntimeError) as exc:
            return Malformed(f"{type(exc).__name__}: {exc}")
    return decode


def _refuse_malformed(fn: Any, streams: bool) -> Any:
    """Wrap a handler so that undecodable bytes get ERR_INVALID_REQUEST."""
    def refuse(request: Malformed, context: Any) -> None:
        abort_with(context, request.refusal())

    if streams:
        def stream_handler(request: Any, context: Any) -> Any:
            if isinstance(request, Malformed):
                refuse(request, context)
            yield from fn(request, context)
        return stream_handler

    def unary_handler(request: Any, context: Any) -> Any:
        if isinstance(request, Malformed):
            refuse(request, context)
        return fn(request, context)
    return unary_handler


def _generic_handler(servicer: AgenticLLMServicer) -> grpc.GenericRpcHandler:
    pb = load().pb2
    handlers = {}
    for name, req_t, resp_t, streams in _METHODS:
        fn = _refuse_malformed(getattr(servicer, name), streams)
        make = grpc.unary_stream_rpc_method_handler if streams else grpc.unary_unary_rpc_method_handler
        handlers[name] = make(
            fn,
            request_deserializer=_safe_decoder(getattr(pb, req_t)),
            response_serializer=getattr(pb, resp_t).SerializeToString,
        )
    return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)


def _set_cache_quotas(pipeline: Pipeline, config: ServerConfig) -> None:
    """Hand each credential's cache-entry quota to the subgraph cache."""
    cache = getattr(pipeline.parts.cache, "cache", None)
    setter = getattr(cache, "set_tenant_quota", None)
    if not callable(setter):
        return
    for cred in config.auth.credentials:
        if cred.role == "tenant" and cred.quotas.cache_entries > 0:
            setter(cred.tenant, cred.quotas.cache_entries)


def _read(path: str) -> bytes:
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise AgenticError(ErrorCode.INVALID_CONFIG, f"cannot read {path}: {exc.strerror}") from None


class AgenticServer:
    """One gRPC server over one pipeline.

    Args:
        config: listen address, limits, TLS, auth, reflection.
        pipeline: the shared serving pipeline (the server drains its admission gate).
        knowledge: AGA knowledge administration, if enabled.
    """

    def __init__(self, config: ServerConfig, pipeline: Pipeline, *,
                 knowledge: KnowledgeAdmin | None = None,
                 health_registry: HealthRegistry | None = None) -> None:
        self.config = config
        self.pipeline = pipeline
        lim = config.limits
        # Before the request threads exist: they share the capped malloc arenas.
        self._heap = HeapBound(lim.malloc_arena_max, lim.malloc_trim_interval_sec)
        bound_tokenizer_cache(pipeline.tokenizer, lim.tokenizer_cache_words)
        # Enough threads for every admitted and queued request plus admin calls;
        # beyond them gRPC itself answers RESOURCE_EXHAUSTED.
        self._workers = lim.max_concurrent + lim.max_queue + 8
        self._executor = ThreadPoolExecutor(max_workers=self._workers,
                                            thread_name_prefix="agentic-grpc")
        interceptors = []
        self.identity = IdentityMap(config.auth, config.tls)
        if self.identity.enabled:
            interceptors.append(BearerTokenInterceptor(self.identity,
                                                       exempt_health=config.auth.exempt_health))
        _set_cache_quotas(pipeline, config)
        self._server = grpc.server(
            self._executor,
            interceptors=interceptors,
            maximum_concurrent_rpcs=self._workers,
            options=[
                ("grpc.max_receive_message_length", lim.max_request_bytes),
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
                ("grpc.so_reuseport", 0),
            ],
        )
        self.servicer = AgenticLLMServicer(pipeline, knowledge=knowledge,
                                           max_fork_branches=lim.max_fork_branches,
                                           identity=self.identity)
        self._server.add_generic_rpc_handlers((_generic_handler(self.servicer),))
        self.health = health.HealthServicer(experimental_non_blocking=True)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        # gRPC health mirrors the observability health checks: the engine loop must
        # be alive and beating; a nearly full KV pool only degrades (still SERVING).
        # A given registry (an ObservabilityStack's, already bound to the pipeline)
        # is shared, so /health over HTTP and gRPC health agree.
        self._own_registry = health_registry is None
        self.health_checks = health_registry or HealthRegistry()
        if self._own_registry:
            loop = pipeline.loop
            self.health_checks.register("engine_loop", loop.health_check(), liveness=True)
            # the stats the loop thread publishes: no other thread reads the engine
            self.health_checks.register("kv_pool", kv_pool_check(loop.stats), critical=False)
        # Which provider serves each pluggable kind; degraded while one fell back (the
        # server adds it to a shared registry too: the stack does not know the plugins).
        self.health_checks.register("plugins", plugin_registry.health_check, critical=False)
        self._health_adapter = GrpcHealthAdapter(
            self.health_checks, self.health, services=(SERVICE_NAME,), interval_s=2.0)
        if config.reflection:
            reflection.enable_server_reflection(
                (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), self._server)
        self.port = 0
        self._stopped = threading.Event()
        self._drain_lock = threading.Lock()
        self._draining = False

    @property
    def address(self) -> str:
        """``host:port`` actually bound (after :meth:`start`)."""
        host = self.config.listen.rpartition(":")[0]
        return f"{host}:{self.port}"

    def start(self) -> AgenticServer:
        """Bind the listen address and start serving (a no-op once draining)."""
        if self._draining:
            return self
        tls = self.config.tls
        if tls.enabled:
            creds = grpc.ssl_server_credentials(
                [(_read(tls.key_file), _read(tls.cert_file))],
                root_certificates=_read(tls.client_ca_file) if tls.client_ca_file else None,
                require_client_auth=bool(tls.client_ca_file),
            )
            self.port = self._server.add_secure_port(self.config.listen, creds)
        else:
            self.port = self._server.add_insecure_port(self.config.listen)
        if self.port == 0:
            raise AgenticError(ErrorCode.INVALID_CONFIG,
                               f"cannot listen on {self.config.listen} (address in use?)")
        self._server.start()
        for name in ("", SERVICE_NAME):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._health_adapter.start()
        # `agentic-llm serve` announces the address once, with its start-up summary
        _log.debug("gRPC server bound to %s%s", self.address, " (TLS)" if tls.enabled else "")
        describe = self.identity.describe()
        (_log.warning if not self.identity.enabled else _log.info)("%s", describe)
        return self

    @property
    def draining(self) -> bool:
        return self._draining

    def drain(self, timeout: float | None = None) -> bool:
        """Graceful shutdown: new calls get UNAVAILABLE, in-flight ones finish, then stop.

        Returns:
            True when every in-flight request finished within ``timeout`` (default
            ``limits.drain_timeout_sec``); the server is stopped either way.
        """
        with self._drain_lock:
            if self._draining:
                self._stopped.wait()
                return True
            self._draining = True
        timeout = self.config.limits.drain_timeout_sec if timeout is None else timeout
        self._health_adapter.stop()
        self.health_checks.set_ready(False)
        self.health.enter_graceful_shutdown()
        self.pipeline.admission.drain()
        done = self.pipeline.admission.wait_idle(timeout)
        # Streams whose last message is still being sent get a moment to flush.
        self._server.stop(grace=1.0).wait()
        if self._own_registry:
            self.health_checks.close()
        self._heap.stop()
        self._stopped.set()
        _log.info("agentic-llm stopped (%s)", "drained" if done else "drain timed out")
        return done

    def stop(self) -> None:
        """Stop at once, cancelling in-flight calls."""
        self._draining = True
        self._health_adapter.stop()
        self.pipeline.admission.drain()
        self._server.stop(grace=None).wait()
        if self._own_registry:
            self.health_checks.close()
        self._heap.stop()
        self._stopped.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server stopped; False on timeout."""
        return self._stopped.wait(timeout)

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT start a graceful drain (main thread only)."""
        def handler(signum: int, frame: Any) -> None:
            _log.info("signal %d: draining", signum)
            threading.Thread(target=self.drain, name="agentic-drain", daemon=True).start()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
