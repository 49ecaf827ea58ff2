"""Two tenants with two tokens over a real loopback server: neither can read, change,
invalidate or be served the other's cache entries or knowledge by any RPC argument;
an admin token can. Each test fails on a server that takes the tenant, namespaces
and priority from the request."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from agentic_llm.client import Client, RetryPolicy, ServiceError
from agentic_llm.errors import AgenticError, ErrorCode
from tests.server.conftest import REQUEST

TOKENS = {"acme": "tok-acme", "globex": "tok-globex", "small": "tok-small",
          "admin": "tok-admin"}
CREDENTIALS = [
    {"tenant": "iso-acme", "token": TOKENS["acme"], "aga_namespaces": ["hotels"],
     "quotas": {"aga_slots": 2, "max_priority": 5}},
    {"tenant": "iso-globex", "token": TOKENS["globex"], "aga_namespaces": ["hotels"],
     "write_namespaces": ["/lib/globex"]},
    {"tenant": "iso-small", "token": TOKENS["small"], "quotas": {"cache_entries": 1}},
    {"role": "admin", "token": TOKENS["admin"]},
]
NO_RETRY = RetryPolicy(max_attempts=1)


def _client(srv: Any, who: str | None) -> Client:
    return Client(srv.address, token=TOKENS[who] if who else None, retry=NO_RETRY, timeout=60)


def _refused(fn: Callable[[], Any]) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        fn()
    return info.value


@pytest.fixture
def tenant_server(make_server: Callable[..., Any]) -> Any:
    return make_server(**{"auth.credentials": CREDENTIALS})


def test_a_tenant_is_never_served_another_tenants_cache_entry(tenant_server: Any) -> None:
    req = dict(REQUEST, target_path="/dynamic/tenancy_shared")
    with _client(tenant_server, "acme") as a, _client(tenant_server, "globex") as g:
        first = a.generate_subgraph(req)
        assert first.valid
        assert a.generate_subgraph(req).cache.name == "EXACT"
        # globex asks for the same thing, with and without naming acme
        assert g.generate_subgraph(req).cache.name != "EXACT"
        err = _refused(lambda: g.generate_subgraph(dict(req, tenant="iso-acme")))
        assert err.code == ErrorCode.PERMISSION_DENIED and err.status == grpc.StatusCode.PERMISSION_DENIED


def test_invalidation_is_scoped_to_the_callers_tenant(tenant_server: Any) -> None:
    req = dict(REQUEST, target_path="/dynamic/tenancy_inval")
    with (_client(tenant_server, "acme") as a, _client(tenant_server, "globex") as g,
          _client(tenant_server, "admin") as admin):
        assert a.generate_subgraph(req).valid
        # globex's invalidation of the same path removes only globex's entries
        assert g.invalidate_cache(path_prefix="/dynamic/tenancy_inval") == 0
        assert a.generate_subgraph(req).cache.name == "EXACT"
        for kwargs in ({"tenant": "iso-acme"}, {"all": True},
                       {"tenant": "iso-acme", "path_prefix": "/dynamic"}):
            err = _refused(lambda kw=kwargs: g.invalidate_cache(**kw))
            assert err.code == ErrorCode.PERMISSION_DENIED, kwargs
        assert a.generate_subgraph(req).cache.name == "EXACT"
        # the admin may name the tenant
        assert admin.invalidate_cache(tenant="iso-acme", path_prefix="/dynamic/tenancy_inval") == 1
        assert a.generate_subgraph(req).cache.name != "EXACT"


def test_grants_and_priority_come_from_the_server(tenant_server: Any) -> None:
    with _client(tenant_server, "acme") as a, _client(tenant_server, "globex") as g:
        # acme has no write grant beyond /dynamic: asking for /lib is refused
        lib = dict(REQUEST, target_path="/lib/acme/x", signature="(a: string) -> b: string")
        err = _refused(lambda: a.generate_subgraph(dict(lib, namespaces=["/lib"])))
        assert err.code == ErrorCode.PERMISSION_DENIED
        err = _refused(lambda: a.generate_subgraph(dict(lib, namespaces=["/etc"])))
        assert err.code == ErrorCode.PERMISSION_DENIED
        # globex's grant is /lib/globex; a request can narrow it, not widen it
        err = _refused(lambda: g.generate_subgraph(
            dict(lib, target_path="/lib/globex/x", namespaces=["/lib"])))
        assert err.code == ErrorCode.PERMISSION_DENIED
        # knowledge: another tenant's namespace cannot be named
        err = _refused(lambda: a.generate_subgraph(dict(REQUEST, namespaces=["iso-globex/hotels"])))
        assert err.code == ErrorCode.INVALID_REQUEST
        err = _refused(lambda: a.generate_subgraph(dict(REQUEST, namespaces=["secret"])))
        assert err.code == ErrorCode.PERMISSION_DENIED
        err = _refused(lambda: a.generate_subgraph(dict(REQUEST, priority=2**31 - 1)))
        assert err.code == ErrorCode.PERMISSION_DENIED
        assert a.generate_subgraph(dict(REQUEST, target_path="/dynamic/prio", priority=5)).valid


def test_a_tenant_holds_at_most_its_quota_of_cache_entries(tenant_server: Any) -> None:
    first = dict(REQUEST, target_path="/dynamic/quota_1")
    second = dict(REQUEST, target_path="/dynamic/quota_2")
    with _client(tenant_server, "small") as s, _client(tenant_server, "acme") as a:
        assert s.generate_subgraph(first).valid
        assert s.generate_subgraph(first).cache.name == "EXACT"
        assert a.generate_subgraph(first).valid  # another tenant's entries do not count
        assert s.generate_subgraph(second).valid  # the second entry evicts the first
        assert s.generate_subgraph(second).cache.name == "EXACT"
        assert s.generate_subgraph(first).cache.name != "EXACT"
        assert a.generate_subgraph(first).cache.name == "EXACT"


def test_unknown_or_missing_token_is_unauthenticated(tenant_server: Any) -> None:
    for token in (None, "tok-nobody"):
        with Client(tenant_server.address, token=token, retry=NO_RETRY) as c:
            err = _refused(lambda c=c: c.invalidate_cache(all=True))
            assert err.code == ErrorCode.UNAUTHENTICATED


# -- knowledge (AGA) ---------------------------------------------------------------

@pytest.fixture(scope="module")
def aga_tenant_server(tiny_model_dir: Path) -> Iterator[tuple[Any, Any, list[Any]]]:
    from agentic_llm.config import ServerConfig
    from agentic_llm.engine import LLMEngine
    from agentic_llm.server import AgenticServer
    from agentic_llm.serving import Pipeline, PipelineParts
    from agentic_llm.serving.aga_admin import attach_aga

    engine = LLMEngine.from_pretrained(tiny_model_dir, num_blocks=64)
    knowledge = attach_aga(engine)
    # what each batch row of each forward step was allowed to read
    seen: list[Any] = []
    runtime = knowledge.plugin.runtime
    original = runtime.begin_step

    def recording_begin_step(**kw: Any) -> Any:
        seen.append((list(kw.get("request_ids") or ()), [tuple(r) for r in kw["row_namespaces"]]))
        return original(**kw)

    runtime.begin_step = recording_begin_step
    pipeline = Pipeline(PipelineParts(engine=engine, knowledge=knowledge))
    cfg = ServerConfig.from_dict({"listen": "127.0.0.1:0", "cache": {"store": "none"},
                                  "auth": {"credentials": CREDENTIALS}})
    srv = AgenticServer(cfg, pipeline).start()
    yield srv, knowledge, seen
    srv.stop()
    pipeline.close()


def _vectors(knowledge: Any, seed: float) -> tuple[list[float], list[float]]:
    cfg = knowledge.plugin.config
    return [seed] * cfg.bottleneck_dim, [seed / 2] * cfg.hidden_dim


def test_knowledge_is_invisible_across_tenants(aga_tenant_server: Any) -> None:
    srv, knowledge, _ = aga_tenant_server
    k, v = _vectors(knowledge, 0.1)
    with (_client(srv, "acme") as a, _client(srv, "globex") as g,
          _client(srv, "admin") as admin):
        kid = a.register_knowledge(namespace="hotels", key="k", text="t", key_vector=k,
                                   value_vector=v)
        assert [e.id for e in a.list_knowledge()] == [kid]
        # globex sees nothing of acme's, whatever it names
        assert g.list_knowledge() == []
        assert g.list_knowledge(namespace="hotels") == []
        for call in (lambda: g.list_knowledge(tenant="iso-acme"),
                     lambda: g.remove_knowledge(tenant="iso-acme", namespace="hotels", id=kid),
                     lambda: g.register_knowledge(tenant="iso-acme", namespace="hotels", key="x",
                                                  text="y", key_vector=k, value_vector=v)):
            assert _refused(call).code == ErrorCode.PERMISSION_DENIED
        assert not g.remove_knowledge(namespace="hotels", id=kid)
        err = _refused(lambda: g.register_knowledge(namespace="iso-acme/hotels", key="x", text="y",
                                                    key_vector=k, value_vector=v))
        assert err.code in (ErrorCode.PERMISSION_DENIED, ErrorCode.INVALID_REQUEST)
        # the empty tenant is no wildcard for an admin either
        assert admin.list_knowledge() == []
        assert [e.id for e in admin.list_knowledge(tenant="iso-acme")] == [kid]
        assert [e.id for e in a.list_knowledge()] == [kid]
        assert admin.remove_knowledge(tenant="iso-acme", namespace="hotels", id=kid)
        assert a.list_knowledge() == []


def test_knowledge_slots_have_a_per_tenant_quota(aga_tenant_server: Any) -> None:
    srv, knowledge, _ = aga_tenant_server
    k, v = _vectors(knowledge, 0.2)
    with _client(srv, "acme") as a, _client(srv, "globex") as g:
        ids = [a.register_knowledge(namespace="hotels", key="k", text="t", key_vector=k,
                                    value_vector=v) for _ in range(2)]
        err = _refused(lambda: a.register_knowledge(namespace="hotels", key="k", text="t",
                                                    key_vector=k, value_vector=v))
        assert err.code == ErrorCode.BUDGET_EXCEEDED
        # another tenant is not affected by acme's full quota
        gid = g.register_knowledge(namespace="hotels", key="k", text="t", key_vector=k,
                                   value_vector=v)
        for i in ids:
            assert a.remove_knowledge(namespace="hotels", id=i)
        assert g.remove_knowledge(namespace="hotels", id=gid)


def test_generation_reads_only_the_callers_knowledge(aga_tenant_server: Any) -> None:
    srv, knowledge, seen = aga_tenant_server
    k, v = _vectors(knowledge, 0.3)
    req = dict(REQUEST, target_path="/dynamic/aga_rows", flags={"bypass_cache": True})
    with _client(srv, "acme") as a, _client(srv, "globex") as g:
        kid = g.register_knowledge(namespace="hotels", key="k", text="t", key_vector=k,
                                   value_vector=v)
        seen.clear()  # the only request running from here on is acme's
        try:
            a.generate_subgraph(req)
        except ServiceError as exc:  # a random model may run out of tokens: its rows ran
            assert exc.code == ErrorCode.BUDGET_EXCEEDED
        finally:
            assert g.remove_knowledge(namespace="hotels", id=kid)
    rows = [ns for _, per_row in seen for ns in per_row]
    assert rows, "no forward step reached the AGA runtime"
    # acme's rows read acme's granted namespace, never globex's (which holds knowledge)
    assert set(rows) == {("iso-acme/hotels",)}, rows


def test_retrieval_searches_only_the_callers_knowledge_base(tiny_model_dir: Path,
                                                            tmp_path: Path) -> None:
    """``aga.retriever: kvstore``: registered knowledge waits in the knowledge base; a
    generation copies into the slots only entries of its own tenant's namespaces."""
    import yaml

    from agentic_llm.config import ServerConfig
    from agentic_llm.engine import LLMEngine
    from agentic_llm.server import AgenticServer
    from agentic_llm.serving import Pipeline, PipelineParts
    from agentic_llm.serving.aga_admin import attach_aga

    profile = tmp_path / "aga.yaml"
    # gates open on a random model, every entry scores above retriever_min_score
    profile.write_text(yaml.safe_dump({
        "hidden_dim": 64, "tau_low": 0.0, "tau_high": 0.001, "gate1_unknown_uncertainty": 1.0,
        "retriever_min_score": -1.0, "retriever_timeout_ms": 5000.0,
        "max_forward_timeout_ms": 5000.0}), encoding="utf-8")
    engine = LLMEngine.from_pretrained(tiny_model_dir, num_blocks=64)
    knowledge = attach_aga(engine, str(profile), retriever="kvstore", knowledge_base_slots=8)
    plugin, base = knowledge.plugin, knowledge.knowledge_base
    pipeline = Pipeline(PipelineParts(engine=engine, knowledge=knowledge))
    cfg = ServerConfig.from_dict({"listen": "127.0.0.1:0", "cache": {"store": "none"},
                                  "auth": {"credentials": CREDENTIALS}})
    srv = AgenticServer(cfg, pipeline).start()
    dim = plugin.config.bottleneck_dim
    try:
        with _client(srv, "acme") as a, _client(srv, "globex") as g:
            gid = g.register_knowledge(namespace="hotels", key="k", text="t",
                                       key_vector=[1.0] * dim, value_vector=[0.1] * 64)
            aid = a.register_knowledge(namespace="hotels", key="k", text="t",
                                       key_vector=[1.0, -1.0] * (dim // 2),
                                       value_vector=[0.2] * 64)
            # kept in the knowledge base, listed per tenant, nothing in the slots yet
            assert {(e.namespace, e.id) for e in base.entries()} == {
                ("iso-globex/hotels", gid), ("iso-acme/hotels", aid)}
            assert [e.id for e in a.list_knowledge()] == [aid]
            assert [e.id for e in g.list_knowledge()] == [gid]
            assert len(plugin.store) == 0
            try:
                a.generate_subgraph(dict(REQUEST, target_path="/dynamic/aga_kb",
                                         flags={"bypass_cache": True}))
            except ServiceError as exc:  # a random model may run out of tokens
                assert exc.code == ErrorCode.BUDGET_EXCEEDED
            assert plugin.retrieval.calls > 0
            # acme's rows retrieved acme's entry; globex's never reached the slots
            assert {(e.namespace, e.id) for e in plugin.store.entries()} == {
                ("iso-acme/hotels", aid)}
            assert not g.remove_knowledge(namespace="hotels", id=aid)
            assert a.remove_knowledge(namespace="hotels", id=aid)
            assert len(plugin.store) == 0  # removing an entry drops its copy in the slots
            assert g.remove_knowledge(namespace="hotels", id=gid)
            assert len(base) == 0
    finally:
        srv.stop()
        pipeline.close()


def test_serve_refuses_a_kvstore_profile_without_its_knowledge_base(tiny_model_dir: Path,
                                                                    tmp_path: Path) -> None:
    from agentic_llm.engine import LLMEngine
    from agentic_llm.serving.aga_admin import attach_aga

    profile = tmp_path / "aga.yaml"
    profile.write_text("hidden_dim: 64\nretriever:\n  backend: kvstore\n", encoding="utf-8")
    engine = LLMEngine.from_pretrained(tiny_model_dir, num_blocks=16)
    with pytest.raises(AgenticError) as info:
        attach_aga(engine, str(profile))
    assert info.value.code == ErrorCode.INVALID_CONFIG and "aga.retriever" in info.value.message


# -- mTLS identities ---------------------------------------------------------------

def _pki(tmp: Path) -> dict[str, tuple[bytes, bytes]]:
    """A CA and certificates it signed: server (localhost) and two clients by CN."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def pem(cert: Any, key: Any) -> tuple[bytes, bytes]:
        return (cert.public_bytes(serialization.Encoding.PEM),
                key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))

    def make(cn: str, issuer: Any, issuer_key: Any, *, ca: bool = False,
             server: bool = False) -> tuple[Any, Any]:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        b = (x509.CertificateBuilder().subject_name(name)
             .issuer_name(issuer.subject if issuer is not None else name)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=5))
             .not_valid_after(now + datetime.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if server:
            b = b.add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
        return b.sign(issuer_key if issuer_key is not None else key, hashes.SHA256()), key

    ca, ca_key = make("test-ca", None, None, ca=True)
    out = {"ca": pem(ca, ca_key)}
    for cn, server in (("localhost", True), ("acme-client", False), ("globex-client", False),
                       ("stranger", False)):
        out[cn] = pem(*make(cn, ca, ca_key, server=server))
    for name, (cert, key) in out.items():
        (tmp / f"{name}.crt").write_bytes(cert)
        (tmp / f"{name}.key").write_bytes(key)
    return out


def test_mtls_client_identities_map_to_tenants(make_server: Callable[..., Any],
                                               tmp_path: Path) -> None:
    from agentic_llm.client.errors import from_rpc_error
    from agentic_llm.client.protos import load

    pki = _pki(tmp_path)
    srv = make_server(**{
        "tls.cert_file": str(tmp_path / "localhost.crt"),
        "tls.key_file": str(tmp_path / "localhost.key"),
        "tls.client_ca_file": str(tmp_path / "ca.crt"),
        "auth.credentials": [{"tenant": "tls-a", "client_identities": ["acme-client"]},
                             {"tenant": "tls-b", "client_identities": ["globex-client"]}]})
    pb = load().pb2

    def call(who: str, **fields: Any) -> Any:
        creds = grpc.ssl_channel_credentials(root_certificates=pki["ca"][0],
                                             private_key=pki[who][1],
                                             certificate_chain=pki[who][0])
        with grpc.secure_channel(f"localhost:{srv.port}", creds) as ch:
            stub = load().pb2_grpc.AgenticLLMStub(ch)
            try:
                return stub.InvalidateCache(pb.InvalidateCacheRequest(**fields), timeout=30)
            except grpc.RpcError as exc:
                return from_rpc_error(exc)

    assert call("acme-client", tenant="tls-a", path_prefix="/dynamic").removed == 0
    assert call("acme-client", path_prefix="/dynamic").removed == 0
    assert call("globex-client", tenant="tls-a", path_prefix="/dynamic").code == \
        ErrorCode.PERMISSION_DENIED
    assert call("acme-client", all=True).code == ErrorCode.PERMISSION_DENIED
    # a certificate the CA signed but no credential names
    assert call("stranger", path_prefix="/dynamic").code == ErrorCode.UNAUTHENTICATED


def test_library_calls_act_as_the_credentials_tenant(tenant_server: Any) -> None:
    from tests.library.conftest import lib_doc

    text = lib_doc().replace("/lib/x", "/lib/iso_lib")
    with (_client(tenant_server, "acme") as a, _client(tenant_server, "globex") as g,
          _client(tenant_server, "admin") as admin):
        # a tenant cannot publish, list or delete as another tenant, nor delete as the admin ""
        err = _refused(lambda: a.publish_library("/lib/iso_lib@v1", text, tenant="iso-globex"))
        assert err.code == ErrorCode.PERMISSION_DENIED
        doc = a.publish_library("/lib/iso_lib@v1", text, visibility="private")
        assert doc.publisher == "iso-acme"
        assert _refused(lambda: g.list_library(prefix="/lib/iso_lib", tenant="iso-acme")).code \
            == ErrorCode.PERMISSION_DENIED
        assert _refused(lambda: a.delete_library("/lib/iso_lib")).code == ErrorCode.PERMISSION_DENIED
        assert _refused(lambda: g.delete_library("/lib/iso_lib", tenant="")).code \
            == ErrorCode.PERMISSION_DENIED
        # the admin credential may delete it
        assert admin.delete_library("/lib/iso_lib") == 1
