"""What a principal's request may ask for: its tenant, namespaces and priority.

Grants come from the server's credentials, never from the request: a request's
``tenant`` must be the caller's own (admins may name any), its ``namespaces`` can
only narrow what the credential grants, and its ``priority`` stays under the
credential's ceiling. Entries of ``namespaces`` that start with ``/`` are path
prefixes the plan may write beyond ``/dynamic``; the others name knowledge (AGA)
namespaces, always read within the acting tenant.
"""

from __future__ import annotations

from dataclasses import replace

from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.planner import GenerateRequest
from agentic_llm.server.identity import Principal, denied

__all__ = ["scope_request", "check_knowledge_namespace"]


def _under(path: str, prefix: str) -> bool:
    prefix = prefix.rstrip("/")
    return path == prefix or path.startswith(prefix + "/")


def _split(namespaces: tuple[str, ...]) -> tuple[list[str], list[str]]:
    paths = [n for n in namespaces if n.startswith("/")]
    names = [n for n in namespaces if not n.startswith("/")]
    for n in names:
        if "/" in n:
            raise AgenticError(ErrorCode.INVALID_REQUEST,
                               f"namespaces: {n!r} is neither a path prefix (/lib/x) nor a "
                               "knowledge namespace name (no '/')", field="namespaces")
    return paths, names


def scope_request(req: GenerateRequest, who: Principal) -> GenerateRequest:
    """``req`` as ``who`` may run it.

    Raises:
        AgenticError: ERR_PERMISSION_DENIED for another tenant, an ungranted
            namespace or a priority above the ceiling; ERR_INVALID_REQUEST for a
            knowledge namespace holding '/'.
    """
    tenant = who.acting_tenant(req.tenant)
    if who.quotas is not None and req.priority > who.quotas.max_priority:
        raise denied(f"priority: {req.priority} is above this tenant's ceiling "
                     f"{who.quotas.max_priority}", field="priority",
                     limit=who.quotas.max_priority)
    paths, names = _split(req.namespaces)
    if who.write_namespaces is not None:
        for p in paths:
            if not any(_under(p, g) for g in who.write_namespaces):
                raise denied(f"namespaces: {p} is not a path prefix granted to tenant "
                             f"{tenant!r} (granted: {list(who.write_namespaces)})",
                             field="namespaces")
        paths = paths or list(who.write_namespaces)
    if who.aga_namespaces is not None:
        for n in names:
            if n not in who.aga_namespaces:
                raise denied(f"namespaces: knowledge namespace {n!r} is not granted to tenant "
                             f"{tenant!r} (granted: {list(who.aga_namespaces)})",
                             field="namespaces")
        names = names or list(who.aga_namespaces)
    return replace(req, tenant=tenant, namespaces=tuple(paths) + tuple(names))


def check_knowledge_namespace(who: Principal, namespace: str) -> None:
    """Refuse a knowledge namespace the principal's tenant was not granted."""
    if who.aga_namespaces is not None and namespace and namespace not in who.aga_namespaces:
        raise denied(f"namespace: {namespace!r} is not granted to tenant {who.tenant!r} "
                     f"(granted: {list(who.aga_namespaces)})", field="namespace")
