"""Tests of the fake Entra ID itself, driven by a plain aiohttp client."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from aiomsal.testing import (
    FakeAuthority,
    TestCertificate,
    VirtualClock,
    generate_certificate,
)

GRAPH = "https://graph.microsoft.com/.default"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TENANT = "contoso.onmicrosoft.com"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def client_cert() -> TestCertificate:
    return generate_certificate("cert client")


@pytest.fixture
async def authority(client_cert: TestCertificate) -> AsyncIterator[FakeAuthority]:
    async with FakeAuthority() as fake:
        fake.add_client("app", "s3cret")
        fake.add_client("cert-app", certificate=client_cert)
        yield fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def token_url(fake: FakeAuthority, tenant: str = TENANT) -> str:
    return f"{fake.authority(tenant)}/oauth2/v2.0/token"


def secret_form(
    client_id: str = "app", secret: str = "s3cret", scope: str = GRAPH
) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": secret,
        "scope": scope,
    }


def without(form: dict[str, str], name: str) -> dict[str, str]:
    return {k: v for k, v in form.items() if k != name}


async def post(
    session: aiohttp.ClientSession,
    url: str,
    form: Mapping[str, str],
    headers: Mapping[str, str] | None = None,
) -> tuple[int, Any, Mapping[str, str]]:
    async with session.post(url, data=dict(form), headers=headers) as response:
        return response.status, await response.json(), response.headers


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def assertion(
    cert: TestCertificate,
    audience: str,
    *,
    client_id: str = "cert-app",
    now: float | None = None,
    lifetime: float = 600,
    algorithm: str = "PS256",
    header: str = "x5t#S256",
    signing_cert: TestCertificate | None = None,
) -> str:
    now = time.time() if now is None else now
    der = cert.certificate.public_bytes(serialization.Encoding.DER)
    choices: dict[str, dict[str, Any]] = {
        "x5t#S256": {"x5t#S256": b64url(hashlib.sha256(der).digest())},
        "x5t": {"x5t": b64url(hashlib.sha1(der).digest())},
        "x5c": {"x5c": [base64.b64encode(der).decode()]},
    }
    headers = choices[header]
    claims = {
        "aud": audience,
        "iss": client_id,
        "sub": client_id,
        "jti": str(uuid.uuid4()),
        "nbf": int(now),
        "exp": int(now + lifetime),
    }
    key = serialization.load_pem_private_key((signing_cert or cert).private_key_pem, None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)


def assertion_form(client_assertion: str, client_id: str = "cert-app") -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": client_assertion,
        "scope": "api://backend/.default",
    }


# --- discovery ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_openid_configuration(
    authority: FakeAuthority, session: aiohttp.ClientSession
) -> None:
    base = authority.base_url
    tid = authority.tenant_id(TENANT)
    for path in ("v2.0/.well-known/openid-configuration", ".well-known/openid-configuration"):
        async with session.get(f"{base}/{TENANT}/{path}") as response:
            assert response.status == 200
            config = await response.json()
        assert config["issuer"] == f"{base}/{tid}/v2.0"
        assert config["token_endpoint"] == f"{base}/{TENANT}/oauth2/v2.0/token"
        assert config["authorization_endpoint"] == f"{base}/{TENANT}/oauth2/v2.0/authorize"
        assert config["device_authorization_endpoint"] == f"{base}/{TENANT}/oauth2/v2.0/devicecode"
        assert config["jwks_uri"] == f"{base}/{TENANT}/discovery/v2.0/keys"
        assert config["id_token_signing_alg_values_supported"] == ["RS256"]
        assert "client_credentials" in config["grant_types_supported"]
        assert "private_key_jwt" in config["token_endpoint_auth_methods_supported"]
        assert "end_session_endpoint" in config
        assert "tenant_region_scope" in config
    assert authority.discovery_requests == 2


@pytest.mark.anyio
async def test_instance_discovery(authority: FakeAuthority, session: aiohttp.ClientSession) -> None:
    base = authority.base_url
    port = base.rsplit(":", 1)[1]
    params = {
        "api-version": "1.1",
        "authorization_endpoint": f"{base}/{TENANT}/oauth2/v2.0/authorize",
    }
    async with session.get(f"{base}/common/discovery/instance", params=params) as response:
        assert response.status == 200
        body = await response.json()
    assert body["tenant_discovery_endpoint"] == (
        f"{base}/{TENANT}/v2.0/.well-known/openid-configuration"
    )
    assert body["api-version"] == "1.1"
    (metadata,) = body["metadata"]
    assert metadata["preferred_network"] == f"127.0.0.1:{port}"
    assert metadata["preferred_cache"] == f"127.0.0.1:{port}"
    assert metadata["aliases"] == [f"127.0.0.1:{port}", f"localhost:{port}"]

    params["authorization_endpoint"] = f"https://evil.example/{TENANT}/oauth2/v2.0/authorize"
    async with session.get(f"{base}/organizations/discovery/instance", params=params) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_instance"
    assert authority.discovery_requests == 2


@pytest.mark.anyio
async def test_jwks_shape(authority: FakeAuthority, session: aiohttp.ClientSession) -> None:
    async with session.get(f"{authority.authority(TENANT)}/discovery/v2.0/keys") as response:
        keys = (await response.json())["keys"]
    assert len(keys) == 1
    key = keys[0]
    assert key["kty"] == "RSA"
    assert key["use"] == "sig"
    assert {"kid", "x5t", "n", "e", "x5c"} <= key.keys()
    assert authority.discovery_requests == 0


def test_tenant_id_and_urls() -> None:
    fake = FakeAuthority()
    guid = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    assert fake.tenant_id(guid) == guid
    assert fake.tenant_id("contoso.com") == str(uuid.uuid5(uuid.NAMESPACE_DNS, "contoso.com"))
    with pytest.raises(RuntimeError):
        _ = fake.base_url
    with pytest.raises(RuntimeError):
        fake.ssl_context()
    with pytest.raises(ValueError, match="error status"):
        fake.fail_next(status=200)


# --- client credentials --------------------------------------------------------------------


async def verify_with_jwks(
    session: aiohttp.ClientSession, fake: FakeAuthority, token: str, audience: str
) -> dict[str, Any]:
    async with session.get(f"{fake.authority(TENANT)}/discovery/v2.0/keys") as response:
        keys = (await response.json())["keys"]
    header = jwt.get_unverified_header(token)
    (jwk,) = [k for k in keys if k["kid"] == header["kid"]]
    assert header["x5t"] == jwk["x5t"]
    claims: dict[str, Any] = jwt.decode(
        token,
        jwt.PyJWK(jwk).key,
        algorithms=["RS256"],
        audience=audience,
        issuer=f"{fake.base_url}/{fake.tenant_id(TENANT)}/v2.0",
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    return claims


@pytest.mark.anyio
async def test_client_secret_token(
    authority: FakeAuthority, session: aiohttp.ClientSession
) -> None:
    status, body, headers = await post(
        session, token_url(authority), secret_form(), {"client-request-id": "corr-1"}
    )
    assert status == 200
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == body["ext_expires_in"] == 3600
    assert "refresh_in" not in body
    assert headers["client-request-id"] == "corr-1"
    claims = await verify_with_jwks(
        session, authority, body["access_token"], "https://graph.microsoft.com"
    )
    tid = authority.tenant_id(TENANT)
    assert claims["tid"] == tid
    assert claims["appid"] == claims["azp"] == "app"
    assert claims["idtyp"] == "app"
    assert claims["ver"] == "2.0"
    assert claims["roles"] == []
    assert claims["oid"] == claims["sub"]
    uuid.UUID(claims["oid"])
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["nbf"] == claims["iat"]
    assert abs(claims["iat"] - time.time()) < 5

    # Stable principal, unique token ids.
    _, again, _ = await post(session, token_url(authority), secret_form())
    claims2 = jwt.decode(again["access_token"], options={"verify_signature": False})
    assert claims2["oid"] == claims["oid"]
    assert claims2["uti"] != claims["uti"]


@pytest.mark.anyio
async def test_lifetime_and_refresh_in(
    authority: FakeAuthority, session: aiohttp.ClientSession
) -> None:
    authority.token_lifetime = 600
    authority.refresh_in = 300
    _, body, _ = await post(session, token_url(authority), secret_form())
    assert body["expires_in"] == 600
    assert body["refresh_in"] == 300
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 600


@pytest.mark.anyio
async def test_wrong_secret(authority: FakeAuthority, session: aiohttp.ClientSession) -> None:
    status, body, headers = await post(
        session, token_url(authority), secret_form(secret="nope"), {"client-request-id": "c-2"}
    )
    assert status == 401
    assert body["error"] == "invalid_client"
    assert body["error_codes"] == [7000215]
    assert body["correlation_id"] == "c-2"
    assert headers["client-request-id"] == "c-2"
    description = body["error_description"]
    assert description.startswith("AADSTS7000215: ")
    assert f"\r\nTrace ID: {body['trace_id']}\r\nCorrelation ID: c-2\r\nTimestamp: " in description
    assert body["timestamp"].endswith("Z")
    assert body["error_uri"].endswith("code=7000215")
    assert "nope" not in json.dumps(body)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("form", "status", "error", "code"),
    [
        (secret_form(client_id="ghost"), 400, "unauthorized_client", 700016),
        ({**secret_form(), "grant_type": "magic"}, 400, "unsupported_grant_type", 70003),
        (secret_form(scope="https://graph.microsoft.com/User.Read"), 400, "invalid_scope", 1002012),
        (secret_form(scope=f"{GRAPH} api://x/.default"), 400, "invalid_scope", 1002012),
        (without(secret_form(), "client_secret"), 401, "invalid_client", 7000218),
        (without(secret_form(), "scope"), 400, "invalid_request", 900144),
    ],
)
async def test_token_errors(
    authority: FakeAuthority,
    session: aiohttp.ClientSession,
    form: dict[str, str],
    status: int,
    error: str,
    code: int,
) -> None:
    got_status, body, _ = await post(session, token_url(authority), form)
    assert (got_status, body["error"], body["error_codes"]) == (status, error, [code])
    assert body["error_description"].startswith(f"AADSTS{code}: ")


# --- certificate credentials ----------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("algorithm", "header"), [("PS256", "x5t#S256"), ("RS256", "x5t"), ("RS256", "x5c")]
)
async def test_certificate_assertion_accepted(
    authority: FakeAuthority,
    session: aiohttp.ClientSession,
    client_cert: TestCertificate,
    algorithm: str,
    header: str,
) -> None:
    signed = assertion(client_cert, token_url(authority), algorithm=algorithm, header=header)
    status, body, _ = await post(session, token_url(authority), assertion_form(signed))
    assert status == 200, body
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "api://backend"
    assert claims["appid"] == "cert-app"
    assert claims["azpacr"] == "2"


@pytest.mark.anyio
async def test_certificate_assertion_rejected(
    authority: FakeAuthority, session: aiohttp.ClientSession, client_cert: TestCertificate
) -> None:
    url = token_url(authority)
    other = generate_certificate("intruder")
    bad = {
        "wrong key": assertion(client_cert, url, signing_cert=other),
        "unregistered cert": assertion(other, url),
        "expired": assertion(client_cert, url, now=time.time() - 3600),
        "wrong audience": assertion(client_cert, "https://elsewhere.example/token"),
        "wrong issuer": assertion(client_cert, url, client_id="someone-else"),
        "garbage": "not.a.jwt",
    }
    for reason, signed in bad.items():
        status, body, _ = await post(session, url, assertion_form(signed))
        assert (status, body["error"]) == (401, "invalid_client"), reason
        assert body["error_codes"] == [700027], reason
    # A secret client cannot use an assertion, a certificate client has no secret.
    status, body, _ = await post(session, url, assertion_form(assertion(client_cert, url), "app"))
    assert (status, body["error"]) == (401, "invalid_client")
    status, body, _ = await post(session, url, secret_form(client_id="cert-app"))
    assert (status, body["error_codes"]) == (401, [7000215])


@pytest.mark.anyio
async def test_virtual_clock_drives_times(
    session: aiohttp.ClientSession, client_cert: TestCertificate
) -> None:
    clock = VirtualClock(start=1_800_000_000)
    async with FakeAuthority(clock=clock) as fake:
        fake.add_client("cert-app", certificate=client_cert.certificate_pem)
        url = token_url(fake)
        signed = assertion(client_cert, url, now=clock.time(), lifetime=600)
        status, body, _ = await post(session, url, assertion_form(signed))
        assert status == 200
        claims = jwt.decode(body["access_token"], options={"verify_signature": False})
        assert (claims["iat"], claims["exp"]) == (1_800_000_000, 1_800_003_600)
        assert fake.token_requests[-1].time == 1_800_000_000

        await clock.advance(3600)  # the assertion is now long expired on the fake's clock
        status, body, _ = await post(session, url, assertion_form(signed))
        assert (status, body["error_codes"]) == (401, [700027])
        signed = assertion(client_cert, url, now=clock.time())
        status, body, _ = await post(session, url, assertion_form(signed))
        assert status == 200
        claims = jwt.decode(body["access_token"], options={"verify_signature": False})
        assert claims["iat"] == 1_800_003_600


# --- faults ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_status_faults_then_success(
    authority: FakeAuthority, session: aiohttp.ClientSession
) -> None:
    url = token_url(authority)
    authority.fail_next(status=429, retry_after=7)
    authority.fail_next(2, status=503)
    async with session.post(url, data=secret_form(), headers={"client-request-id": "t"}) as r:
        assert r.status == 429
        assert r.headers["Retry-After"] == "7"
        body = await r.json()
        assert body["error"] == "temporarily_unavailable"
        assert body["correlation_id"] == "t"
    for _ in range(2):
        async with session.post(url, data=secret_form()) as r:
            assert r.status == 503
            assert "Retry-After" not in r.headers
            assert (await r.json())["error"] == "temporarily_unavailable"
    status, body, _ = await post(session, url, secret_form())
    assert status == 200
    assert "access_token" in body


@pytest.mark.anyio
async def test_body_faults(authority: FakeAuthority, session: aiohttp.ClientSession) -> None:
    url = token_url(authority)
    authority.fail_next(fault="malformed_json")
    async with session.post(url, data=secret_form()) as r:
        assert r.status == 200
        assert r.content_type == "application/json"
        with pytest.raises(json.JSONDecodeError):
            json.loads(await r.text())
    authority.fail_next(status=502, fault="html", retry_after=1.5)
    async with session.post(url, data=secret_form()) as r:
        assert r.status == 502
        assert r.content_type == "text/html"
        assert r.headers["Retry-After"] == "1.5"
        assert "<html>" in await r.text()
    authority.fail_next(status=500)
    async with session.post(url, data=secret_form()) as r:
        assert r.status == 500
        assert (await r.json())["error"] == "server_error"
    status, _, _ = await post(session, url, secret_form())
    assert status == 200


@pytest.mark.anyio
async def test_drop_and_hang_faults(
    authority: FakeAuthority, session: aiohttp.ClientSession
) -> None:
    url = token_url(authority)
    authority.fail_next(fault="drop")
    with pytest.raises(aiohttp.ClientConnectionError):
        await post(session, url, secret_form())
    authority.fail_next(fault="hang")
    with pytest.raises(asyncio.TimeoutError):
        async with session.post(url, data=secret_form(), timeout=aiohttp.ClientTimeout(total=0.2)):
            pass
    status, _, _ = await post(session, url, secret_form())
    assert status == 200
    assert len(authority.token_requests) == 3


@pytest.mark.anyio
async def test_hang_does_not_block_stop(session: aiohttp.ClientSession) -> None:
    fake = FakeAuthority()
    await fake.start()
    fake.add_client("app", "s3cret")
    fake.fail_next(fault="hang")
    errors: list[BaseException] = []

    async def hung() -> None:
        try:
            await post(session, token_url(fake), secret_form())
        except aiohttp.ClientError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(hung)
        for _ in range(100):  # wait until the request has arrived
            if fake.token_requests:
                break
            await anyio.sleep(0.01)
        with anyio.fail_after(1):
            await fake.stop()
    assert len(errors) == 1


# --- bookkeeping, latency, load ---------------------------------------------------------------


@pytest.mark.anyio
async def test_request_log(authority: FakeAuthority, session: aiohttp.ClientSession) -> None:
    url = token_url(authority)
    await post(session, url, secret_form(), {"client-request-id": "one"})
    await post(session, token_url(authority, "common"), secret_form(secret="bad"))
    authority.fail_next()
    await post(session, url, secret_form(scope="api://b/.default"))
    records = authority.token_requests
    assert [r.correlation_id for r in records] == ["one", None, None]
    assert [r.tenant for r in records] == [TENANT, "common", TENANT]
    assert records[2].scope == "api://b/.default"
    assert records[0].form["client_secret"] == "s3cret"
    assert "s3cret" not in repr(records[0])
    assert authority.request_counts() == {("client_credentials", "app"): 3}


@pytest.mark.anyio
async def test_latency(authority: FakeAuthority, session: aiohttp.ClientSession) -> None:
    authority.latency = 0.2
    start = time.perf_counter()
    status, _, _ = await post(session, token_url(authority), secret_form())
    assert status == 200
    assert time.perf_counter() - start >= 0.19


def connection_budget() -> int:
    """How many client connections this process can open at once, at most 1000."""
    try:
        import resource
    except ImportError:  # Windows
        return 100
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1000
    return max(50, min(1000, (soft - 100) // 2))  # each connection costs two descriptors


@pytest.mark.anyio
async def test_many_concurrent_requests(authority: FakeAuthority) -> None:
    url = token_url(authority)
    statuses: list[int] = []
    connector = aiohttp.TCPConnector(limit=connection_budget())
    async with aiohttp.ClientSession(connector=connector) as client:

        async def one() -> None:
            async with client.post(url, data=secret_form()) as response:
                await response.read()
                statuses.append(response.status)

        async with anyio.create_task_group() as tg:
            for _ in range(1000):
                tg.start_soon(one)
    assert statuses == [200] * 1000
    assert authority.request_counts()[("client_credentials", "app")] == 1000


# --- TLS and the command line --------------------------------------------------------------


@pytest.mark.anyio
async def test_tls(session: aiohttp.ClientSession) -> None:
    async with FakeAuthority(tls=True) as fake:
        fake.add_client("app", "s3cret")
        assert fake.base_url.startswith("https://127.0.0.1:")
        assert fake.ca_file is not None
        assert await anyio.Path(fake.ca_file).exists()
        ca_file = fake.ca_file
        context = fake.ssl_context()
        for base in (fake.base_url, fake.base_url.replace("127.0.0.1", "localhost")):
            async with session.post(
                f"{base}/{TENANT}/oauth2/v2.0/token", data=secret_form(), ssl=context
            ) as r:
                assert r.status == 200
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await post(session, token_url(fake), secret_form())
    assert not await anyio.Path(ca_file).exists()
    assert fake.ca_file is None


@pytest.mark.anyio
async def test_command_line_serve(session: aiohttp.ClientSession) -> None:
    root = str(ROOT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "aiomsal.testing", "serve", "--client", "app:s3:cret"]
    async with await anyio.open_process(command, env=env) as process:
        try:
            assert process.stdout is not None
            line = b""
            with anyio.fail_after(10):
                while not line.endswith(b"\n"):
                    line += await process.stdout.receive()
            info = json.loads(line)
            assert info["ca_file"] is None
            assert info["base_url"].startswith("http://127.0.0.1:")
            url = f"{info['base_url']}/{TENANT}/oauth2/v2.0/token"
            status, _, _ = await post(session, url, secret_form(secret="s3:cret"))
            assert status == 200
        finally:
            process.terminate()
            with anyio.fail_after(5):
                await process.wait()
