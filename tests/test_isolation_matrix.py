"""No token ever crosses a boundary, whichever way the cache is shared.

Every boundary a token must not cross — client id, tenant, generic OpenID
Connect issuer (same host and another path, another port, a path that
differs in case), account, incoming assertion, scope set (a prefix; case per
authority kind) and claims challenge — times every way two callers can share
tokens: one application, two applications over one
:class:`SerializableTokenCache`, over one :class:`FileCacheStorage` file, and
over one Redis. Side A gets a token; side B, across the boundary, must send
its own request and never be served A's token; then each side is served its
own again. The positive controls (Entra's scopes that differ only in case)
must share.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import jwt
import pytest

from aiomsal import (
    AuthenticationResult,
    ConfidentialClientApplication,
    FileCacheStorage,
    PublicClientApplication,
    RedisCacheStorage,
    SerializableTokenCache,
)
from aiomsal.testing import FakeAuthority
from tests.oidc_front import OidcFront
from tests.redis_server import RedisServer

pytestmark = pytest.mark.anyio

SECRET = "isolation-secret"
CLIENTS = ("client-one", "client-two")
PUBLIC = "public-client"
OTHER_PUBLIC = "public-client-two"
API = "middle-api"
ALICE = "alice@contoso.com"
BOB = "bob@contoso.com"
PASSWORD = "pw"
MODES = ("one_app", "shared_cache", "file", "redis")
_prefixes = itertools.count()


@dataclass
class World:
    fake: FakeAuthority
    front: OidcFront
    other_port: OidcFront
    tmp_path: Path
    redis_url: str
    assertions: dict[str, str]
    accounts: dict[str, Any]


@pytest.fixture
async def world(tmp_path: Path, shared_redis: RedisServer) -> AsyncIterator[World]:
    async with FakeAuthority() as fake, OidcFront(fake) as front, OidcFront(fake) as other:
        for client in CLIENTS:
            fake.add_client(client, secret=SECRET)
        fake.add_client(API, secret=SECRET)
        fake.add_client(PUBLIC, redirect_uris=["http://localhost"])
        fake.add_client(OTHER_PUBLIC, redirect_uris=["http://localhost"])
        fake.add_user(ALICE, password=PASSWORD, tenant="contoso")
        fake.add_user(BOB, password=PASSWORD, tenant="contoso")
        assertions = {}
        async with PublicClientApplication(PUBLIC, authority=fake.authority("contoso")) as app:
            for user in (ALICE, BOB):
                signed_in = await app.acquire_token_by_username_password(
                    user, PASSWORD, [f"api://{API}/access_as_user"]
                )
                assertions[user] = signed_in.access_token
        fake.token_requests.clear()
        yield World(fake, front, other, tmp_path, shared_redis.url, assertions, {})


# -- the sides of a boundary -------------------------------------------------------------

Call = Callable[[Any, World], Awaitable[AuthenticationResult | None]]


@dataclass(frozen=True)
class Config:
    """How one side's application is made."""

    kind: str  # "confidential" or "public"
    client_id: str
    authority: Callable[[World], dict[str, str]]


def entra(tenant: str) -> Callable[[World], dict[str, str]]:
    return lambda w: {"authority": w.fake.authority(tenant)}


def oidc(path: str, *, other_port: bool = False) -> Callable[[World], dict[str, str]]:
    return lambda w: {"oidc_authority": (w.other_port if other_port else w.front).issuer(path)}


def client_token(scope: str, **kwargs: str) -> Call:
    async def call(app: Any, world: World) -> AuthenticationResult:
        result: AuthenticationResult = await app.acquire_token_for_client([scope], **kwargs)
        return result
    return call


def on_behalf_of(user: str) -> Call:
    async def call(app: Any, world: World) -> AuthenticationResult:
        result: AuthenticationResult = await app.acquire_token_on_behalf_of(
            world.assertions[user], ["https://graph.microsoft.com/User.Read"]
        )
        return result
    return call


def signed_in(user: str, scopes: tuple[str, ...]) -> Call:
    """Silent for ``user`` (signed in by the test first, through side A's application)."""
    async def call(app: Any, world: World) -> AuthenticationResult | None:
        accounts = [a for a in await app.get_accounts() if a.username == user]
        assert accounts, f"{user} is not listed by get_accounts()"
        result: AuthenticationResult | None = await app.acquire_token_silent(
            list(scopes), accounts[0]
        )
        return result
    return call


def signed_out(user: str, scopes: tuple[str, ...]) -> Call:
    """Another client: the user signed in to side A is not listed, and silent finds nothing.

    So the user signs in to this client too; after that, silent serves its own token.
    """
    async def call(app: Any, world: World) -> AuthenticationResult | None:
        own = await app.get_accounts()
        if own:
            result: AuthenticationResult | None = await app.acquire_token_silent(
                list(scopes), own[0]
            )
            return result
        assert world.accounts[user] is not None
        assert await app.acquire_token_silent(list(scopes), world.accounts[user]) is None
        signed: AuthenticationResult = await app.acquire_token_by_username_password(
            user, PASSWORD, list(scopes)
        )
        return signed
    return call


