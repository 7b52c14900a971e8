"""Attaching tokens to outgoing requests: the aiohttp client middleware and httpx auth."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import anyio
import httpx
import pytest
from aiohttp import web

from aiomsal import (
    ConfidentialClientApplication,
    ManagedIdentityClient,
    MsalConfigurationError,
    MsalError,
    SystemAssignedManagedIdentity,
)
from aiomsal.integrations import aiohttp as aiohttp_auth
from aiomsal.integrations import httpx as httpx_auth
from aiomsal.testing import FakeAuthority, FakeImds, VirtualClock
from tests.helpers import SECRET
from tests.web_server import serve as serve_app

pytestmark = pytest.mark.anyio

WORKER = "worker"
SCOPES = ["api://downstream/.default"]
CLAIMS = '{"access_token":{"nbf":{"essential":true,"value":"1800000000"}}}'
ENCODED = base64.b64encode(CLAIMS.encode()).decode()
CHALLENGE = (
    'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/'
    f'authorize", error="insufficient_claims", claims="{ENCODED}"'
)


@dataclass
class Downstream:
    """A loopback API that records what it receives."""

    base_url: str = ""
    seen: list[tuple[str, str | None, bytes]] = field(default_factory=list)
    challenges_left: int = 0

    def authorizations(self) -> list[str | None]:
        return [auth for _, auth, _ in self.seen]


async def serve(downstream: Downstream, redirect_to: Callable[[], str]) -> web.AppRunner:
    async def record(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        downstream.seen.append((request.path, request.headers.get("Authorization"), body))
        if request.path == "/challenge" and downstream.challenges_left > 0:
            downstream.challenges_left -= 1
            return web.Response(status=401, headers={"WWW-Authenticate": CHALLENGE})
        if request.path == "/invalid":
            return web.Response(status=401, headers={"WWW-Authenticate": 'Bearer error="x"'})
        if request.path == "/redirect":
            raise web.HTTPFound(redirect_to())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner, downstream.base_url = await serve_app(app)
    return runner


@pytest.fixture
async def servers() -> AsyncIterator[tuple[Downstream, Downstream]]:
    protected, other = Downstream(), Downstream()
    first = await serve(protected, lambda: f"{other.base_url}/landed")
    second = await serve(other, lambda: f"{protected.base_url}/landed")
    try:
        yield protected, other
    finally:
        await first.cleanup()
        await second.cleanup()


@pytest.fixture
async def fake() -> AsyncIterator[FakeAuthority]:
    async with FakeAuthority(clock=VirtualClock()) as authority:
        authority.add_client(WORKER, secret=SECRET)
        yield authority


@pytest.fixture
async def app(fake: FakeAuthority) -> AsyncIterator[ConfidentialClientApplication]:
    async with ConfidentialClientApplication(
        WORKER, client_credential=SECRET, authority=fake.authority("contoso"), clock=fake.clock
    ) as application:
        yield application


async def stream() -> AsyncIterator[bytes]:
    """A body that can be sent once only."""
    yield b"chunk"


def claims_requests(fake: FakeAuthority) -> list[str]:
    return [r.form.get("claims", "") for r in fake.token_requests]


# -- aiohttp -------------------------------------------------------------------------------


def middleware(app: ConfidentialClientApplication, origin: str) -> Any:
    return aiohttp_auth.BearerTokenMiddleware(
        aiohttp_auth.client_credentials(app), {origin: SCOPES}
    )


async def test_aiohttp_attaches_a_token_to_the_listed_origin_only(
    servers: tuple[Downstream, Downstream],
    app: ConfidentialClientApplication,
    fake: FakeAuthority,
) -> None:
    protected, other = servers
    async with aiohttp.ClientSession(middlewares=[middleware(app, protected.base_url)]) as s:
        async with anyio.create_task_group() as group:
            for _ in range(100):
                group.start_soon(s.get, f"{protected.base_url}/data")
        await s.get(f"{other.base_url}/data")
        https_only = protected.base_url.replace("http://", "https://")
    async with aiohttp.ClientSession(middlewares=[middleware(app, https_only)]) as s:
        await s.get(f"{protected.base_url}/plain-http")
    assert len(fake.token_requests) == 1  # 100 concurrent calls, one token
    assert len(protected.seen) == 101
    assert all(a and a.startswith("Bearer ey") for a in protected.authorizations()[:100])
    assert protected.authorizations()[100] is None  # https origin, http request
    assert other.authorizations() == [None]


async def test_aiohttp_never_follows_a_redirect_with_the_token(
    servers: tuple[Downstream, Downstream], app: ConfidentialClientApplication
) -> None:
    protected, other = servers
    async with (
        aiohttp.ClientSession(middlewares=[middleware(app, protected.base_url)]) as s,
        s.get(f"{protected.base_url}/redirect") as response,
    ):
        assert response.status == 200
    assert protected.seen[0][1] is not None
    assert other.seen == [("/landed", None, b"")]


async def test_aiohttp_answers_a_claims_challenge_once(
    servers: tuple[Downstream, Downstream],
    app: ConfidentialClientApplication,
    fake: FakeAuthority,
) -> None:
    protected, _ = servers
    protected.challenges_left = 1
    async with aiohttp.ClientSession(middlewares=[middleware(app, protected.base_url)]) as s:
        async with s.post(f"{protected.base_url}/challenge", data=b"payload") as response:
            assert response.status == 200
        protected.challenges_left = 5
        async with s.post(f"{protected.base_url}/challenge", json={"a": 1}) as response:
            assert response.status == 401  # challenged again after the retry: no loop
    assert [body for _, _, body in protected.seen] == [b"payload"] * 2 + [b'{"a": 1}'] * 2
    assert claims_requests(fake) == ["", CLAIMS, CLAIMS]
    first, retried = protected.authorizations()[:2]
    assert first != retried


async def test_aiohttp_returns_other_401s_and_unreplayable_bodies_as_they_are(
    servers: tuple[Downstream, Downstream],
    app: ConfidentialClientApplication,
    fake: FakeAuthority,
) -> None:
    protected, _ = servers

    async with aiohttp.ClientSession(middlewares=[middleware(app, protected.base_url)]) as s:
        async with s.get(f"{protected.base_url}/invalid") as response:
            assert response.status == 401
        protected.challenges_left = 1
        async with s.post(f"{protected.base_url}/challenge", data=stream()) as response:
            assert response.status == 401
    assert len(protected.seen) == 2
    assert len(fake.token_requests) == 1


async def test_origins_are_checked_at_construction(app: ConfidentialClientApplication) -> None:
    source = aiohttp_auth.client_credentials(app)
    origins: Any
    for origins in (
        {"http://api.contoso.com": SCOPES},
        {"https://api.contoso.com/path": SCOPES},
        {"https://user:pw@api.contoso.com": SCOPES},
        {"https://api.contoso.com": "api://x/.default"},
        {"https://api.contoso.com": []},
        {"api.contoso.com": SCOPES},
        {},
    ):
        with pytest.raises(MsalConfigurationError):
            aiohttp_auth.BearerTokenMiddleware(source, origins)
        with pytest.raises(MsalConfigurationError):
            httpx_auth.BearerTokenAuth(source, origins)
    for module in (aiohttp_auth.BearerTokenMiddleware, httpx_auth.BearerTokenAuth):
        with pytest.raises(MsalConfigurationError):
            module(app, {"https://api.contoso.com": SCOPES})  # type: ignore[arg-type]
    for loopback in ("http://127.0.0.1:8080", "http://localhost", "http://[::1]:1"):
        aiohttp_auth.BearerTokenMiddleware(source, {loopback: SCOPES})


def test_claims_are_read_from_challenges() -> None:
    read = aiohttp_auth.claims_from_challenge
    assert read(CHALLENGE) == CLAIMS
    unpadded = base64.urlsafe_b64encode(b'{"a":1}').decode().rstrip("=")
    assert read(f'Bearer error="insufficient_claims", claims="{unpadded}"') == '{"a":1}'
    urlsafe = base64.urlsafe_b64encode(b'{"x":"\xff"}').decode().rstrip("=")
    assert read(f'Bearer error="insufficient_claims", claims="{urlsafe}"') is None  # not UTF-8
    assert read('Bearer error="invalid_token"') is None
    assert read('Bearer error="insufficient_claims"') is None
    assert read(None) is None
    assert read('Bearer error="insufficient_claims", claims="%%%"') is None
    # Both alphabets: this claims request encodes to "+" and "/" in standard base64.
    claims = '{"access_token":{"acrs":{"value":"c?>~"}}}'
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        encoded = encode(claims.encode()).decode()
        assert ("+" in encoded or "/" in encoded) or encode is base64.urlsafe_b64encode
        assert read(f'Bearer error="insufficient_claims", claims="{encoded}"') == claims


# -- httpx ---------------------------------------------------------------------------------


def auth(app: Any, origin: str) -> httpx_auth.BearerTokenAuth:
    return httpx_auth.BearerTokenAuth(httpx_auth.client_credentials(app), {origin: SCOPES})


async def test_httpx_attaches_a_token_to_the_listed_origin_only(
    servers: tuple[Downstream, Downstream],
    app: ConfidentialClientApplication,
    fake: FakeAuthority,
) -> None:
    protected, other = servers
    async with httpx.AsyncClient(auth=auth(app, protected.base_url)) as client:
        for _ in range(3):
            await client.get(f"{protected.base_url}/data")
        await client.get(f"{other.base_url}/data")
        response = await client.get(f"{protected.base_url}/redirect", follow_redirects=True)
        assert response.status_code == 200
    assert len(fake.token_requests) == 1
    assert all(a and a.startswith("Bearer ey") for a in protected.authorizations())
    assert other.authorizations() == [None, None]  # the direct call and the redirect


async def test_httpx_answers_a_claims_challenge_once_for_replayable_bodies(
    servers: tuple[Downstream, Downstream],
    app: ConfidentialClientApplication,
    fake: FakeAuthority,
) -> None:
    protected, _ = servers

    protected.challenges_left = 1
    async with httpx.AsyncClient(auth=auth(app, protected.base_url)) as client:
        response = await client.post(f"{protected.base_url}/challenge", content=b"payload")
        assert response.status_code == 200
        protected.challenges_left = 1
        response = await client.post(f"{protected.base_url}/challenge", content=stream())
        assert response.status_code == 401
        response = await client.get(f"{protected.base_url}/invalid")
        assert response.status_code == 401
    assert [body for _, _, body in protected.seen] == [b"payload", b"payload", b"chunk", b""]
    assert claims_requests(fake) == ["", CLAIMS]


def test_httpx_auth_is_for_async_clients() -> None:
    async def source(scopes: tuple[str, ...], claims_challenge: str | None) -> str:
        return "token"

    bearer = httpx_auth.BearerTokenAuth(source, {"https://api.contoso.com": SCOPES})
    with (
        httpx.Client(auth=bearer) as client,
        pytest.raises(RuntimeError, match="AsyncClient"),
    ):
        client.get("https://api.contoso.com/")


# -- token sources -------------------------------------------------------------------------


async def test_an_azure_core_credential_is_a_token_source() -> None:
    calls: list[tuple[tuple[str, ...], dict[str, Any]]] = []

    class Credential:
        async def get_token(self, *scopes: str, **options: Any) -> Any:
            calls.append((scopes, options))
            return type("AccessToken", (), {"token": f"token-{len(calls)}"})()

    source = aiohttp_auth.azure_credential(Credential())
    assert await source(("https://vault.azure.net/.default",), None) == "token-1"
    assert await source(("https://vault.azure.net/.default",), CLAIMS) == "token-2"
    assert calls == [
        (("https://vault.azure.net/.default",), {}),
        (("https://vault.azure.net/.default",), {"claims": CLAIMS}),
    ]
    with pytest.raises(MsalConfigurationError):
        aiohttp_auth.azure_credential(object())

    class Empty:
        async def get_token(self, *scopes: str, **options: Any) -> Any:
            return None

    with pytest.raises(MsalError, match="no token"):
        await aiohttp_auth.azure_credential(Empty())(("s",), None)


async def test_on_behalf_of_the_current_caller_needs_a_caller(
    app: ConfidentialClientApplication,
) -> None:
    assert aiohttp_auth.current_token() is None
    with pytest.raises(MsalError, match="protected request"):
        await aiohttp_auth.on_behalf_of(app)(("api://x/.default",), None)


async def test_a_managed_identity_is_a_token_source(
    servers: tuple[Downstream, Downstream],
) -> None:
    protected, _ = servers
    clock = VirtualClock()
    async with (
        FakeImds(clock=clock) as imds,
        ManagedIdentityClient(
            SystemAssignedManagedIdentity(), environ=imds.environ(), clock=clock
        ) as client,
    ):
        source = aiohttp_auth.managed_identity(client)
        bearer = aiohttp_auth.BearerTokenMiddleware(
            source, {protected.base_url: ["https://vault.azure.net/.default"]}
        )
        async with aiohttp.ClientSession(middlewares=[bearer]) as session:
            for _ in range(3):
                async with session.get(f"{protected.base_url}/secrets") as response:
                    assert response.status == 200
        with pytest.raises(MsalConfigurationError, match="one resource"):
            await source(("a/.default", "b/.default"), None)
    assert len(imds.requests) == 1
    assert all(a and a.startswith("Bearer ") for a in protected.authorizations())
