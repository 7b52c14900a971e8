"""The typed API meets MSAL habits where that costs nothing: MSAL-shaped dicts,
dict accounts and flows, MSAL's positional orders and its ``None`` defaults."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import anyio
import pytest

from aiomsal import (
    Account,
    AuthenticationResult,
    ConfidentialClientApplication,
    MsalConfigurationError,
    PublicClientApplication,
)
from aiomsal.testing import FakeAuthority, VirtualClock
from tests.helpers import SECRET, wait_until

pytestmark = pytest.mark.anyio

DAEMON = "nightly-daemon"
PUBLIC = "desktop-tool"
ALICE = "alice@contoso.com"
USER_READ = ["User.Read"]
GRAPH_DEFAULT = ["https://graph.microsoft.com/.default"]


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
async def fake(clock: VirtualClock) -> AsyncIterator[FakeAuthority]:
    async with FakeAuthority(clock=clock) as authority:
        authority.add_client(DAEMON, secret=SECRET)
        authority.add_client(PUBLIC, redirect_uris=["http://localhost"])
        authority.add_user(ALICE, password="alice-pw", tenant="contoso")
        yield authority


@pytest.fixture
async def public(
    fake: FakeAuthority, clock: VirtualClock
) -> AsyncIterator[PublicClientApplication]:
    async with PublicClientApplication(
        PUBLIC, fake.authority("organizations"), clock=clock, timeout=None,
        client_capabilities=None,
    ) as app:
        yield app


async def test_confidential_client_takes_msal_positional_order(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    async with ConfidentialClientApplication(
        DAEMON, SECRET, fake.authority("contoso"), clock=clock
    ) as app:
        assert app.authority.tenant == "contoso"
        result = await app.acquire_token_for_client(GRAPH_DEFAULT)
    fresh = result.to_dict()
    assert json.loads(json.dumps(fresh)) == fresh
    assert set(fresh) == {
        "access_token", "token_type", "expires_in", "ext_expires_in",
        "token_source", "refresh_on",
    }
    assert fresh["token_source"] == "identity_provider"
    assert fresh["expires_in"] == fake.token_lifetime == result.expires_in
    assert "access_token" not in repr(result) and result.access_token not in repr(result)


async def test_cache_hit_dict_is_msal_cache_shape_and_counts_down(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    async with ConfidentialClientApplication(
        DAEMON, SECRET, fake.authority("contoso"), clock=clock
    ) as app:
        await app.acquire_token_for_client(GRAPH_DEFAULT)
        hit = await app.acquire_token_for_client(GRAPH_DEFAULT)
        again = await app.acquire_token_for_client(GRAPH_DEFAULT)
    assert again is hit  # the prepared result: a hit allocates nothing
    assert hit.expires_in is None and hit.refresh_token is None
    cached = hit.to_dict(now=clock.time() + 100)
    assert set(cached) == {"access_token", "token_type", "expires_in", "token_source", "refresh_on"}
    assert cached["expires_in"] == hit.expires_on - int(clock.time()) - 100
    assert cached["token_source"] == "cache"


async def test_user_result_dict_has_msal_user_fields(public: PublicClientApplication) -> None:
    result = await public.acquire_token_by_username_password(ALICE, "alice-pw", USER_READ)
    data = result.to_dict()
    assert json.loads(json.dumps(data)) == data
    for key in ("refresh_token", "id_token", "client_info", "id_token_claims", "scope"):
        assert key in data
    assert data["id_token_claims"]["preferred_username"] == ALICE
    assert "offline_access" in data["scope"].split()
    assert result.refresh_token is not None and result.refresh_token not in repr(result)
    assert result.client_info is not None and result.client_info not in repr(result)


def test_account_dict_round_trip_and_bad_dicts() -> None:
    account = Account("uid.utid", "login.microsoftonline.com", "utid", ALICE, "uid")
    data = account.to_dict()
    assert data == {
        "home_account_id": "uid.utid",
        "environment": "login.microsoftonline.com",
        "realm": "utid",
        "local_account_id": "uid",
        "username": ALICE,
        "authority_type": "MSSTS",
    }
    assert Account.from_dict(dict(data, account_source="password")) == account
    assert Account("h", "e", "r").to_dict()["username"] == ""
    for bad in ({}, {"home_account_id": "h"}, {"home_account_id": 1, "environment": "e"}, [1]):
        with pytest.raises(MsalConfigurationError):
            Account.from_dict(bad)  # type: ignore[arg-type]


async def test_dict_accounts_work_in_silent_and_remove(public: PublicClientApplication) -> None:
    await public.acquire_token_by_username_password(ALICE, "alice-pw", USER_READ)
    [account] = await public.get_accounts()
    as_dict = json.loads(json.dumps(account.to_dict()))
    hit = await public.acquire_token_silent(USER_READ, as_dict)
    assert hit is not None and hit.token_source == "cache"
    # MSAL's third positional place: the application's own authority is fine.
    same = await public.acquire_token_silent(USER_READ, as_dict, public.authority.url)
    assert same is hit
    with pytest.raises(MsalConfigurationError, match="tenant="):
        await public.acquire_token_silent(
            USER_READ, as_dict, "https://login.microsoftonline.com/fabrikam"
        )
    assert await public.acquire_token_silent(USER_READ, {}) is None
    await public.remove_account(as_dict)
    assert await public.get_accounts() == []


async def test_authorization_url_second_positional_is_login_hint(
    public: PublicClientApplication,
) -> None:
    url = await public.get_authorization_request_url(USER_READ, ALICE)
    query = parse_qs(urlsplit(url).query)
    assert query["login_hint"] == [ALICE]
    assert "redirect_uri" not in query
    url = await public.get_authorization_request_url(
        USER_READ, ALICE, "the-state", "http://localhost"
    )
    query = parse_qs(urlsplit(url).query)
    assert query["state"] == ["the-state"]
    assert query["redirect_uri"] == ["http://localhost"]


async def test_none_defaults_are_accepted(fake: FakeAuthority) -> None:
    async with PublicClientApplication(
        PUBLIC, fake.authority("organizations"), timeout=None, client_capabilities=None,
        instance_discovery=None,
    ) as app:
        assert app.client_capabilities == ()
        await app.get_authorization_request_url(USER_READ)
    # instance_discovery=None is MSAL's "on": the fake's discovery endpoint was asked.
    assert fake.discovery_requests == 2
    for bad in (
        {"timeout": "10"}, {"timeout": 0}, {"timeout": float("inf")}, {"timeout": True},
        {"client_capabilities": 5},
    ):
        with pytest.raises(MsalConfigurationError):
            PublicClientApplication(PUBLIC, fake.authority("organizations"), **bad)


async def test_device_flow_from_its_dict_and_a_clear_error_without_scopes(
    public: PublicClientApplication, fake: FakeAuthority, clock: VirtualClock
) -> None:
    with pytest.raises(MsalConfigurationError, match="needs scopes"):
        await public.initiate_device_flow()
    flow = await public.initiate_device_flow(USER_READ)
    data = json.loads(json.dumps(flow.to_dict()))
    assert data["user_code"] in data["message"]
    results: list[AuthenticationResult] = []

    async def poll() -> None:
        results.append(await public.acquire_token_by_device_flow(data))

    async with anyio.create_task_group() as group:
        group.start_soon(poll)
        fake.approve_device_code(flow.user_code, ALICE)
        await wait_until(lambda: clock.sleepers == 1)
        await clock.advance(flow.interval)
    [result] = results
    assert result.account is not None and result.account.username == ALICE
    assert result.scopes == ("User.Read",)