def signed_in_with_claims(user: str, scopes: tuple[str, ...]) -> Call:
    async def call(app: Any, world: World) -> AuthenticationResult | None:
        [account] = [a for a in await app.get_accounts() if a.username == user]
        result: AuthenticationResult | None = await app.acquire_token_silent(
            list(scopes), account, claims_challenge='{"access_token": {"nbf": {"essential": true}}}'
        )
        return result
    return call


@dataclass(frozen=True)
class Boundary:
    name: str
    a: Config
    b: Config
    call_a: Call
    call_b: Call
    #: Users to sign in (through side A's application) before the calls.
    sign_in: tuple[str, ...] = ()
    #: A positive control: B must be served A's token, without a request.
    shared: bool = False
    #: B's call never reuses a token (a claims challenge): repeating it sends again.
    fresh_each_time: bool = False
    #: Whether B must send a request of its own (not when both sides' tokens were
    #: fetched by the sign-ins before: then each must be served its own).
    own_request: bool = True

    @property
    def same_app(self) -> bool:
        return self.a == self.b


CONTOSO = Config("confidential", CLIENTS[0], entra("contoso"))
REALM_A = Config("confidential", CLIENTS[0], oidc("realms/a"))
WEB_API = Config("confidential", API, entra("contoso"))
DESKTOP = Config("public", PUBLIC, entra("contoso"))
USER_READ = ("User.Read",)
BOUNDARIES = [
    Boundary("client_id", CONTOSO, Config("confidential", CLIENTS[1], entra("contoso")),
             client_token("api://res/.default"), client_token("api://res/.default")),
    Boundary("tenant", CONTOSO, Config("confidential", CLIENTS[0], entra("fabrikam")),
             client_token("api://res/.default"), client_token("api://res/.default")),
    Boundary("tenant_override", CONTOSO, CONTOSO,
             client_token("api://res/.default"),
             client_token("api://res/.default", tenant="fabrikam")),
    Boundary("oidc_keycloak_realms", REALM_A,
             Config("confidential", CLIENTS[0], oidc("realms/b")),
             client_token("api://res/.default"), client_token("api://res/.default")),
    Boundary("oidc_okta_servers", Config("confidential", CLIENTS[0], oidc("oauth2/serverA")),
             Config("confidential", CLIENTS[0], oidc("oauth2/serverB")),
             client_token("api://res/.default"), client_token("api://res/.default")),
    Boundary("oidc_other_port", REALM_A,
             Config("confidential", CLIENTS[0], oidc("realms/a", other_port=True)),
             client_token("api://res/.default"), client_token("api://res/.default")),
    Boundary("oidc_path_case", Config("confidential", CLIENTS[0], oidc("realms/Tenant")),
             Config("confidential", CLIENTS[0], oidc("realms/tenant")),
             client_token("api://res/.default"), client_token("api://res/.default")),
    Boundary("oidc_host_vs_sub_path", Config("confidential", CLIENTS[0], oidc("realms")),
             Config("confidential", CLIENTS[0], oidc("realms/a")),
             client_token("api://res/.default"), client_token("api://res/.default")),
    Boundary("scope_prefix", CONTOSO, CONTOSO,
             client_token("api://res/.default"), client_token("api://res/sub/.default")),
    Boundary("scope_string_prefix", CONTOSO, CONTOSO,
             client_token("api://re/.default"), client_token("api://res/.default")),
    Boundary("scope_case_oidc", REALM_A, REALM_A,
             client_token("api://App/.default"), client_token("api://app/.default")),
    Boundary("scope_case_entra_shares", CONTOSO, CONTOSO,
             client_token("api://App/.default"), client_token("api://app/.default"),
             shared=True),
    Boundary("claims_challenge", CONTOSO, CONTOSO,
             client_token("api://res/.default"),
             client_token("api://res/.default", claims_challenge='{"access_token": {}}'),
             fresh_each_time=True),
    Boundary("assertion", WEB_API, WEB_API,
             on_behalf_of(ALICE), on_behalf_of(BOB)),
    Boundary("account", DESKTOP, DESKTOP,
             signed_in(ALICE, USER_READ), signed_in(BOB, USER_READ), sign_in=(ALICE, BOB),
             own_request=False),
    Boundary("account_other_client", DESKTOP,
             Config("public", OTHER_PUBLIC, entra("contoso")),
             signed_in(ALICE, USER_READ), signed_out(ALICE, USER_READ), sign_in=(ALICE,),
             own_request=False),
    Boundary("user_scope_set_prefix", DESKTOP, DESKTOP,
             signed_in(ALICE, USER_READ), signed_in(ALICE, ("User.Read", "Mail.Read")),
             sign_in=(ALICE,)),
    Boundary("user_claims_challenge", DESKTOP, DESKTOP,
             signed_in(ALICE, USER_READ), signed_in_with_claims(ALICE, USER_READ),
             sign_in=(ALICE,), fresh_each_time=True),
]

