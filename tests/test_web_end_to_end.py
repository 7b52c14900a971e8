"""End to end: protected web APIs calling a protected downstream API on behalf of their callers.

A FastAPI app and an aiohttp.web app validate their callers with aiomsal and
call a downstream loopback API (an aiohttp.web app that validates with aiomsal
too) through the aiohttp client middleware, on behalf of each caller.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import anyio
import httpx
import pytest
from aiohttp import web
from fastapi import FastAPI, Security

from aiomsal import ConfidentialClientApplication, TokenValidator
from aiomsal.integrations import aiohttp_web, fastapi
from aiomsal.integrations.aiohttp import BearerTokenMiddleware, on_behalf_of
from aiomsal.testing import FakeAuthority, VirtualClock
from tests.helpers import SECRET
from tests.web_server import serve

pytestmark = pytest.mark.anyio

MIDDLE = "orders-api"
DOWNSTREAM = "inventory-api"
DOWNSTREAM_SCOPES = [f"api://{DOWNSTREAM}/Inventory.Read"]
USERS = 50
OBO = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLAIMS = '{"access_token":{"nbf":{"essential":true,"value":"1800000000"}}}'


@dataclass
class Downstream:
    """The inventory API: records its callers; challenges revoked tokens (CAE)."""

    url: str = ""
    callers: list[str] = field(default_factory=list)
    #: The tokens it accepted.
    tokens: list[str] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)


def downstream_app(downstream: Downstream, validator: TokenValidator) -> web.Application:
    @aiohttp_web.requires(scopes=["Inventory.Read"])
    async def inventory(request: web.Request) -> web.Response:
        caller = request[aiohttp_web.CALLER]
        if caller.token.access_token in downstream.revoked:
            raise validator.claims_challenge(caller.token, CLAIMS)
        downstream.callers.append(caller.token.object_id or "")
        downstream.tokens.append(caller.token.access_token)
        return web.json_response({"oid": caller.token.object_id, "items": 3})

    app = web.Application()
    aiohttp_web.setup(app, validator)
    app.router.add_get("/inventory", inventory)
    return app


@dataclass
class World:
    fake: FakeAuthority
    downstream: Downstream
    #: Sends a GET to the middle tier: (path, headers) -> (status, headers, json).
    call: Callable[[str, dict[str, str]], Awaitable[tuple[int, dict[str, str], Any]]]

    def obo_grants(self) -> list[dict[str, str]]:
        return [dict(r.form) for r in self.fake.token_requests if r.grant_type == OBO]

    def user_token(self, n: int, **options: Any) -> str:
        options.setdefault("scopes", "Orders.Read")
        user = self.fake.user(f"user{n}@contoso.com")
        return self.fake.issue_access_token(f"api://{MIDDLE}", user=user, **options)


def fastapi_middle(
    validator: TokenValidator, session: aiohttp.ClientSession, downstream: Downstream
) -> FastAPI:
    scheme = fastapi.TokenBearer(validator, scopes={"Orders.Read": "Read orders"})
    api = FastAPI()

    @api.get("/orders")
    async def orders(
        caller: fastapi.Caller = Security(scheme, scopes=["Orders.Read"]),  # noqa: B008
    ) -> dict[str, Any]:
        async with session.get(f"{downstream.url}/inventory") as response:
            return {"status": response.status, "downstream": await response.json()}

    return api


def aiohttp_middle(
    validator: TokenValidator, session: aiohttp.ClientSession, downstream: Downstream
) -> web.Application:
    @aiohttp_web.requires(scopes=["Orders.Read"])
    async def orders(request: web.Request) -> web.Response:
        async with session.get(f"{downstream.url}/inventory") as response:
            body = {"status": response.status, "downstream": await response.json()}
        return web.json_response(body)

    app = web.Application()
    aiohttp_web.setup(app, validator)
    app.router.add_get("/orders", orders)
    return app


@asynccontextmanager
async def world(kind: str) -> AsyncIterator[World]:
    clock = VirtualClock()
    async with FakeAuthority(clock=clock) as fake:
        fake.add_client(MIDDLE, secret=SECRET)
        for n in range(USERS):
            fake.add_user(f"user{n}@contoso.com", tenant="contoso")
        authority = fake.authority("contoso")
        downstream = Downstream()
        async with (
            TokenValidator(DOWNSTREAM, authority=authority, clock=clock) as down_validator,
            TokenValidator(MIDDLE, authority=authority, clock=clock) as validator,
            ConfidentialClientApplication(
                MIDDLE,
                client_credential=SECRET,
                authority=authority,
                clock=clock,
                client_capabilities=["cp1"],
            ) as app,
        ):
            down_runner, downstream.url = await serve(downstream_app(downstream, down_validator))
            middleware = BearerTokenMiddleware(
                on_behalf_of(app), {downstream.url: DOWNSTREAM_SCOPES}
            )
            try:
                async with aiohttp.ClientSession(middlewares=[middleware]) as session:
                    if kind == "fastapi":
                        api = fastapi_middle(validator, session, downstream)
                        transport = httpx.ASGITransport(api)
                        async with httpx.AsyncClient(
                            transport=transport, base_url="http://middle"
                        ) as client:
                            yield World(fake, downstream, _httpx_call(client))
                    else:
                        runner, url = await serve(aiohttp_middle(validator, session, downstream))
                        try:
                            async with httpx.AsyncClient(base_url=url) as client:
                                yield World(fake, downstream, _httpx_call(client))
                        finally:
                            await runner.cleanup()
            finally:
                await down_runner.cleanup()


def _httpx_call(
    client: httpx.AsyncClient,
) -> Callable[[str, dict[str, str]], Awaitable[tuple[int, dict[str, str], Any]]]:
    async def call(path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        response = await client.get(path, headers=headers)
        return response.status_code, dict(response.headers), response.json()

    return call


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(params=["fastapi", "aiohttp.web"])
async def setup(request: pytest.FixtureRequest) -> AsyncIterator[World]:
    async with world(request.param) as w:
        yield w


async def test_200_concurrent_requests_from_50_users_send_50_on_behalf_of_grants(
    setup: World,
) -> None:
    tokens = [setup.user_token(n) for n in range(USERS)]
    answers: list[tuple[int, str, str]] = []

    async def request(n: int) -> None:
        status, _, body = await setup.call("/orders", bearer(tokens[n]))
        expected = setup.fake.user(f"user{n}@contoso.com").oid
        answers.append((status, body["downstream"]["oid"], expected))

    async with anyio.create_task_group() as group:
        for _ in range(4):
            for n in range(USERS):
                group.start_soon(request, n)
    assert len(answers) == 200
    assert all(status == 200 and seen == expected for status, seen, expected in answers)
    assert len(setup.obo_grants()) == USERS
    assert len(setup.downstream.callers) == 200


async def test_a_downstream_claims_challenge_is_answered_and_retried(setup: World) -> None:
    token = setup.user_token(7)
    assert (await setup.call("/orders", bearer(token)))[0] == 200
    # The downstream revokes the token it got (CAE): the next call is challenged.
    assert len(setup.obo_grants()) == 1
    setup.downstream.revoked.update(setup.downstream.tokens)
    status, _, body = await setup.call("/orders", bearer(token))
    assert (status, body["status"]) == (200, 200)
    grants = setup.obo_grants()
    assert len(grants) == 2
    assert '"nbf"' in grants[1].get("claims", "") and "cp1" in grants[1]["claims"]


async def test_missing_invalid_and_insufficient_tokens_get_the_right_answers(
    setup: World,
) -> None:
    status, headers, _ = await setup.call("/orders", {})
    assert status == 401 and headers["www-authenticate"] == "Bearer"
    status, headers, _ = await setup.call("/orders", bearer("not.a.token"))
    assert status == 401 and headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    status, headers, _ = await setup.call("/orders", bearer(setup.user_token(1, lifetime=-600)))
    assert status == 401 and "expired" in headers["www-authenticate"]
    graph = setup.fake.issue_access_token(
        "https://graph.microsoft.com", user=setup.fake.user("user1@contoso.com"), scopes="x"
    )
    status, headers, _ = await setup.call("/orders", bearer(graph))
    assert status == 401 and "another audience" in headers["www-authenticate"]
    status, headers, _ = await setup.call("/orders", bearer(setup.user_token(1, scopes="Other")))
    assert status == 403
    assert headers["www-authenticate"].startswith('Bearer error="insufficient_scope"')
    assert setup.obo_grants() == [] and setup.downstream.callers == []
