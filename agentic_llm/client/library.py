"""SDK methods for the library registry, shared by :class:`Client` and :class:`AsyncClient`.

    c.publish_library("/lib/x@v1", text, tenant="acme")
    c.set_library_split("/lib/x", {1: 0.5, 2: 0.5}, tenant="acme")
    c.report_outcome(result.request_id, success=True, latency_ms=120, tenant="acme")
    c.list_versions("/lib/x", tenant="acme")      # per-version success rate and latency
    c.promote_version("/lib/x", tenant="acme")

Every method builds its request, calls ``self._library_call`` (blocking in
``Client``, a coroutine in ``AsyncClient``) and converts the answer to the types of
``agentic_llm.library``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from agentic_llm.client.protos import load

__all__ = ["LibraryClientMixin", "document_from_proto"]


def document_from_proto(m: Any) -> Any:
    from agentic_llm.library import LibraryDocument

    return LibraryDocument(path=m.path, version=m.version, text=m.text, signature=m.signature,
                           visibility=m.visibility, tenants=tuple(m.allowed_tenants),
                           publisher=m.publisher, created=m.created, deprecated=m.deprecated,
                           description=m.description)


def _documents(m: Any) -> list[Any]:
    return [document_from_proto(d) for d in m.documents]


def _split(m: Any) -> dict[str, Any]:
    return {"path": m.path, "default_version": m.default_version,
            "weights": {int(k): float(v) for k, v in m.weights.items()}, "sticky": m.sticky}


def _versions(m: Any) -> dict[str, Any]:
    return {
        "split": _split(m.split),
        "versions": [{"document": document_from_proto(v.document), "runs": v.runs,
                      "successes": v.successes, "success_rate": v.success_rate,
                      "mean_latency_ms": v.mean_latency_ms, "mean_cost": v.mean_cost,
                      "is_default": v.is_default, "weight": v.weight} for v in m.versions],
    }


def _promotion(m: Any) -> Any:
    from agentic_llm.library import Promotion

    return Promotion(path=m.path, version=m.version, previous=m.previous, reason=m.reason)


def _outcome(m: Any) -> dict[str, Any]:
    return {"versions": list(m.versions), "archived_path": m.archived_path,
            "promoted": [_promotion(p) for p in m.promoted]}


def _solved(m: Any) -> list[dict[str, Any]]:
    return [{"path": e.path, "prompts": list(e.prompts), "tools": list(e.tools),
             "context_types": dict(e.context_types), "signature": e.signature,
             "successes": e.successes, "uses": e.uses, "use_successes": e.use_successes,
             "created": e.created, "updated": e.updated, "text": e.text} for e in m.entries]


class LibraryClientMixin:
    """Library methods; the class mixing it in defines ``_library_call``."""

    _stub: Any
    _library_call: Callable[[str, Any, float | None, Callable[[Any], Any]], Any]

    def publish_library(self, path: str, text: str, *, tenant: str = "", visibility: str = "public",
                        allowed_tenants: Iterable[str] = (), description: str = "",
                        timeout: float | None = None) -> Any:
        """Publish ``text`` as ``path`` (``/lib/x@vN``, or ``/lib/x`` for the next version)."""
        msg = load().pb2.PublishLibraryRequest(path=path, text=text, tenant=tenant, visibility=visibility,
                                               allowed_tenants=list(allowed_tenants),
                                               description=description)
        return self._library_call("PublishLibrary", msg, timeout, document_from_proto)

    def get_library(self, path: str, *, tenant: str = "", timeout: float | None = None) -> Any:
        """``/lib/x@vN``, or the current default version of ``/lib/x``."""
        msg = load().pb2.GetLibraryRequest(path=path, tenant=tenant)
        return self._library_call("GetLibrary", msg, timeout, document_from_proto)

    def list_library(self, prefix: str = "/lib/", *, versions: str = "", tenant: str = "",
                     exclude_deprecated: bool = False, timeout: float | None = None) -> Any:
        """Versions under ``prefix`` in the range ``versions`` (e.g. ``">=2,<4"``), without text."""
        msg = load().pb2.ListLibraryRequest(prefix=prefix, versions=versions, tenant=tenant,
                                            exclude_deprecated=exclude_deprecated)
        return self._library_call("ListLibrary", msg, timeout, _documents)

    def deprecate_library(self, path: str, *, tenant: str = "", undo: bool = False,
                          timeout: float | None = None) -> Any:
        msg = load().pb2.DeprecateLibraryRequest(path=path, tenant=tenant, undo=undo)
        return self._library_call("DeprecateLibrary", msg, timeout, document_from_proto)

    def delete_library(self, path: str, *, tenant: str = "", timeout: float | None = None) -> Any:
        """Delete a version (or every version) of ``path``; admins only. Returns records removed."""
        msg = load().pb2.DeleteLibraryRequest(path=path, tenant=tenant)
        return self._library_call("DeleteLibrary", msg, timeout, lambda m: int(m.removed))

    def set_library_split(self, path: str, weights: Mapping[int, float], *, sticky: str = "dag_id",
                          tenant: str = "", timeout: float | None = None) -> Any:
        """Split ``path``'s traffic between versions by weight (empty ends the split)."""
        msg = load().pb2.SetLibrarySplitRequest(path=path, weights=dict(weights), sticky=sticky,
                                                tenant=tenant)
        return self._library_call("SetLibrarySplit", msg, timeout, _split)

    def list_versions(self, path: str, *, versions: str = "", tenant: str = "",
                      timeout: float | None = None) -> Any:
        """Every version of ``path`` with runs, success rate, mean latency and cost, and the split."""
        msg = load().pb2.ListVersionsRequest(path=path, versions=versions, tenant=tenant)
        return self._library_call("ListVersions", msg, timeout, _versions)

    def report_outcome(self, request_id: str, *, success: bool, latency_ms: float = 0.0,
                       cost: float = 0.0, tenant: str = "", timeout: float | None = None) -> Any:
        """Report how the subgraph of ``request_id`` ran (once per request)."""
        msg = load().pb2.ReportOutcomeRequest(request_id=request_id, success=success,
                                              latency_ms=latency_ms, cost=cost, tenant=tenant)
        return self._library_call("ReportOutcome", msg, timeout, _outcome)

    def promote_version(self, path: str, *, version: int = 0, tenant: str = "",
                        timeout: float | None = None) -> Any:
        """Make the split's winner (or ``version``, if it wins) the default of ``path``."""
        msg = load().pb2.PromoteVersionRequest(path=path, version=version, tenant=tenant)
        return self._library_call("PromoteVersion", msg, timeout, _promotion)

    def list_solved(self, *, tenant: str = "", timeout: float | None = None) -> Any:
        """The tenant's archived ``/lib/solved`` entries."""
        msg = load().pb2.ListSolvedRequest(tenant=tenant)
        return self._library_call("ListSolved", msg, timeout, _solved)
