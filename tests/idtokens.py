"""Google-style ID tokens for tests: an RSA key with a self-signed certificate (as Google
publishes its signing keys) and tokens minted with google.auth.jwt."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

from tests.httpfakes import FakeServer, Reply, Request, fake_server

KID = "test-key-1"


def keypair() -> tuple[bytes, str]:
    """A private key (PEM) and a self-signed certificate for it (PEM), as Google publishes."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-signer")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return private_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


def mint(
    key: tuple[bytes, str],
    *,
    audience: str,
    email: str,
    verified: bool = True,
    issuer: str = "https://accounts.google.com",
    issued_s_ago: int = 0,
    lifetime_s: int = 3600,
    kid: str = KID,
) -> str:
    now = int(time.time()) - issued_s_ago
    payload: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": "112233",
        "email": email,
        "email_verified": verified,
        "iat": now,
        "exp": now + lifetime_s,
    }
    signer = crypt.RSASigner.from_string(key[0], key_id=kid)  # type: ignore[no-untyped-call]
    token: bytes = jwt.encode(signer, payload)  # type: ignore[no-untyped-call]
    return token.decode()


@contextmanager
def published_certs(key: tuple[bytes, str]) -> Iterator[FakeServer]:
    """A loopback server publishing `key`'s certificate as Google's certs URL does; tokens
    minted with `key` verify against `{server.url}/certs`."""

    def respond(req: Request) -> Reply:
        return 200, {KID: key[1]}

    with fake_server(respond) as server:
        yield server
