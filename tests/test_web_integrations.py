"""Protecting aiohttp.web, Starlette and FastAPI routes with a TokenValidator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from aiohttp import web
from fastapi import FastAPI, Security
from starlette.applications import Starlette
from starlette.authentication import requires as starlette_requires
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from aiomsal import (
    ConfidentialClientApplication,
    MsalConfigurationError,
    MsalTokenValidationError,
    TokenValidator,
)
from aiomsal.integrations import aiohttp_web, fastapi, starlette
from aiomsal.integrations._token_source import current_token
from aiomsal.testing import FakeAuthority, VirtualClock
from tests.helpers import SECRET
from tests.web_server import serve

pytestmark = pytest.mark.anyio

API = "orders-api"
CAE = {"access_token": {"acrs": {"essential": True, "value": "c1"}}}


@pytest.fixture
async def fake() -> AsyncIterator[FakeAuthority]:
    async with FakeAuthority(clock=VirtualClock()) as authority:
        authority.add_client(API, secret=SECRET)
        authority.add_user("alice@contoso.com", tenant="contoso")
        yield authority


@pytest.fixture
async def validator(fake: FakeAuthority) -> AsyncIterator[TokenValidator]:
    async with TokenValidator(API, authority=fake.authority("contoso"), clock=fake.clock) as v:
        yield v


@pytest.fixture
async def app(fake: FakeAuthority) -> AsyncIterator[ConfidentialClientApplication]:
    async with ConfidentialClientApplication(
        API, client_credential=SECRET, authority=fake.authority("contoso"), clock=fake.clock
    ) as application:
        yield application


def token(fake: FakeAuthority, **options: Any) -> str:
    options.setdefault("scopes", "Orders.Read")
    return fake.issue_access_token(f"api://{API}", user=fake.user("alice@contoso.com"), **options)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


async def check_protocol(fake: FakeAuthority, client: httpx.AsyncClient, base: str = "") -> None:
    """The answers every integration gives, by the same routes."""
    good = token(fake)
    response = await client.get(f"{base}/orders", headers=bearer(good))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["oid"] == fake.user("alice@contoso.com").oid
    assert body["current"] is True
    assert body["downstream"].startswith("ey")

    response = await client.get(f"{base}/orders")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"

    response = await client.get(f"{base}/orders", headers=bearer("garbage"))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert "garbage" not in response.text

    response = await client.get(f"{base}/orders", headers=bearer(token(fake, scopes="Other")))
    assert response.status_code == 403
    assert response.headers["www-authenticate"].startswith('Bearer error="insufficient_scope"')
    assert 'scope="Orders.Read"' in response.headers["www-authenticate"]

    daemon = fake.issue_access_token(API, roles=["Orders.Read"])
    assert (await client.get(f"{base}/daemon", headers=bearer(daemon))).status_code == 200

    capable = token(fake, claims={"xms_cc": ["cp1"]})
    response = await client.get(f"{base}/step-up", headers=bearer(capable))
    assert response.status_code == 401
    assert 'error="insufficient_claims"' in response.headers["www-authenticate"]
    assert current_token() is None  # nothing leaks out of a request
    assert len([r for r in fake.token_requests if "jwt-bearer" in r.grant_type]) == 1


# -- aiohttp.web ---------------------------------------------------------------------------


def aiohttp_app(validator: TokenValidator, app: ConfidentialClientApplication) -> web.Application:
    async def orders(request: web.Request) -> web.Response:
        caller = request[aiohttp_web.CALLER]
        downstream = await caller.acquire_token_on_behalf_of(["User.Read"])
        return web.json_response(
            {
                "oid": caller.token.object_id,
                "current": current_token() is caller.token,
                "downstream": downstream.access_token[:2],
            }
        )

    async def daemon(request: web.Request) -> web.Response:
        return web.json_response({"app": request[aiohttp_web.CALLER].token.is_app_only})

    async def step_up(request: web.Request) -> web.Response:
        raise validator.claims_challenge(request[aiohttp_web.CALLER].token, CAE)

    async def public(request: web.Request) -> web.Response:
        return web.json_response({"anonymous": aiohttp_web.CALLER not in request})

    web_app = web.Application()
    aiohttp_web.setup(web_app, validator, application=app, require_token=False)
    web_app.router.add_get("/orders", aiohttp_web.requires(scopes=["Orders.Read"])(orders))
    web_app.router.add_get(
        "/daemon", aiohttp_web.requires(scopes=["Orders.Read"], roles=["Orders.Read"])(daemon)
    )
    web_app.router.add_get("/step-up", aiohttp_web.requires()(step_up))
    web_app.router.add_get("/public", public)
    return web_app


async def test_aiohttp_web(
    fake: FakeAuthority, validator: TokenValidator, app: ConfidentialClientApplication
) -> None:
    runner, base = await serve(aiohttp_app(validator, app))
    try:
        async with httpx.AsyncClient() as client:
            await check_protocol(fake, client, base)
            response = await client.get(f"{base}/public")
            assert response.json() == {"anonymous": True}
            response = await client.get(f"{base}/public", headers=bearer("garbage"))
            assert response.status_code == 401  # a token that is there must be valid
    finally:
        await runner.cleanup()


def test_aiohttp_web_requirements_are_lists() -> None:
    with pytest.raises(MsalConfigurationError):
        aiohttp_web.requires(scopes="Orders.Read")


async def test_aiohttp_web_can_require_a_token_everywhere(
    fake: FakeAuthority, validator: TokenValidator
) -> None:
    async def public(request: web.Request) -> web.Response:
        return web.json_response({})

    web_app = web.Application()
    aiohttp_web.setup(web_app, validator)
    web_app.router.add_get("/public", public)
    runner, base = await serve(web_app)
    try:
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{base}/public")).status_code == 401
            ok = await client.get(f"{base}/public", headers=bearer(token(fake)))
            assert ok.status_code == 200
    finally:
        await runner.cleanup()


# -- Starlette -----------------------------------------------------------------------------


def starlette_app(validator: TokenValidator, app: ConfidentialClientApplication) -> Starlette:
    async def orders(request: Request) -> JSONResponse:
        caller = starlette.require(request, scopes=["Orders.Read"])
        downstream = await caller.acquire_token_on_behalf_of(["User.Read"])
        return JSONResponse(
            {
                "oid": caller.token.object_id,
                "current": current_token() is caller.token,
                "downstream": downstream.access_token[:2],
            }
        )

    async def daemon(request: Request) -> JSONResponse:
        caller = starlette.require(request, scopes=["Orders.Read"], roles=["Orders.Read"])
        return JSONResponse({"app": caller.token.is_app_only})

    async def step_up(request: Request) -> JSONResponse:
        raise validator.claims_challenge(starlette.require(request).token, CAE)

    @starlette_requires("Orders.Read")
    async def decorated(request: Request) -> JSONResponse:
        return JSONResponse({"user": request.user.display_name})

    return Starlette(
        routes=[
            Route("/orders", orders),
            Route("/daemon", daemon),
            Route("/step-up", step_up),
            Route("/decorated", decorated),
        ],
        middleware=[
            Middleware(
                starlette.TokenAuthenticationMiddleware, validator=validator, application=app
            )
        ],
        exception_handlers={MsalTokenValidationError: starlette.token_error_handler},
    )


def asgi_client(asgi: Callable[..., Any]) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(asgi), base_url="http://api")


async def test_starlette(
    fake: FakeAuthority, validator: TokenValidator, app: ConfidentialClientApplication
) -> None:
    async with asgi_client(starlette_app(validator, app)) as client:
        await check_protocol(fake, client)
        response = await client.get("/decorated", headers=bearer(token(fake)))
        assert response.json() == {"user": "alice@contoso.com"}


# -- FastAPI -------------------------------------------------------------------------------


def fastapi_app(validator: TokenValidator, app: ConfidentialClientApplication) -> FastAPI:
    scheme = fastapi.TokenBearer(
        validator, application=app, scopes={"Orders.Read": "Read the orders"}
    )
    api = FastAPI(exception_handlers={MsalTokenValidationError: fastapi.token_error_handler})

    @api.get("/orders")
    async def orders(
        caller: fastapi.Caller = Security(scheme, scopes=["Orders.Read"]),  # noqa: B008
    ) -> dict[str, Any]:
        downstream = await caller.acquire_token_on_behalf_of(["User.Read"])
        return {
            "oid": caller.token.object_id,
            "current": current_token() is caller.token,
            "downstream": downstream.access_token[:2],
        }

    @api.get("/daemon")
    async def daemon(
        caller: fastapi.Caller = Security(scheme, scopes=["Orders.Read"]),  # noqa: B008
    ) -> dict[str, Any]:
        return {"app": caller.token.is_app_only}

    @api.get("/step-up")
    async def step_up(caller: fastapi.Caller = Security(scheme)) -> None:  # noqa: B008
        raise validator.claims_challenge(caller.token, CAE)

    optional = fastapi.TokenBearer(validator, auto_error=False, scheme_name="optional")

    @api.get("/maybe")
    async def maybe(
        caller: fastapi.Caller | None = Security(optional),  # noqa: B008
    ) -> dict[str, bool]:
        return {"anonymous": caller is None}

    return api


async def test_fastapi(
    fake: FakeAuthority, validator: TokenValidator, app: ConfidentialClientApplication
) -> None:
    async with asgi_client(fastapi_app(validator, app)) as client:
        await check_protocol(fake, client)
        assert (await client.get("/maybe")).json() == {"anonymous": True}


async def test_fastapi_routes_show_their_scopes_in_the_openapi_document(
    fake: FakeAuthority, validator: TokenValidator, app: ConfidentialClientApplication
) -> None:
    document = fastapi_app(validator, app).openapi()
    scheme = document["components"]["securitySchemes"]["aiomsal"]
    flow = scheme["flows"]["authorizationCode"]
    assert scheme["type"] == "oauth2"
    assert flow["authorizationUrl"] == f"{fake.authority('contoso')}/oauth2/v2.0/authorize"
    assert flow["scopes"] == {"Orders.Read": "Read the orders"}
    assert document["paths"]["/orders"]["get"]["security"] == [{"aiomsal": ["Orders.Read"]}]
