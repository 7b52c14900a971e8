"""Tests of the client credentials: secrets, certificates, assertions, MSAL forms."""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from aiomsal._errors import MsalConfigurationError
from aiomsal._protocol._client_assertion import CACHE_SIZE, JWT_BEARER
from aiomsal._protocol._credentials import (
    ClientAssertion,
    ClientCertificate,
    ClientCredential,
    ClientSecret,
    _FormCredential,
    credential_from_msal,
)
from aiomsal.testing._certificates import TestCertificate, generate_certificate

CLIENT_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"
ENDPOINT = "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
PASSPHRASE = "correct horse battery staple"
SECRET = "s3cr3t~value.that-must-never-leak"
FIXED_ASSERTION = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJmZWRlcmF0ZWQifQ.c2lnbmF0dXJl"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def cert() -> TestCertificate:
    return generate_certificate()


@pytest.fixture(scope="module")
def other_cert() -> TestCertificate:
    return generate_certificate("someone else")


def der(certificate: TestCertificate) -> bytes:
    return certificate.certificate.public_bytes(serialization.Encoding.DER)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def encrypted_pem(certificate: TestCertificate, passphrase: bytes) -> bytes:
    key = serialization.load_pem_private_key(certificate.private_key_pem, password=None)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )


async def assertion_of(
    credential: ClientCredential,
    *,
    now: float | None = None,
    client_id: str = CLIENT_ID,
    endpoint: str = ENDPOINT,
) -> str:
    fields = await credential.form_fields(
        client_id=client_id, token_endpoint=endpoint, now=time.time() if now is None else now
    )
    assert fields["client_assertion_type"] == JWT_BEARER
    assert set(fields) == {"client_assertion_type", "client_assertion"}
    return fields["client_assertion"]


