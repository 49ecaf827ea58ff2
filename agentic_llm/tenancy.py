"""Tenant scoping of names in stores that several tenants share.

A tenant's namespace ``ns`` is stored as ``<tenant>/<ns>`` (``ns`` alone for the
empty tenant), so one tenant can neither read, list nor remove another tenant's
entries. The knowledge admin API (``serving``) and the AGA engine hook (``aga``)
both scope names here, so they cannot disagree on the layout.
"""

from __future__ import annotations

from collections.abc import Sequence

from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["scoped_namespace", "split_namespace", "scope_rows"]


def scoped_namespace(tenant: str, namespace: str) -> str:
    """The store namespace of ``namespace`` for ``tenant``.

    Raises:
        AgenticError: ERR_INVALID_REQUEST for an empty namespace or a ``/`` in the
            tenant name.
    """
    if not namespace:
        raise AgenticError(ErrorCode.INVALID_REQUEST, "namespace: must not be empty",
                           field="namespace")
    if "/" in namespace:
        raise AgenticError(ErrorCode.INVALID_REQUEST,
                           f"namespace: {namespace!r} must not contain '/' (it would name "
                           "another tenant's namespace)", field="namespace")
    if "/" in tenant:
        raise AgenticError(ErrorCode.INVALID_REQUEST, "tenant: must not contain '/'",
                           field="tenant")
    return f"{tenant}/{namespace}" if tenant else namespace


def split_namespace(tenant: str, stored: str) -> str | None:
    """The tenant-relative name of a store namespace, or None if not the tenant's."""
    if tenant:
        prefix = tenant + "/"
        return stored[len(prefix):] if stored.startswith(prefix) else None
    return None if "/" in stored else stored


def scope_rows(rows: Sequence[Sequence[str]], tenants: Sequence[str],
               default: str) -> list[tuple[str, ...]]:
    """The store namespaces each batch row may read: its knowledge names (entries
    not starting with '/', which are path grants), or ``default`` when it names none,
    each scoped to the row's tenant; a name holding '/' is dropped, never resolved."""
    out = []
    for i, row in enumerate(rows):
        tenant = tenants[i] if i < len(tenants) else ""
        names = [n for n in row if n and not n.startswith("/")] or [default]
        out.append(tuple(f"{tenant}/{n}" if tenant else n for n in names if "/" not in n))
    return out
