"""The AgenticLLM servicer: a thin translator between protobuf and the pipeline."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.observability.logs import log_request
from agentic_llm.server import convert
from agentic_llm.server.errors import abort_with
from agentic_llm.server.grants import check_knowledge_namespace, scope_request
from agentic_llm.server.identity import DEV_PRINCIPAL, IdentityMap, Principal, denied
from agentic_llm.server.library_rpc import LibraryServicerMixin
from agentic_llm.serving.knowledge import KnowledgeAdmin
from agentic_llm.serving.pipeline import CancelToken, Pipeline
from agentic_llm.serving.result import NodeEvent, ServingResult, TokenDelta
from agentic_llm.wire import load

__all__ = ["AgenticLLMServicer", "Malformed"]

_log = logging.getLogger(__name__)
pb = load().pb2


class Malformed:
    """Stands in for a request whose bytes did not decode, so the handler can refuse
    it with ERR_INVALID_REQUEST instead of gRPC's bare INTERNAL."""

    def __init__(self, error: str) -> None:
        self.error = error

    def refusal(self) -> AgenticError:
        """The ERR_INVALID_REQUEST this request is refused with."""
        return AgenticError(ErrorCode.INVALID_REQUEST,
                            f"the request message could not be decoded: {self.error}")


def _deadline(context: Any) -> float | None:
    remaining = context.time_remaining()
    if remaining is None or remaining > 10 * 365 * 86400:
        return None
    return time.monotonic() + max(0.0, remaining)


def _internal(exc: BaseException) -> AgenticError:
    _log.error("unexpected error while serving a request", exc_info=exc)
    return AgenticError(ErrorCode.INTERNAL,
                        f"internal error ({type(exc).__name__}); see the server log")


def _fatal_here(exc: BaseException) -> bool:
    """KeyboardInterrupt / SystemExit in the main thread stop the process; anywhere
    else (gRPC worker threads) they, like every BaseException, end only the call."""
    return (isinstance(exc, KeyboardInterrupt | SystemExit)
            and threading.current_thread() is threading.main_thread())


def _check_decoded(request: Any) -> None:
    """Refuse a request whose bytes did not decode (ERR_INVALID_REQUEST)."""
    if isinstance(request, Malformed):
        raise request.refusal()


def _log_result(result: ServingResult, tenant: str) -> None:
    """The request's INFO line (``agentic_llm.requests``)."""
    c, t = result.counts, result.timings
    log_request({
        "id": result.request_id, "tenant": tenant, "path": result.target_path,
        "cache": result.cache.value, "prompt_tokens": c.prompt_tokens,
        "cached_tokens": c.cached_prompt_tokens, "completion_tokens": c.completion_tokens,
        "ttft_ms": t.first_token_ms, "total_ms": t.total_ms,
        "status": "ok" if result.valid else "invalid",
    })


def _log_refusal(request: Any, exc: AgenticError) -> None:
    """The INFO line of a request refused or failed before it had a result."""
    log_request({"id": "", "tenant": getattr(request, "tenant", ""),
                 "path": getattr(request, "target_path", ""), "status": exc.code.value})


_Handler = Callable[[Any, Any, Any], Any]


def _unary(handler: _Handler) -> _Handler:
    """Wrap a unary handler: an ``AgenticError`` ends the call with its status; any
    other exception is logged and ends it with ERR_INTERNAL, never a traceback."""
    @functools.wraps(handler)
    def wrapper(self: Any, request: Any, context: Any) -> Any:
        try:
            return handler(self, request, context)
        except AgenticError as exc:
            abort_with(context, exc)
        except BaseException as exc:  # noqa: BLE001 - every call completes with a status
            if _fatal_here(exc):
                raise
            abort_with(context, _internal(exc))
        return None
    return wrapper


def _streaming(handler: _Handler) -> _Handler:
    """:func:`_unary` for a server-streaming handler (a generator)."""
    @functools.wraps(handler)
    def wrapper(self: Any, request: Any, context: Any) -> Iterator[Any]:
        try:
            yield from handler(self, request, context)
        except AgenticError as exc:
            abort_with(context, exc)
        except GeneratorExit:
            raise
        except BaseException as exc:  # noqa: BLE001 - every call completes with a status
            if _fatal_here(exc):
                raise
            abort_with(context, _internal(exc))
    return wrapper



