"""The configuration sections that say who may call: TLS, credentials and quotas.

``ServerConfig`` (``agentic_llm.config``, which re-exports these) holds them as its
``tls`` and ``auth`` sections; docs/server.md, "Security model", describes what each
credential grants. Every problem is ERR_INVALID_CONFIG naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from agentic_llm.errors import config_error

__all__ = ["TLSConfig", "TenantQuotas", "CredentialConfig", "AuthConfig"]


@dataclass(frozen=True)
class TLSConfig:
    """Server TLS; off unless both ``cert_file`` and ``key_file`` are set.
    ``client_ca_file`` additionally requires client certificates (mutual TLS)."""

    cert_file: str = ""
    key_file: str = ""
    client_ca_file: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.cert_file)

    def __post_init__(self) -> None:
        if bool(self.cert_file) != bool(self.key_file):
            raise config_error("tls", "set both cert_file and key_file, or neither")
        if self.client_ca_file and not self.cert_file:
            raise config_error("tls.client_ca_file", "needs cert_file and key_file too")


@dataclass(frozen=True)
class TenantQuotas:
    """What one credential's tenant may hold and ask for.

    ``aga_slots``: knowledge entries the tenant may have registered at once.
    ``cache_entries``: subgraph-cache entries of the tenant (0: only the cache's
    global limits). ``max_priority``: the highest request ``priority`` allowed.
    """

    aga_slots: int = 64
    cache_entries: int = 0
    max_priority: int = 0

    def __post_init__(self) -> None:
        if self.aga_slots < 0 or self.cache_entries < 0:
            raise config_error("auth.credentials.quotas", "aga_slots and cache_entries must be >= 0")


def _token(token: str, token_env: str, field_name: str) -> str:
    """``token``, else the value of the environment variable ``token_env``, else ""."""
    if token:
        return token
    if token_env:
        import os

        value = os.environ.get(token_env, "")
        if not value:
            raise config_error(field_name, f"environment variable {token_env} is empty or unset")
        return value
    return ""


@dataclass(frozen=True)
class CredentialConfig:
    """One credential and what it grants (see docs/server.md, "Security model").

    A bearer ``token`` (or ``token_env``, the environment variable holding it) and/or
    mTLS ``client_identities`` (certificate common names or subject alternative
    names, used when ``tls.client_ca_file`` is set) identify the caller as ``tenant``
    with ``role`` ``tenant`` (acts only as that tenant) or ``admin`` (may name any
    tenant and run cross-tenant operations). ``write_namespaces`` are the path
    prefixes beyond ``/dynamic`` the tenant may generate into (``/lib/acme``);
    ``aga_namespaces`` the knowledge namespaces its requests may read. A request's
    ``namespaces`` can only narrow these.
    """

    tenant: str = ""
    role: Literal["tenant", "admin"] = "tenant"
    token: str = ""
    token_env: str = ""
    client_identities: tuple[str, ...] = ()
    write_namespaces: tuple[str, ...] = ()
    aga_namespaces: tuple[str, ...] = ()
    quotas: TenantQuotas = field(default_factory=TenantQuotas)

    def __post_init__(self) -> None:
        if self.role == "tenant" and not self.tenant:
            raise config_error("auth.credentials.tenant", "a tenant credential must name its tenant")
        if "/" in self.tenant or self.tenant == "*":
            raise config_error("auth.credentials.tenant", f"{self.tenant!r}: no '/' and not '*'")
        if not (self.token or self.token_env or self.client_identities):
            raise config_error("auth.credentials", f"credential of tenant {self.tenant!r} needs a token, "
                       "token_env or client_identities")
        for ns in self.write_namespaces:
            if not ns.startswith("/") or ns.rstrip("/") in ("", "/__meta__"):
                raise config_error("auth.credentials.write_namespaces",
                           f"{ns!r} must be an absolute path prefix such as /lib/acme")
        for ns in self.aga_namespaces:
            if not ns or "/" in ns:
                raise config_error("auth.credentials.aga_namespaces", f"{ns!r}: a name without '/'")

    def resolve_token(self) -> str:
        """The bearer token of this credential ("" when it has only mTLS identities)."""
        return _token(self.token, self.token_env, "auth.credentials.token_env")


@dataclass(frozen=True)
class AuthConfig:
    """Who may call, and as which tenant.

    ``credentials`` map bearer tokens and mTLS client identities to a tenant and a
    role (see :class:`CredentialConfig`). The single ``token`` (or ``token_env``) of
    older profiles is still read: it is an ``admin`` credential. With neither, auth
    is off: every caller is the admin of one implicit tenant (development only).
    ``exempt_health`` lets health checks through without a token, for load
    balancers and orchestrators that cannot send one.
    """

    token: str = ""
    token_env: str = ""
    exempt_health: bool = True
    credentials: tuple[CredentialConfig, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.token or self.token_env or self.credentials)

    def resolve_token(self) -> str:
        """The token to require, or "" when authentication is off."""
        return _token(self.token, self.token_env, "auth.token_env")