CASES = [
    pytest.param(boundary, mode, id=f"{boundary.name}-{mode}")
    for boundary in BOUNDARIES
    for mode in MODES
    if mode != "one_app" or boundary.same_app
]


async def make_apps(
    stack: AsyncExitStack, boundary: Boundary, mode: str, world: World
) -> tuple[Any, Any]:
    shared = SerializableTokenCache()
    prefix = f"isolation-{next(_prefixes)}:"

    def options() -> dict[str, Any]:
        if mode == "shared_cache":
            return {"token_cache": shared}
        if mode == "file":
            return {"cache_storage": FileCacheStorage(world.tmp_path / "cache.bin")}
        if mode == "redis":
            return {"cache_storage": RedisCacheStorage(world.redis_url, prefix=prefix)}
        return {}

    async def make(config: Config) -> Any:
        common = {**config.authority(world), **options()}
        if config.kind == "public":
            app: Any = PublicClientApplication(config.client_id, **common)
        else:
            app = ConfidentialClientApplication(
                config.client_id, client_credential=SECRET, **common
            )
        return await stack.enter_async_context(app)

    first = await make(boundary.a)
    second = first if mode == "one_app" else await make(boundary.b)
    return first, second


def oid(result: AuthenticationResult) -> str:
    return str(jwt.decode(result.access_token, options={"verify_signature": False})["oid"])


@pytest.mark.parametrize(("boundary", "mode"), CASES)
async def test_no_token_crosses(boundary: Boundary, mode: str, world: World) -> None:
    fake = world.fake
    with anyio.fail_after(30):
        async with AsyncExitStack() as stack:
            app_a, app_b = await make_apps(stack, boundary, mode, world)
            users = {}
            for user in boundary.sign_in:
                result = await app_a.acquire_token_by_username_password(
                    user, PASSWORD, list(USER_READ)
                )
                users[user] = oid(result)
                world.accounts[user] = result.account
            a = await boundary.call_a(app_a, world)
            assert a is not None
            sent = len(fake.token_requests)
            b = await boundary.call_b(app_b, world)
            assert b is not None
            if boundary.shared:
                assert b.access_token == a.access_token
                assert len(fake.token_requests) == sent
                return
            assert b.access_token != a.access_token
            if boundary.own_request:
                assert len(fake.token_requests) == sent + 1  # B asked for its own
            if boundary.name == "account":
                assert oid(a) == users[ALICE] and oid(b) == users[BOB]
            sent = len(fake.token_requests)
            again_a = await boundary.call_a(app_a, world)
            again_b = await boundary.call_b(app_b, world)
            assert again_a is not None and again_b is not None
            if boundary.fresh_each_time:
                # A challenge is never answered from the cache (its answer then is the
                # key's token, as in MSAL, so A may be served it).
                assert again_b.access_token not in (a.access_token, b.access_token)
            else:
                assert again_a.access_token != b.access_token
                assert again_b.access_token != a.access_token
                assert again_a.access_token == a.access_token
                if boundary.own_request or boundary.name == "account":
                    assert again_b.access_token == b.access_token
                    assert len(fake.token_requests) == sent


def test_the_matrix_covers_every_boundary_in_every_mode() -> None:
    assert len(CASES) == 64
    assert {mode for _, mode in (c.values for c in CASES)} == set(MODES)


def test_accounts_are_listed_per_client_and_per_family() -> None:
    """get_accounts()' rule: a token of the client id, or a refresh token of its FOCI family."""
    from aiomsal._cache._entries import Identity, PartitionKey, RefreshTokenEntry
    from aiomsal._cache._user_store import UserTokenStore
    from aiomsal._result import Account

    store = UserTokenStore()
    env = "login.microsoftonline.com"
    for home, client, family in (
        ("alice.t", "office", "1"), ("bob.t", "teams", "1"), ("carol.t", "other", None),
    ):
        store.put_account(Identity(home, Account(home, env, "t", home, home, "MSSTS"), "t"), env)
        store.put_refresh_token(RefreshTokenEntry(
            PartitionKey(env, client, home, ""), "rt", "User.Read", 0, home, family
        ))
    names = {c: sorted(a.username or "" for a in store.accounts(c))
             for c in ("office", "teams", "other", "stranger")}
    assert names == {
        "office": ["alice.t", "bob.t"],  # family "1": its members' accounts too
        "teams": ["alice.t", "bob.t"],
        "other": ["carol.t"],
        "stranger": [],
    }
    assert len(store.accounts()) == 3