class AgenticLLMServicer(LibraryServicerMixin):
    """Implements every RPC of ``agentic_llm.agentic.v1.AgenticLLM``.

    Args:
        pipeline: the shared in-process pipeline.
        knowledge: AGA knowledge administration, or None when AGA is not available.
        max_fork_branches: refuse forks with more branches (ERR_INPUT_TOO_LARGE).
    """

    def __init__(self, pipeline: Pipeline, *, knowledge: KnowledgeAdmin | None = None,
                 max_fork_branches: int = 16, identity: IdentityMap | None = None) -> None:
        self.pipeline = pipeline
        self.knowledge = knowledge if knowledge is not None else pipeline.parts.knowledge
        self.max_fork_branches = max_fork_branches
        self.identity = identity
        self._knowledge_lock = threading.Lock()

    # -- helpers --------------------------------------------------------------------
    def _who(self, context: Any) -> Principal:
        """The caller (ERR_UNAUTHENTICATED when auth is on and nothing identifies it)."""
        return DEV_PRINCIPAL if self.identity is None else self.identity.principal(context)

    def resolve_tenant(self, request: Any, context: Any) -> str:
        """The tenant a library call acts as: the caller's own; an admin may name another.

        With auth off this is the implicit tenant ``""`` unless the request names one,
        which ``library.admins`` (default ``[""]``) treats as the admin.
        """
        return self._who(context).acting_tenant(str(request.tenant))

    def _request(self, msg: Any, who: Principal) -> Any:
        _check_decoded(msg)
        return scope_request(convert.request_from_proto(msg), who)

    def _cancel_token(self, context: Any) -> CancelToken:
        token = CancelToken()
        context.add_callback(token.cancel)
        return token

    # -- generation -----------------------------------------------------------------
    @_unary
    def GenerateSubgraph(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC name
        try:
            req = self._request(request, self._who(context))
            result = self.pipeline.run(req, deadline=_deadline(context),
                                       cancel=self._cancel_token(context))
        except AgenticError as exc:
            _log_refusal(request, exc)
            raise
        _log_result(result, req.tenant)
        return convert.result_to_proto(result)

    @_streaming
    def GenerateSubgraphStream(self, request: Any, context: Any) -> Iterator[Any]:  # noqa: N802
        try:
            req = self._request(request, self._who(context))
            events = self.pipeline.events(
                req, deadline=_deadline(context), stream_tokens=bool(request.stream_tokens),
                cancel=self._cancel_token(context))
            yield from self._stream_items(events, req.tenant)
        except AgenticError as exc:
            _log_refusal(request, exc)
            raise

    @staticmethod
    def _stream_items(events: Any, tenant: str) -> Iterator[Any]:
        for item in events:
            if isinstance(item, NodeEvent):
                yield convert.node_event_to_proto(item)
            elif isinstance(item, TokenDelta):
                yield convert.token_delta_to_proto(item)
            elif isinstance(item, ServingResult):
                _log_result(item, tenant)
                msg = pb.GenerateSubgraphStreamResponse()
                msg.final.CopyFrom(convert.result_to_proto(item))
                yield msg

    @_streaming
    def GenerateFork(self, request: Any, context: Any) -> Iterator[Any]:  # noqa: N802
        _check_decoded(request)
        who = self._who(context)
        n = len(request.branches)
        if n == 0:
            raise AgenticError(ErrorCode.INVALID_REQUEST, "branches: a fork needs at least one",
                               field="branches")
        if n > self.max_fork_branches:
            raise AgenticError(
                ErrorCode.INPUT_TOO_LARGE,
                f"a fork may have at most {self.max_fork_branches} branches, got {n}",
                limit=self.max_fork_branches, field="branches")
        reqs, bad = [], []
        for i, b in enumerate(request.branches):
            try:
                reqs.append((i, self._request(b, who)))
            except AgenticError as refusal:
                _log_refusal(b, refusal)
                bad.append((i, b.branch_id or str(i), refusal))
        for i, bid, branch_err in bad:
            yield pb.GenerateForkResponse(index=i, branch_id=bid,
                                          error=convert.error_status_to_proto(branch_err))
        if not reqs:
            return
        order = [i for i, _ in reqs]
        prepared = [replace(r, branch_id=r.branch_id or str(i)) for i, r in reqs]
        for br in self.pipeline.fork(prepared, dag_id=request.dag_id, deadline=_deadline(context),
                                     cancel=self._cancel_token(context)):
            index = order[br.index]
            if br.result is not None:
                _log_result(br.result, prepared[br.index].tenant)
                yield pb.GenerateForkResponse(index=index, branch_id=br.branch_id,
                                              response=convert.result_to_proto(br.result))
            else:
                assert br.error is not None
                _log_refusal(prepared[br.index], br.error)
                yield pb.GenerateForkResponse(index=index, branch_id=br.branch_id,
                                              error=convert.error_status_to_proto(br.error))

    # -- cache admin ----------------------------------------------------------------
    @_unary
    def CacheStats(self, request: Any, context: Any) -> Any:  # noqa: N802
        self._who(context)
        stats = dict(self.pipeline.cache_stats())
        msg = pb.CacheStatsResponse(
            subgraph_entries=int(stats.pop("entries", 0)),
            exact_hits=int(stats.pop("exact_hits", 0)),
            fuzzy_hits=int(stats.pop("fuzzy_hits", 0)),
            misses=int(stats.pop("misses", 0)),
            prefix_query_tokens=int(stats.pop("engine_prefix_queries_tokens", 0)),
            prefix_hit_tokens=int(stats.pop("engine_prefix_hit_tokens", 0)),
        )
        msg.extra.update(stats)
        return msg

    @_unary
    def InvalidateCache(self, request: Any, context: Any) -> Any:  # noqa: N802
        _check_decoded(request)
        who = self._who(context)
        if not (request.path_prefix or request.tenant or request.all):
            raise AgenticError(
                ErrorCode.INVALID_REQUEST,
                "give path_prefix and/or tenant, or all=true to empty the whole cache",
                field="path_prefix")
        if request.all and not (request.path_prefix or request.tenant):
            if not who.admin:
                raise denied("all: emptying every tenant's cache needs an admin credential",
                             field="all")
            return pb.InvalidateCacheResponse(removed=self.pipeline.invalidate())
        tenant = who.acting_tenant(request.tenant)
        if not who.admin and not tenant:
            raise denied("this credential has no tenant to invalidate")
        removed = self.pipeline.invalidate(path_prefix=request.path_prefix, tenant=tenant)
        return pb.InvalidateCacheResponse(removed=removed)

    # -- knowledge admin ------------------------------------------------------------
    def _knowledge(self, request: Any) -> KnowledgeAdmin:
        _check_decoded(request)
        if self.knowledge is None:
            raise AgenticError(ErrorCode.RESOURCE_UNAVAILABLE,
                               "knowledge injection (AGA) is not enabled on this server")
        return self.knowledge

    @_unary
    def RegisterKnowledge(self, request: Any, context: Any) -> Any:  # noqa: N802
        admin = self._knowledge(request)
        who = self._who(context)
        e = request.entry
        tenant = who.acting_tenant(e.tenant, "entry.tenant")
        check_knowledge_namespace(who, e.namespace)
        with self._knowledge_lock:
            if who.quotas is not None:
                held = admin.list(tenant=tenant, namespace="")
                if len(held) >= who.quotas.aga_slots and not any(k.id == e.id for k in held):
                    raise AgenticError(
                        ErrorCode.BUDGET_EXCEEDED,
                        f"tenant {tenant!r} holds {len(held)} knowledge entries, its quota; "
                        "remove some first", limit=who.quotas.aga_slots)
            kid = admin.register(
                tenant=tenant, namespace=e.namespace, key=e.key, text=e.text,
                metadata=dict(e.metadata), entry_id=e.id or None,
                key_vector=list(e.key_vector), value_vector=list(e.value_vector),
                reliability=e.reliability if e.HasField("reliability") else 1.0)
        return pb.RegisterKnowledgeResponse(id=kid)

    @_unary
    def RemoveKnowledge(self, request: Any, context: Any) -> Any:  # noqa: N802
        admin = self._knowledge(request)
        tenant = self._who(context).acting_tenant(request.tenant)
        ok = admin.remove(tenant=tenant, namespace=request.namespace, entry_id=request.id)
        return pb.RemoveKnowledgeResponse(removed=ok)

    @_unary
    def ListKnowledge(self, request: Any, context: Any) -> Any:  # noqa: N802
        admin = self._knowledge(request)
        tenant = self._who(context).acting_tenant(request.tenant)
        entries = admin.list(tenant=tenant, namespace=request.namespace)
        msg = pb.ListKnowledgeResponse()
        for k in entries:
            msg.entries.add(id=k.id, tenant=k.tenant, namespace=k.namespace, key=k.key,
                            text=k.text, metadata=dict(k.metadata))
        return msg
