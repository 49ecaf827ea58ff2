"""Who is calling: credentials (bearer tokens, mTLS identities) -> a tenant and a role.

Every RPC handler asks :meth:`IdentityMap.principal` for the caller; the principal,
not the request, decides which tenant a call acts as, which namespaces it may write
and read, and how much it may hold (docs/server.md, "Security model").
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import Any

from agentic_llm.config import AuthConfig, CredentialConfig, TenantQuotas, TLSConfig
from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["Principal", "IdentityMap", "DEV_PRINCIPAL", "denied"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    Attributes:
        tenant: the tenant its calls act as ("" for the implicit tenant).
        admin: may name any tenant and run cross-tenant operations.
        write_namespaces: path prefixes beyond /dynamic it may generate into
            (None: no restriction, for admins).
        aga_namespaces: knowledge namespaces its requests may read (None: any).
        quotas: AGA slots, cache entries, priority ceiling (None: unlimited).
        source: how it was identified, for logs ("token", "mtls", "auth off").
    """

    tenant: str
    admin: bool
    write_namespaces: tuple[str, ...] | None
    aga_namespaces: tuple[str, ...] | None
    quotas: TenantQuotas | None
    source: str

    def acting_tenant(self, requested: str, field: str = "tenant") -> str:
        """The tenant a call acts as: the principal's own; an admin may name another.

        Raises:
            AgenticError: ERR_PERMISSION_DENIED when a tenant names another tenant.
        """
        if self.admin:
            return requested
        if requested and requested != self.tenant:
            raise denied(f"{field}: this credential acts only as tenant {self.tenant!r}, "
                         f"not {requested!r}", field=field)
        return self.tenant


#: The caller when auth is off: admin of the implicit tenant "" (development only).
DEV_PRINCIPAL = Principal(tenant="", admin=True, write_namespaces=None, aga_namespaces=None,
                          quotas=None, source="auth off")


def denied(message: str, **details: Any) -> AgenticError:
    """An ERR_PERMISSION_DENIED refusal."""
    return AgenticError(ErrorCode.PERMISSION_DENIED, message, **details)


def _principal(cred: CredentialConfig, source: str) -> Principal:
    admin = cred.role == "admin"
    return Principal(
        tenant=cred.tenant, admin=admin,
        write_namespaces=None if admin else cred.write_namespaces,
        aga_namespaces=None if admin else cred.aga_namespaces,
        quotas=None if admin else cred.quotas, source=source)


class IdentityMap:
    """Credentials of a server, resolved per call.

    Args:
        auth: the auth section (credentials, or the older single token).
        tls: the TLS section; client identities count only with client certificates
            required (``tls.client_ca_file``).
    """

    def __init__(self, auth: AuthConfig, tls: TLSConfig | None = None) -> None:
        self.enabled = auth.enabled
        self._tokens: list[tuple[bytes, Principal]] = []
        self._identities: dict[str, Principal] = {}
        legacy = auth.resolve_token()
        if legacy:
            self._tokens.append((f"Bearer {legacy}".encode(), Principal(
                tenant="", admin=True, write_namespaces=None, aga_namespaces=None,
                quotas=None, source="token")))
        mtls = tls is not None and bool(tls.client_ca_file)
        for cred in auth.credentials:
            token = cred.resolve_token()
            if token:
                self._tokens.append((f"Bearer {token}".encode(), _principal(cred, "token")))
            if cred.client_identities and not mtls:
                _log.warning("auth: client_identities of tenant %r are ignored: set "
                             "tls.client_ca_file to require client certificates", cred.tenant)
            for ident in cred.client_identities if mtls else ():
                self._identities[ident] = _principal(cred, "mtls")

    @property
    def has_client_identities(self) -> bool:
        return bool(self._identities)

    def describe(self) -> str:
        """One line for the start-up log: which auth mode the server runs in."""
        if not self.enabled:
            return ("auth OFF: every caller is the admin of one implicit tenant "
                    "(development only; never expose this port)")
        tenants = sorted({p.tenant or "(implicit)" for _, p in self._tokens}
                         | {p.tenant or "(implicit)" for p in self._identities.values()})
        return (f"auth ON: {len(self._tokens)} bearer token(s), {len(self._identities)} mTLS "
                f"identit(ies); tenants {tenants}")

    def token_principal(self, metadata: Any) -> Principal | None:
        """The principal of the bearer token in call metadata, if any matches."""
        got = b""
        for key, value in metadata or ():
            if key == "authorization":
                got = value.encode() if isinstance(value, str) else bytes(value)
                break
        if not got:
            return None
        found = None
        for expected, principal in self._tokens:
            # compare against every token, so timing does not tell which matched
            if hmac.compare_digest(got, expected) and found is None:
                found = principal
        return found

    def principal(self, context: Any) -> Principal:
        """The caller of an RPC.

        Raises:
            AgenticError: ERR_UNAUTHENTICATED when auth is on and neither a token nor
                a client certificate identifies the caller.
        """
        if not self.enabled:
            return DEV_PRINCIPAL
        found = self.token_principal(context.invocation_metadata())
        if found is not None:
            return found
        if self._identities:
            auth = context.auth_context() or {}
            for prop in ("x509_common_name", "x509_subject_alternative_name"):
                for value in auth.get(prop, ()):
                    name = value.decode() if isinstance(value, bytes) else str(value)
                    if name in self._identities:
                        return self._identities[name]
        raise AgenticError(ErrorCode.UNAUTHENTICATED,
                           "missing or unknown credential (metadata 'authorization: Bearer "
                           "<token>', or a client certificate the server maps to a tenant)")
