"""Bearer-token auth on and off; TLS with a certificate made in the test."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path
from typing import Any

import grpc
import pytest

from agentic_llm.client import Client, ServiceError
from agentic_llm.errors import ErrorCode
from tests.server.conftest import REQUEST


def test_auth_off_accepts_calls_without_token(client: Client) -> None:
    assert client.generate_subgraph(dict(REQUEST, target_path="/dynamic/noauth")).valid


def test_auth_on_requires_the_token(make_server: Any) -> None:
    srv = make_server(**{"auth.token": "s3cret"})
    req = dict(REQUEST, target_path="/dynamic/auth_1")
    for token in (None, "wrong"):
        with Client(srv.address, token=token) as c, pytest.raises(ServiceError) as info:
            c.generate_subgraph(req)
        assert info.value.code == ErrorCode.UNAUTHENTICATED
        assert info.value.status == grpc.StatusCode.UNAUTHENTICATED
    with Client(srv.address, token="wrong") as c:
        with pytest.raises(ServiceError) as info:
            list(c.stream(req))
        assert info.value.status == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(ServiceError):
            c.cache_stats()
        assert c.health() == "SERVING"  # health is exempt by default
    with Client(srv.address, token="s3cret") as c:
        assert c.generate_subgraph(req).valid
        assert c.cache_stats()["entries"] >= 1


def test_auth_can_cover_health_too(make_server: Any) -> None:
    srv = make_server(**{"auth.token": "s3cret", "auth.exempt_health": False})
    with Client(srv.address) as c, pytest.raises(ServiceError) as info:
        c.health()
    assert info.value.status == grpc.StatusCode.UNAUTHENTICATED


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_tls_with_test_certificate(make_server: Any, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    srv = make_server(**{"tls.cert_file": str(cert), "tls.key_file": str(key),
                         "auth.token": "tok"})
    address = f"localhost:{srv.port}"
    with Client(address, root_certificates=cert, token="tok") as c:
        assert c.health() == "SERVING"
        r = c.generate_subgraph(dict(REQUEST, target_path="/dynamic/tls_1"))
        assert r.valid
    # A plaintext client cannot talk to the TLS port.
    from agentic_llm.client import RetryPolicy

    with Client(address, token="tok", retry=RetryPolicy(max_attempts=1), timeout=5) as c:
        with pytest.raises(ServiceError) as info:
            c.health()
        assert info.value.status == grpc.StatusCode.UNAVAILABLE
