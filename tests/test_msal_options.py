"""MSAL's options that matter to services, in both faces: proxies, app headers,
excluded scopes, assertion claims, authority validation and regional endpoints."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import aiohttp.abc
import jwt
import pytest
from aiohttp import web

import aiomsal.msal as msal
from aiomsal import (
    ConfidentialClientApplication,
    MsalConfigurationError,
    MsalServiceError,
    PublicClientApplication,
    SystemClock,
)
from aiomsal._protocol._region import choose_region, regional_token_endpoint
from aiomsal._transport._aiohttp_transport import AiohttpTransport, no_proxy_matches
from aiomsal.testing import FakeAuthority, generate_certificate
from tests.helpers import SECRET

pytestmark = pytest.mark.anyio

DAEMON = "nightly-daemon"
PUBLIC = "desktop-tool"
ALICE = "alice@contoso.com"
GRAPH_DEFAULT = ["https://graph.microsoft.com/.default"]
CERT = generate_certificate()


@pytest.fixture
async def fake() -> AsyncIterator[FakeAuthority]:
    async with FakeAuthority() as authority:
        authority.add_client(DAEMON, secret=SECRET)
        authority.add_client("cert-daemon", certificate=CERT)
        authority.add_client(PUBLIC, redirect_uris=["http://localhost"])
        authority.add_user(ALICE, password="alice-pw", tenant="contoso")
        yield authority


class Sent:
    """An aiohttp session that records the URL and headers of every request it sends."""

    def __init__(self, resolver: aiohttp.abc.AbstractResolver | None = None) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(self._record)
        connector = aiohttp.TCPConnector(resolver=resolver) if resolver else None
        self.session = aiohttp.ClientSession(trace_configs=[trace], connector=connector)

    async def _record(self, session: object, context: object, params: Any) -> None:
        self.requests.append((str(params.url), dict(params.headers)))


class Loopback(aiohttp.abc.AbstractResolver):
    """Resolves every name to 127.0.0.1 (regional host names in a test)."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        return [
            {"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET,
             "proto": 0, "flags": socket.AI_NUMERICHOST}
        ]

    async def close(self) -> None:
        pass


@pytest.fixture
async def proxy() -> AsyncIterator[tuple[str, list[str]]]:
    """A forward HTTP proxy on 127.0.0.1 that records the absolute URLs it is asked for."""
    seen: list[str] = []
    client = aiohttp.ClientSession()

    async def forward(request: web.Request) -> web.Response:
        seen.append(str(request.url))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host",)}
        async with client.request(
            request.method, request.url, headers=headers, data=await request.read(),
            allow_redirects=False,
        ) as answer:
            return web.Response(
                status=answer.status, body=await answer.read(),
                content_type=answer.content_type,
            )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()
    await client.close()


# -- proxies ------------------------------------------------------------------------------


async def test_proxies_carry_every_request_in_both_faces(
    fake: FakeAuthority, proxy: tuple[str, list[str]]
) -> None:
    url, seen = proxy
    async with ConfidentialClientApplication(
        DAEMON, SECRET, fake.authority("contoso"), proxies={"http": url}
    ) as app:
        await app.acquire_token_for_client(GRAPH_DEFAULT)
    assert any(s.endswith("/oauth2/v2.0/token") for s in seen)
    assert all(s.startswith(fake.base_url) for s in seen)
    seen.clear()
    async with msal.ConfidentialClientApplication(
        DAEMON, SECRET, fake.authority("contoso"), proxies={"all": url}
    ) as face:
        assert "access_token" in await face.acquire_token_for_client(GRAPH_DEFAULT)
    assert len(seen) >= 2  # metadata and token