def verify(token: str, certificate: TestCertificate, algorithm: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(
        token,
        certificate.certificate.public_key(),  # type: ignore[arg-type]
        algorithms=[algorithm],
        audience=ENDPOINT,
        issuer=CLIENT_ID,
    )
    return claims


def unverified_claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


# ------------------------------------------------------------------------- secret


@pytest.mark.anyio
async def test_client_secret_form_fields() -> None:
    fields = await ClientSecret(SECRET).form_fields(
        client_id=CLIENT_ID, token_endpoint=ENDPOINT, now=0.0
    )
    assert fields == {"client_secret": SECRET}


@pytest.mark.parametrize("bad", ["", None, b"bytes", 42])
def test_client_secret_rejects_bad_input(bad: Any) -> None:
    with pytest.raises(MsalConfigurationError):
        ClientSecret(bad)


def test_client_secret_is_a_frozen_value() -> None:
    secret = ClientSecret(SECRET)
    assert secret == ClientSecret(SECRET)
    with pytest.raises(AttributeError):
        secret.secret = "other"  # type: ignore[misc]
    assert not hasattr(secret, "__dict__")


# -------------------------------------------------------------------- certificate


@pytest.mark.anyio
async def test_ps256_assertion_verifies_with_the_certificate(cert: TestCertificate) -> None:
    credential = ClientCertificate(cert.private_key_pem, cert.certificate_pem)
    assert credential.algorithm == "PS256"
    now = time.time()
    token = await assertion_of(credential, now=now)
    header = jwt.get_unverified_header(token)
    assert header == {
        "alg": "PS256",
        "typ": "JWT",
        "x5t#S256": b64url(hashlib.sha256(der(cert)).digest()),
    }
    claims = verify(token, cert, "PS256")
    assert claims["aud"] == ENDPOINT
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert claims["iat"] == claims["nbf"] == int(now)
    assert claims["exp"] == int(now) + 600
    assert len(claims["jti"]) == 36
    assert credential.thumbprint_sha256 == cert.thumbprint_sha256
    assert credential.thumbprint_sha1 == cert.thumbprint_sha1


@pytest.mark.anyio
async def test_str_inputs_work_like_bytes(cert: TestCertificate) -> None:
    credential = ClientCertificate(cert.private_key_pem.decode(), cert.certificate_pem.decode())
    verify(await assertion_of(credential), cert, "PS256")


@pytest.mark.anyio
async def test_rs256_with_only_a_sha1_thumbprint(cert: TestCertificate) -> None:
    hexdigits = cert.thumbprint_sha1.lower()
    spaced = ":".join(hexdigits[i : i + 2] for i in range(0, 40, 2))
    for thumbprint in (cert.thumbprint_sha1, hexdigits, spaced, " ".join(spaced.split(":"))):
        credential = ClientCertificate(cert.private_key_pem, thumbprint=thumbprint)
        assert credential.algorithm == "RS256"
        assert credential.thumbprint_sha256 is None
        token = await assertion_of(credential)
        assert jwt.get_unverified_header(token) == {
            "alg": "RS256",
            "typ": "JWT",
            "x5t": b64url(hashlib.sha1(der(cert)).digest()),
        }
        verify(token, cert, "RS256")


@pytest.mark.anyio
async def test_rs256_with_a_certificate_names_it_both_ways(cert: TestCertificate) -> None:
    credential = ClientCertificate(cert.private_key_pem, cert.certificate_pem, algorithm="RS256")
    token = await assertion_of(credential)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256"
    assert header["x5t"] == b64url(hashlib.sha1(der(cert)).digest())
    assert header["x5t#S256"] == b64url(hashlib.sha256(der(cert)).digest())
    verify(token, cert, "RS256")


@pytest.mark.anyio
async def test_x5c_only_when_asked(cert: TestCertificate) -> None:
    plain = ClientCertificate(cert.private_key_pem, cert.certificate_pem)
    assert "x5c" not in jwt.get_unverified_header(await assertion_of(plain))
    chained = ClientCertificate(
        cert.private_key_pem, cert.certificate_pem, send_certificate_chain=True
    )
    token = await assertion_of(chained)
    assert jwt.get_unverified_header(token)["x5c"] == [base64.b64encode(der(cert)).decode()]
    verify(token, cert, "PS256")


@pytest.mark.anyio
async def test_x5c_carries_the_chain_leaf_first() -> None:
    ca = generate_certificate("test CA", is_ca=True)
    leaf = generate_certificate("leaf", issuer=ca)
    expected = [base64.b64encode(der(c)).decode() for c in (leaf, ca)]
    for pem in (
        leaf.certificate_pem + ca.certificate_pem,
        ca.certificate_pem + leaf.certificate_pem,
    ):
        credential = ClientCertificate(leaf.private_key_pem, pem, send_certificate_chain=True)
        header = jwt.get_unverified_header(await assertion_of(credential))
        assert header["x5c"] == expected
        assert header["x5t#S256"] == b64url(hashlib.sha256(der(leaf)).digest())


@pytest.mark.anyio
async def test_assertion_is_reused_until_less_than_120_seconds_remain(
    cert: TestCertificate,
) -> None:
    credential = ClientCertificate(cert.private_key_pem, cert.certificate_pem)
    t0 = 1_700_000_000.25
    first = await assertion_of(credential, now=t0)
    assert await assertion_of(credential, now=t0 + 1) == first
    assert await assertion_of(credential, now=t0 + 479) == first
    # exp = int(t0) + 600: exactly 120 s left still reuses, fewer does not.
    assert await assertion_of(credential, now=int(t0) + 480) == first
    second = await assertion_of(credential, now=int(t0) + 480.5)
    assert second != first
    assert unverified_claims(second)["iat"] == int(t0) + 480
    assert unverified_claims(second)["jti"] != unverified_claims(first)["jti"]
    assert await assertion_of(credential, now=int(t0) + 700) == second


@pytest.mark.anyio
async def test_assertion_cache_is_per_client_and_endpoint(cert: TestCertificate) -> None:
    credential = ClientCertificate(cert.private_key_pem, cert.certificate_pem)
    now = 1_700_000_000.0
    base = await assertion_of(credential, now=now)
    other_client = await assertion_of(credential, now=now, client_id="other-client")
    other_endpoint = await assertion_of(credential, now=now, endpoint="https://other/token")
    assert len({base, other_client, other_endpoint}) == 3
    assert unverified_claims(other_client)["sub"] == "other-client"
    assert unverified_claims(other_endpoint)["aud"] == "https://other/token"
    assert await assertion_of(credential, now=now + 10) == base
    assert await assertion_of(credential, now=now + 10, client_id="other-client") == other_client


@pytest.mark.anyio
async def test_assertion_is_resigned_when_the_clock_goes_back(cert: TestCertificate) -> None:
    credential = ClientCertificate(cert.private_key_pem, cert.certificate_pem)
    first = await assertion_of(credential, now=1_700_000_000.0)
    earlier = await assertion_of(credential, now=1_699_999_990.0)
    assert earlier != first
    assert unverified_claims(earlier)["nbf"] == 1_699_999_990


@pytest.mark.anyio
async def test_assertion_cache_is_bounded(cert: TestCertificate) -> None:
    credential = ClientCertificate(cert.private_key_pem, cert.certificate_pem)
    now = 1_700_000_000.0
    endpoints = [f"https://login.example/{i}/token" for i in range(CACHE_SIZE + 1)]
    first = [await assertion_of(credential, now=now, endpoint=e) for e in endpoints]
    # The newest entries stayed; the oldest one was dropped and is signed anew.
    assert await assertion_of(credential, now=now, endpoint=endpoints[-1]) == first[-1]
    assert await assertion_of(credential, now=now, endpoint=endpoints[1]) == first[1]
    assert await assertion_of(credential, now=now, endpoint=endpoints[0]) != first[0]
    assert len(credential._signer._cache) <= CACHE_SIZE


@pytest.mark.anyio
async def test_encrypted_pem_with_passphrase(cert: TestCertificate) -> None:
    pem = encrypted_pem(cert, PASSPHRASE.encode())
    for passphrase in (PASSPHRASE, PASSPHRASE.encode()):
        credential = ClientCertificate(pem, cert.certificate_pem, passphrase=passphrase)
        verify(await assertion_of(credential), cert, "PS256")


def test_encrypted_pem_errors_never_show_the_passphrase(cert: TestCertificate) -> None:
    pem = encrypted_pem(cert, PASSPHRASE.encode())
    with pytest.raises(MsalConfigurationError, match="passphrase is needed"):
        ClientCertificate(pem, cert.certificate_pem)
    with pytest.raises(MsalConfigurationError, match="wrong passphrase") as wrong:
        ClientCertificate(pem, cert.certificate_pem, passphrase="not it")
    assert "not it" not in str(wrong.value)
    assert wrong.value.__suppress_context__
    with pytest.raises(MsalConfigurationError, match="not encrypted") as needless:
        ClientCertificate(cert.private_key_pem, cert.certificate_pem, passphrase=PASSPHRASE)
    assert PASSPHRASE not in str(needless.value)


@pytest.mark.parametrize(
    "key",
    [
        b"garbage",
        "-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n",
        b"",
        None,
        123,
    ],
)
def test_garbage_private_key_is_rejected(cert: TestCertificate, key: Any) -> None:
    with pytest.raises(MsalConfigurationError) as caught:
        ClientCertificate(key, cert.certificate_pem)
    assert isinstance(caught.value, ValueError)


def test_certificate_errors(cert: TestCertificate, other_cert: TestCertificate) -> None:
    key = cert.private_key_pem
    with pytest.raises(MsalConfigurationError, match="does not match"):
        ClientCertificate(key, other_cert.certificate_pem)
    with pytest.raises(MsalConfigurationError, match="no PEM certificate"):
        ClientCertificate(key, b"garbage")
    with pytest.raises(MsalConfigurationError, match="no PEM certificate"):
        ClientCertificate(key, key)  # the key where the certificate belongs
    with pytest.raises(MsalConfigurationError, match="certificate or a thumbprint"):
        ClientCertificate(key)
    with pytest.raises(MsalConfigurationError, match="hexadecimal"):
        ClientCertificate(key, thumbprint="zz" * 20)
    with pytest.raises(MsalConfigurationError, match="SHA-1"):
        ClientCertificate(key, thumbprint=cert.thumbprint_sha256)
    with pytest.raises(MsalConfigurationError, match="does not match"):
        ClientCertificate(key, cert.certificate_pem, thumbprint=other_cert.thumbprint_sha1)
    with pytest.raises(MsalConfigurationError, match="PS256 needs the certificate"):
        ClientCertificate(key, thumbprint=cert.thumbprint_sha1, algorithm="PS256")
    with pytest.raises(MsalConfigurationError, match="needs the certificate"):
        ClientCertificate(key, thumbprint=cert.thumbprint_sha1, send_certificate_chain=True)
    with pytest.raises(MsalConfigurationError, match="algorithm"):
        ClientCertificate(key, cert.certificate_pem, algorithm="HS256")  # type: ignore[arg-type]
    # A matching thumbprint alongside the certificate is fine.
    ClientCertificate(key, cert.certificate_pem, thumbprint=cert.thumbprint_sha1)


def test_non_rsa_key_is_rejected() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(MsalConfigurationError, match="RSA"):
        ClientCertificate(ec_key, thumbprint="00" * 20)


@pytest.mark.anyio
async def test_pkcs12_from_bytes_and_files(cert: TestCertificate, tmp_path: Path) -> None:
    plain = cert.to_pkcs12()
    protected = cert.to_pkcs12(PASSPHRASE.encode())
    (tmp_path / "plain.pfx").write_bytes(plain)
    (tmp_path / "protected.pfx").write_bytes(protected)
    credentials = [
        ClientCertificate.from_pkcs12(plain),
        ClientCertificate.from_pkcs12(protected, PASSPHRASE),
        ClientCertificate.from_pkcs12(protected, PASSPHRASE.encode()),
        ClientCertificate.from_pkcs12(str(tmp_path / "plain.pfx")),
        ClientCertificate.from_pkcs12(tmp_path / "protected.pfx", PASSPHRASE),
    ]
    for credential in credentials:
        assert credential.algorithm == "PS256"
        token = await assertion_of(credential)
        assert "x5c" not in jwt.get_unverified_header(token)
        verify(token, cert, "PS256")
    chained = ClientCertificate.from_pkcs12(plain, send_certificate_chain=True, algorithm="RS256")
    token = await assertion_of(chained)
    assert jwt.get_unverified_header(token)["x5c"] == [base64.b64encode(der(cert)).decode()]
    verify(token, cert, "RS256")


def test_pkcs12_errors(cert: TestCertificate, tmp_path: Path) -> None:
    protected = cert.to_pkcs12(PASSPHRASE.encode())
    with pytest.raises(MsalConfigurationError, match="passphrase") as wrong:
        ClientCertificate.from_pkcs12(protected, "not it")
    assert "not it" not in str(wrong.value)
    with pytest.raises(MsalConfigurationError, match="passphrase"):
        ClientCertificate.from_pkcs12(protected)
    with pytest.raises(MsalConfigurationError, match="PKCS#12"):
        ClientCertificate.from_pkcs12(b"garbage")
    with pytest.raises(MsalConfigurationError, match="cannot read"):
        ClientCertificate.from_pkcs12(tmp_path / "missing.pfx")
    with pytest.raises(MsalConfigurationError, match="bytes or a path"):
        ClientCertificate.from_pkcs12(42)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- assertion


@pytest.mark.anyio
async def test_fixed_assertion() -> None:
    credential = ClientAssertion(FIXED_ASSERTION + "\n")
    assert await assertion_of(credential) == FIXED_ASSERTION


@pytest.mark.anyio
async def test_sync_callable_runs_off_the_event_loop_thread_every_time() -> None:
    threads: list[int] = []

    def read_token_file() -> str:
        threads.append(threading.get_ident())
        return f"{FIXED_ASSERTION}{len(threads)}\n"

    credential = ClientAssertion(read_token_file)
    assert await assertion_of(credential) == FIXED_ASSERTION + "1"
    assert await assertion_of(credential) == FIXED_ASSERTION + "2"
    assert len(threads) == 2
    assert threading.get_ident() not in threads


@pytest.mark.anyio
async def test_async_callables_are_awaited_on_the_loop() -> None:
    threads: list[int] = []

    async def fetch() -> str:
        threads.append(threading.get_ident())
        return FIXED_ASSERTION

    class Fetcher:
        async def __call__(self) -> str:
            threads.append(threading.get_ident())
            return FIXED_ASSERTION

    def make_coroutine() -> Awaitable[str]:
        return fetch()

    for source in (fetch, Fetcher(), make_coroutine):
        credential = ClientAssertion(source)
        assert await assertion_of(credential) == FIXED_ASSERTION
    assert threads[:2] == [threading.get_ident()] * 2


@pytest.mark.anyio
@pytest.mark.parametrize("result", ["", "  \n", None, 42])
async def test_bad_callable_results_are_rejected(result: object) -> None:
    async def fetch() -> Any:
        return result

    def read() -> Any:
        return result

    for source in (fetch, read):
        with pytest.raises(MsalConfigurationError):
            await assertion_of(ClientAssertion(source))


@pytest.mark.parametrize("bad", ["", "   ", None, 42])
def test_bad_fixed_assertions_are_rejected(bad: Any) -> None:
    with pytest.raises(MsalConfigurationError):
        ClientAssertion(bad)


# --------------------------------------------------------------------------- repr


@pytest.mark.anyio
async def test_no_repr_shows_a_secret(cert: TestCertificate, tmp_path: Path) -> None:
    pem = encrypted_pem(cert, PASSPHRASE.encode())
    (tmp_path / "c.pfx").write_bytes(cert.to_pkcs12(PASSPHRASE.encode()))

    def callback() -> str:
        return FIXED_ASSERTION

    credentials: list[ClientCredential] = [
        ClientSecret(SECRET),
        ClientCertificate(pem, cert.certificate_pem, passphrase=PASSPHRASE),
        ClientCertificate(cert.private_key_pem, thumbprint=cert.thumbprint_sha1),
        ClientCertificate.from_pkcs12(tmp_path / "c.pfx", PASSPHRASE, send_certificate_chain=True),
        ClientAssertion(FIXED_ASSERTION),
        ClientAssertion(callback),
        credential_from_msal(SECRET),
        credential_from_msal({"client_assertion": FIXED_ASSERTION}),
    ]
    key_lines = [line for line in cert.private_key_pem.decode().splitlines() if "-----" not in line]
    forbidden = [SECRET, PASSPHRASE, FIXED_ASSERTION, *key_lines, *pem.decode().splitlines()[1:-1]]
    for credential in credentials:
        signed = await credential.form_fields(client_id=CLIENT_ID, token_endpoint=ENDPOINT, now=0)
        texts = [repr(credential), str(credential), f"{credential!r:>10}"]
        for text in texts:
            for value in [*forbidden, *signed.values()]:
                if value == JWT_BEARER:
                    continue
                assert value not in text, (text, value)
    assert repr(credentials[0]) == "ClientSecret(secret=<redacted>)"
    assert "callback" in repr(credentials[5])
    assert cert.thumbprint_sha256 in repr(credentials[1])


def test_every_credential_implements_the_protocol(cert: TestCertificate) -> None:
    for credential in (
        ClientSecret(SECRET),
        ClientCertificate(cert.private_key_pem, cert.certificate_pem),
        ClientAssertion(FIXED_ASSERTION),
    ):
        assert isinstance(credential, _FormCredential)


# --------------------------------------------------------------------------- MSAL


@pytest.mark.anyio
async def test_msal_secret_and_passthrough(cert: TestCertificate) -> None:
    secret = credential_from_msal(SECRET)
    assert secret == ClientSecret(SECRET)
    existing: list[ClientCredential] = [
        secret,
        ClientCertificate(cert.private_key_pem, cert.certificate_pem),
        ClientAssertion(FIXED_ASSERTION),
    ]
    for credential in existing:
        assert credential_from_msal(credential) is credential


@pytest.mark.anyio
async def test_msal_pem_with_public_certificate(cert: TestCertificate) -> None:
    credential = credential_from_msal(
        {
            "private_key": cert.private_key_pem.decode(),
            "public_certificate": cert.certificate_pem.decode(),
        }
    )
    assert isinstance(credential, ClientCertificate)
    assert credential.algorithm == "PS256"
    assert credential.send_certificate_chain  # MSAL sends public_certificate in x5c
    token = await assertion_of(credential)
    header = jwt.get_unverified_header(token)
    assert header["x5t#S256"] == b64url(hashlib.sha256(der(cert)).digest())
    assert header["x5c"] == [base64.b64encode(der(cert)).decode()]
    verify(token, cert, "PS256")


@pytest.mark.anyio
async def test_msal_pem_with_thumbprint_and_passphrase(cert: TestCertificate) -> None:
    credential = credential_from_msal(
        {
            "private_key": encrypted_pem(cert, PASSPHRASE.encode()).decode(),
            "thumbprint": cert.thumbprint_sha1,
            "passphrase": PASSPHRASE,
            "public_certificate": None,
        }
    )
    assert isinstance(credential, ClientCertificate)
    assert credential.algorithm == "RS256"
    token = await assertion_of(credential)
    assert jwt.get_unverified_header(token)["x5t"] == b64url(hashlib.sha1(der(cert)).digest())
    verify(token, cert, "RS256")


@pytest.mark.anyio
async def test_msal_pem_with_thumbprint_and_certificate_prefers_ps256(
    cert: TestCertificate,
) -> None:
    credential = credential_from_msal(
        {
            "private_key": cert.private_key_pem,
            "public_certificate": cert.certificate_pem,
            "thumbprint": cert.thumbprint_sha1,
            "passphrase": "",  # an unset environment variable
        }
    )
    assert isinstance(credential, ClientCertificate)
    assert credential.algorithm == "PS256"
    verify(await assertion_of(credential), cert, "PS256")


@pytest.mark.anyio
async def test_msal_pfx_path(cert: TestCertificate, tmp_path: Path) -> None:
    path = tmp_path / "client.pfx"
    path.write_bytes(cert.to_pkcs12(PASSPHRASE.encode()))
    plain = credential_from_msal({"private_key_pfx_path": str(path), "passphrase": PASSPHRASE})
    chained = credential_from_msal(
        {"private_key_pfx_path": path, "passphrase": PASSPHRASE, "public_certificate": True}
    )
    assert isinstance(plain, ClientCertificate)
    assert isinstance(chained, ClientCertificate)
    assert plain.algorithm == chained.algorithm == "PS256"
    assert not plain.send_certificate_chain
    assert chained.send_certificate_chain
    assert "x5c" not in jwt.get_unverified_header(await assertion_of(plain))
    token = await assertion_of(chained)
    assert jwt.get_unverified_header(token)["x5c"] == [base64.b64encode(der(cert)).decode()]
    verify(token, cert, "PS256")


@pytest.mark.anyio
async def test_msal_client_assertion_forms() -> None:
    def sync_source() -> str:
        return FIXED_ASSERTION

    async def async_source() -> str:
        return FIXED_ASSERTION

    sources: list[str | bytes | Callable[[], Any]] = [
        FIXED_ASSERTION,
        FIXED_ASSERTION.encode(),
        sync_source,
        async_source,
    ]
    for source in sources:
        credential = credential_from_msal({"client_assertion": source, "passphrase": None})
        assert isinstance(credential, ClientAssertion)
        assert await assertion_of(credential) == FIXED_ASSERTION


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (None, "not NoneType"),
        ("", "empty"),
        ({}, "empty"),
        ({"client_assertion": "", "passphrase": ""}, "empty"),
        (42, "not int"),
        (b"secret-bytes", "not bytes"),
        ({"client_secret": SECRET}, "unknown keys: client_secret"),
        ({"private_key": SECRET}, "public_certificate or thumbprint"),
        ({"thumbprint": "00" * 20}, "needs client_assertion, private_key"),
        ({"client_assertion": 42}, "str or a callable"),
        ({"client_assertion": FIXED_ASSERTION, "private_key": SECRET}, "cannot be combined"),
        ({"private_key_pfx_path": 42}, "must be a path"),
        ({"private_key_pfx_path": "x.pfx", "private_key": SECRET}, "cannot be combined"),
        ({"private_key_pfx_path": "x.pfx", "public_certificate": SECRET}, "True or False"),
        ({"private_key": SECRET, "public_certificate": True}, "needs private_key_pfx_path"),
        ({"private_key": SECRET, "passphrase": 7, "thumbprint": "00" * 20}, "passphrase"),
    ],
)
def test_msal_bad_forms_name_the_problem_not_the_secret(value: object, problem: str) -> None:
    with pytest.raises(MsalConfigurationError, match=problem) as caught:
        credential_from_msal(value)
    assert SECRET not in str(caught.value)
    assert FIXED_ASSERTION not in str(caught.value)


def test_msal_bad_pem_is_rejected_at_once(
    cert: TestCertificate, other_cert: TestCertificate
) -> None:
    with pytest.raises(MsalConfigurationError, match="does not match"):
        credential_from_msal(
            {"private_key": cert.private_key_pem, "public_certificate": other_cert.certificate_pem}
        )
    with pytest.raises(MsalConfigurationError, match="wrong passphrase"):
        credential_from_msal(
            {
                "private_key": encrypted_pem(cert, PASSPHRASE.encode()),
                "thumbprint": cert.thumbprint_sha1,
                "passphrase": "nope",
            }
        )
