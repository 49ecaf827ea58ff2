"""The library RPCs of the AgenticLLM servicer: registry, A/B outcomes, solved archive.

A mixin of :class:`~agentic_llm.server.servicer.AgenticLLMServicer`; every method
reads the pipeline's ``parts.library`` (``agentic_llm.library.SubgraphRegistry``)
and answers ERR_RESOURCE_UNAVAILABLE when the server runs without one.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.server.errors import abort_with
from agentic_llm.wire import load

__all__ = ["LibraryServicerMixin"]

_log = logging.getLogger(__name__)
pb = load().pb2

_Handler = Callable[[Any, Any, Any], Any]


def _unary(handler: _Handler) -> _Handler:
    """An ``AgenticError`` ends the call with its status; anything else is logged and
    ends it with ERR_INTERNAL."""
    @functools.wraps(handler)
    def wrapper(self: Any, request: Any, context: Any) -> Any:
        try:
            if hasattr(request, "refusal"):  # bytes that did not decode
                raise request.refusal()
            return handler(self, request, context)
        except AgenticError as exc:
            abort_with(context, exc)
        except Exception as exc:  # noqa: BLE001 - never leak a traceback to the client
            _log.exception("unexpected error in a library call")
            abort_with(context, AgenticError(ErrorCode.INTERNAL,
                                             f"internal error ({type(exc).__name__}); see the server log"))
        return None
    return wrapper


def _doc_proto(doc: Any, *, with_text: bool = True) -> Any:
    return pb.LibraryDocument(
        path=doc.path, version=doc.version, text=doc.text if with_text else "",
        signature=doc.signature, visibility=doc.visibility, allowed_tenants=list(doc.tenants),
        publisher=doc.publisher, created=doc.created, deprecated=doc.deprecated,
        description=doc.description)


def _split_proto(entry: Any) -> Any:
    return pb.LibrarySplit(path=entry.path, default_version=entry.default_version,
                           weights={int(k): float(v) for k, v in entry.weights.items()},
                           sticky=entry.sticky)


def _promotion_proto(p: Any) -> Any:
    return pb.Promotion(path=p.path, version=p.version, previous=p.previous, reason=p.reason)


class LibraryServicerMixin:
    """PublishLibrary, GetLibrary, ListLibrary, DeprecateLibrary, DeleteLibrary,
    SetLibrarySplit, ListVersions, ReportOutcome, PromoteVersion, ListSolved."""

    pipeline: Any

    def _library(self) -> Any:
        lib = getattr(self.pipeline.parts, "library", None)
        if lib is None:
            raise AgenticError(ErrorCode.RESOURCE_UNAVAILABLE,
                               "the library registry is off on this server (library.store: none)")
        return lib

    def _library_tenant(self, request: Any, context: Any) -> str:
        """The caller's tenant: the one the servicer resolves for the call when it
        has a resolver, else the request's ``tenant`` field."""
        resolve = getattr(self, "resolve_tenant", None)
        if callable(resolve):
            return str(resolve(request, context))
        return str(request.tenant)

    @_unary
    def PublishLibrary(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC name
        doc = self._library().publish(
            request.path, request.text, tenant=self._library_tenant(request, context),
            visibility=request.visibility or "public", tenants=list(request.allowed_tenants),
            description=request.description)
        return _doc_proto(doc)

    @_unary
    def GetLibrary(self, request: Any, context: Any) -> Any:  # noqa: N802
        return _doc_proto(self._library().get(request.path,
                                              tenant=self._library_tenant(request, context)))

    @_unary
    def ListLibrary(self, request: Any, context: Any) -> Any:  # noqa: N802
        docs = self._library().list(request.prefix or "/lib/", versions=request.versions,
                                    tenant=self._library_tenant(request, context),
                                    include_deprecated=not request.exclude_deprecated)
        return pb.ListLibraryResponse(documents=[_doc_proto(d, with_text=False) for d in docs])

    @_unary
    def DeprecateLibrary(self, request: Any, context: Any) -> Any:  # noqa: N802
        doc = self._library().deprecate(request.path, tenant=self._library_tenant(request, context),
                                        deprecated=not request.undo)
        return _doc_proto(doc, with_text=False)

    @_unary
    def DeleteLibrary(self, request: Any, context: Any) -> Any:  # noqa: N802
        n = self._library().delete(request.path, tenant=self._library_tenant(request, context))
        return pb.DeleteLibraryResponse(removed=n)

    @_unary
    def SetLibrarySplit(self, request: Any, context: Any) -> Any:  # noqa: N802
        entry = self._library().set_split(
            request.path, {int(k): float(v) for k, v in request.weights.items()},
            sticky=request.sticky or "dag_id", tenant=self._library_tenant(request, context))
        return _split_proto(entry)

    @_unary
    def ListVersions(self, request: Any, context: Any) -> Any:  # noqa: N802
        lib = self._library()
        tenant = self._library_tenant(request, context)
        views = lib.list_versions(request.path, tenant=tenant, versions=request.versions)
        msg = pb.ListVersionsResponse()
        for v in views:
            s = v.stats
            msg.versions.add(document=_doc_proto(v.document, with_text=False), runs=s.runs,
                             successes=s.successes, success_rate=s.success_rate,
                             mean_latency_ms=s.mean_latency_ms, mean_cost=s.mean_cost,
                             is_default=v.is_default, weight=v.weight)
        entry = lib.entry(request.path)
        if entry is not None:
            msg.split.CopyFrom(_split_proto(entry))
        return msg

    @_unary
    def ReportOutcome(self, request: Any, context: Any) -> Any:  # noqa: N802
        if not request.request_id:
            raise AgenticError(ErrorCode.INVALID_REQUEST, "request_id is required", field="request_id")
        rep = self._library().report_outcome(
            request.request_id, success=request.success, latency_ms=request.latency_ms,
            cost=request.cost, tenant=self._library_tenant(request, context))
        return pb.ReportOutcomeResponse(versions=list(rep.versions), archived_path=rep.archived_path,
                                        promoted=[_promotion_proto(p) for p in rep.promoted])

    @_unary
    def PromoteVersion(self, request: Any, context: Any) -> Any:  # noqa: N802
        p = self._library().promote(request.path, version=request.version or None,
                                    tenant=self._library_tenant(request, context))
        return _promotion_proto(p)

    @_unary
    def ListSolved(self, request: Any, context: Any) -> Any:  # noqa: N802
        entries = self._library().archive.entries(self._library_tenant(request, context))
        msg = pb.ListSolvedResponse()
        for e in entries:
            msg.entries.add(path=e.path, prompts=e.prompts, tools=e.tools,
                            context_types=e.context_types, signature=e.signature,
                            successes=e.successes, uses=e.uses, use_successes=e.use_successes,
                            created=e.created, updated=e.updated, text=e.library_text())
        return msg