async def test_environment_proxies_and_no_proxy(
    fake: FakeAuthority, proxy: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, seen = proxy
    monkeypatch.setenv("HTTP_PROXY", url)
    monkeypatch.delenv("http_proxy", raising=False)
    monkeypatch.setenv("NO_PROXY", "example.org")
    monkeypatch.delenv("no_proxy", raising=False)
    async with ConfidentialClientApplication(DAEMON, SECRET, fake.authority("contoso")) as app:
        await app.acquire_token_for_client(GRAPH_DEFAULT)
    assert seen
    seen.clear()
    async with ConfidentialClientApplication(
        DAEMON, SECRET, fake.authority("contoso"), trust_env=False
    ) as app:
        await app.acquire_token_for_client(GRAPH_DEFAULT)
    assert seen == []
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    async with ConfidentialClientApplication(DAEMON, SECRET, fake.authority("contoso")) as app:
        await app.acquire_token_for_client(GRAPH_DEFAULT)
    assert seen == []


async def test_imds_never_goes_through_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    transport = AiohttpTransport(clock=SystemClock(), proxies={"all": "http://p.example:1"})
    imds = "http://169.254.169.254/metadata/identity/oauth2/token?resource=x"
    assert transport.proxy_for(imds) is None
    assert transport.proxy_for("http://[fe80::1]/x") is None
    assert transport.proxy_for("https://login.microsoftonline.com/x") == "http://p.example:1"
    from_env = AiohttpTransport(clock=SystemClock())
    assert from_env.proxy_for(imds) is None
    assert from_env.proxy_for("http://login.example/x") == "http://proxy.example:3128"
    await transport.aclose()
    await from_env.aclose()


def test_no_proxy_rules() -> None:
    assert no_proxy_matches("login.microsoftonline.com", 443, ".microsoftonline.com")
    assert no_proxy_matches("login.microsoftonline.com", 443, "microsoftonline.com")
    assert not no_proxy_matches("evilmicrosoftonline.com", 443, "microsoftonline.com")
    assert no_proxy_matches("a.b", 8080, "x, a.b:8080")
    assert not no_proxy_matches("a.b", 443, "a.b:8080")
    assert no_proxy_matches("anything", None, "*")
    assert not no_proxy_matches("a.b", None, "")


@pytest.mark.parametrize(
    "proxies", [{"https": ""}, {"https": "socks5://p:1"}, ["http://p:1"], {"https": 1}]
)
def test_bad_proxies_are_configuration_errors(proxies: Any) -> None:
    with pytest.raises(MsalConfigurationError):
        PublicClientApplication(PUBLIC, proxies=proxies)


# -- headers, scopes, assertion claims -----------------------------------------------------


async def test_app_name_and_version_headers(fake: FakeAuthority) -> None:
    sent = Sent()
    async with sent.session, msal.ConfidentialClientApplication(
        DAEMON, SECRET, fake.authority("contoso"), http_client=sent.session,
        app_name="orders", app_version="1.2.3",
    ) as face:
        await face.acquire_token_for_client(GRAPH_DEFAULT)
    assert sent.requests
    for _, headers in sent.requests:
        assert headers["x-app-name"] == "orders" and headers["x-app-ver"] == "1.2.3"
    with pytest.raises(MsalConfigurationError):
        PublicClientApplication(PUBLIC, app_name="bad\r\nx-injected: 1")


async def test_exclude_scopes_leaves_offline_access_out(fake: FakeAuthority) -> None:
    async with PublicClientApplication(
        PUBLIC, fake.authority("organizations"), exclude_scopes=["offline_access"]
    ) as app:
        result = await app.acquire_token_by_username_password(ALICE, "alice-pw", ["User.Read"])
    assert "offline_access" not in fake.token_requests[-1].scope.split()
    assert "openid" in fake.token_requests[-1].scope.split()
    assert result.refresh_token is None
    bad: Any
    for bad in (["openid"], "offline_access", [1]):
        with pytest.raises(MsalConfigurationError):
            msal.PublicClientApplication(PUBLIC, exclude_scopes=bad)


async def test_client_claims_go_into_the_certificate_assertion(fake: FakeAuthority) -> None:
    credential = {"private_key": CERT.private_key_pem.decode(),
                  "public_certificate": CERT.certificate_pem.decode()}
    async with msal.ConfidentialClientApplication(
        "cert-daemon", credential, fake.authority("contoso"),
        client_claims={"client_ip": "10.0.0.1"},
    ) as face:
        result = await face.acquire_token_for_client(GRAPH_DEFAULT)
    assert "access_token" in result
    assertion = fake.token_requests[-1].form["client_assertion"]
    claims = jwt.decode(assertion, options={"verify_signature": False})
    assert claims["client_ip"] == "10.0.0.1" and claims["iss"] == "cert-daemon"
    with pytest.raises(MsalConfigurationError, match="aud"):
        ConfidentialClientApplication("c", SECRET, client_claims={"aud": "elsewhere"})
    with pytest.raises(MsalConfigurationError):
        ConfidentialClientApplication("c", SECRET, client_claims={"x": object()})


# -- authority validation and regions ------------------------------------------------------


@pytest.fixture
async def named() -> AsyncIterator[FakeAuthority]:
    """A fake authority that knows itself only as ``localhost`` (not as 127.0.0.1)."""
    async with FakeAuthority(host="localhost") as authority:
        authority.add_client(DAEMON, secret=SECRET)
        yield authority


async def test_validate_authority_false_accepts_an_unknown_host(named: FakeAuthority) -> None:
    unknown = named.authority("contoso").replace("localhost", "127.0.0.1")
    async with ConfidentialClientApplication(DAEMON, SECRET, unknown) as app:
        with pytest.raises(MsalServiceError) as caught:
            await app.acquire_token_for_client(GRAPH_DEFAULT)
    assert caught.value.error == "invalid_instance"
    async with msal.ConfidentialClientApplication(
        DAEMON, SECRET, unknown, validate_authority=False
    ) as face:
        assert "access_token" in await face.acquire_token_for_client(GRAPH_DEFAULT)


async def test_azure_region_sends_client_credentials_to_the_regional_host(
    named: FakeAuthority,
) -> None:
    sent = Sent(Loopback())
    async with sent.session, msal.ConfidentialClientApplication(
        DAEMON, SECRET, named.authority("contoso"), http_client=sent.session,
        azure_region="westus2",
    ) as face:
        first = await face.acquire_token_for_client(GRAPH_DEFAULT)
        again = await face.acquire_token_for_client(GRAPH_DEFAULT)
    token_urls = [url for url, _ in sent.requests if url.endswith("/token")]
    assert len(token_urls) == 1
    assert token_urls[0].startswith("http://westus2.localhost:")
    assert first["token_source"] == "identity_provider" and again["token_source"] == "cache"
    assert named.token_requests[0].grant_type == "client_credentials"


async def test_region_opt_out_and_msal_force_region(
    named: FakeAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MSAL_FORCE_REGION", "westus2")
    sent = Sent(Loopback())
    async with sent.session, ConfidentialClientApplication(
        DAEMON, SECRET, named.authority("contoso"), http_session=sent.session,
        azure_region=False,
    ) as app:
        await app.acquire_token_for_client(GRAPH_DEFAULT)
    [token_url] = [url for url, _ in sent.requests if url.endswith("/token")]
    assert token_url.startswith("http://localhost:")
    forced = Sent(Loopback())
    async with forced.session, ConfidentialClientApplication(
        DAEMON, SECRET, named.authority("contoso"), http_session=forced.session
    ) as app:
        await app.acquire_token_for_client(GRAPH_DEFAULT)
    [token_url] = [url for url, _ in forced.requests if url.endswith("/token")]
    assert token_url.startswith("http://westus2.localhost:")  # MSAL_FORCE_REGION


def test_region_choice_follows_msal(monkeypatch: pytest.MonkeyPatch) -> None:
    env: dict[str, str] = {}
    assert choose_region(None, env, confidential=True) is None
    assert choose_region("westus", env, confidential=True) == "westus"
    assert choose_region(True, {"REGION_NAME": "eastus"}, confidential=True) == "eastus"
    assert choose_region(True, {"REGION_NAME": "East US!"}, confidential=True) is None
    assert choose_region(True, env, confidential=True) is None  # no IMDS lookup here
    forced = {"MSAL_FORCE_REGION": "northeurope"}
    assert choose_region(None, forced, confidential=True) == "northeurope"
    assert choose_region(None, forced, confidential=False) is None
    assert choose_region(False, forced, confidential=True) is None
    assert choose_region("westus", forced, confidential=True) == "westus"
    for bad in ("WestUS", "west us", "-west", "a" * 64):
        with pytest.raises(MsalConfigurationError):
            choose_region(bad, env, confidential=True)
    with pytest.raises(MsalConfigurationError, match="MSAL_FORCE_REGION"):
        choose_region(None, {"MSAL_FORCE_REGION": "Bad!"}, confidential=True)
    monkeypatch.setenv("MSAL_FORCE_REGION", "bad region")
    with pytest.raises(MsalConfigurationError):
        ConfidentialClientApplication("c", SECRET)
    PublicClientApplication("p")  # public clients never use a region


@pytest.mark.parametrize(
    ("endpoint", "regional"),
    [
        ("https://login.microsoftonline.com/t/oauth2/v2.0/token",
         "https://westus.login.microsoft.com/t/oauth2/v2.0/token"),
        ("https://login.windows.net/t/oauth2/v2.0/token",
         "https://westus.login.microsoft.com/t/oauth2/v2.0/token"),
        ("https://sts.windows.net/t/oauth2/v2.0/token",
         "https://westus.login.microsoft.com/t/oauth2/v2.0/token"),
        ("https://login.microsoftonline.us/t/oauth2/v2.0/token",
         "https://westus.login.microsoftonline.us/t/oauth2/v2.0/token"),
        ("http://localhost:8080/t/oauth2/v2.0/token",
         "http://westus.localhost:8080/t/oauth2/v2.0/token"),
        ("http://127.0.0.1:8080/t/oauth2/v2.0/token", None),
    ],
)
def test_regional_hosts(endpoint: str, regional: str | None) -> None:
    assert regional_token_endpoint(endpoint, "westus") == regional


async def test_http_cache_and_pii_log_are_accepted_no_ops(fake: FakeAuthority) -> None:
    async with ConfidentialClientApplication(
        DAEMON, SECRET, fake.authority("contoso"), http_cache={}, enable_pii_log=True
    ) as app:
        await app.acquire_token_for_client(GRAPH_DEFAULT)
