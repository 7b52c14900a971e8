"""aiomsal.msal: MSAL Python's names, orders and dicts over aiomsal's typed core."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import anyio
import pytest

import aiomsal.msal as msal
from aiomsal import FileCacheStorage, MsalConfigurationError, MsalSignInError
from aiomsal.testing import FakeAuthority, VirtualClock
from tests.helpers import SECRET, wait_until

pytestmark = pytest.mark.anyio

DAEMON = "nightly-daemon"
WEB = "web-app"
PUBLIC = "desktop-tool"
CALLBACK = "http://localhost/callback"
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
        authority.add_client(WEB, secret=SECRET, redirect_uris=[CALLBACK])
        authority.add_client(PUBLIC, redirect_uris=["http://localhost"])
        authority.add_user(ALICE, password="alice-pw", tenant="contoso")
        yield authority


@pytest.fixture
async def daemon(
    fake: FakeAuthority, clock: VirtualClock
) -> AsyncIterator[msal.ConfidentialClientApplication]:
    async with msal.ConfidentialClientApplication(
        DAEMON, SECRET, fake.authority("contoso"), clock=clock
    ) as app:
        yield app


@pytest.fixture
async def public(
    fake: FakeAuthority, clock: VirtualClock
) -> AsyncIterator[msal.PublicClientApplication]:
    async with msal.PublicClientApplication(
        PUBLIC, authority=fake.authority("organizations"), clock=clock
    ) as app:
        yield app


async def browser(url: str) -> dict[str, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, allow_redirects=False) as response,
    ):
        assert response.status == 302
        return dict(parse_qsl(urlsplit(response.headers["Location"]).query))


async def test_client_credentials_dicts_and_coalescing_underneath(
    daemon: msal.ConfidentialClientApplication, fake: FakeAuthority
) -> None:
    results: list[dict[str, object]] = []

    async def call() -> None:
        results.append(await daemon.acquire_token_for_client(GRAPH_DEFAULT))

    async with anyio.create_task_group() as group:
        for _ in range(50):
            group.start_soon(call)
    assert len(fake.token_requests) == 1
    assert all("access_token" in r and "error" not in r for r in results)
    assert json.loads(json.dumps(results[0])) == results[0]
    hit = await daemon.acquire_token_for_client(GRAPH_DEFAULT)
    assert hit["token_source"] == "cache" and hit["access_token"] == results[0]["access_token"]
    assert daemon.statistics().hits >= 1
    with pytest.raises(ValueError, match="force_refresh"):
        await daemon.acquire_token_for_client(GRAPH_DEFAULT, force_refresh=True)


async def test_wrong_secret_is_an_error_dict_not_an_exception(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    async with msal.ConfidentialClientApplication(
        DAEMON, "wrong", fake.authority("contoso"), clock=clock
    ) as app:
        result = await app.acquire_token_for_client(GRAPH_DEFAULT)
    assert result["error"] == "invalid_client"
    assert isinstance(result["error_description"], str)
    assert result["error_codes"] and isinstance(result["error_codes"][0], int)
    assert "correlation_id" in result and "trace_id" in result
    assert "access_token" not in result and "wrong" not in json.dumps(result)


async def test_throttled_is_an_error_dict_and_repeats_send_nothing(
    daemon: msal.ConfidentialClientApplication, fake: FakeAuthority
) -> None:
    fake.fail_next(1, status=429, retry_after=30)
    first = await daemon.acquire_token_for_client(GRAPH_DEFAULT)
    again = await daemon.acquire_token_for_client(GRAPH_DEFAULT)
    assert "error" in first and again["error"] == first["error"]
    assert len(fake.token_requests) == 1


async def test_remove_tokens_for_client(
    daemon: msal.ConfidentialClientApplication, fake: FakeAuthority
) -> None:
    await daemon.acquire_token_for_client(GRAPH_DEFAULT)
    await daemon.remove_tokens_for_client()
    result = await daemon.acquire_token_for_client(GRAPH_DEFAULT)
    assert result["token_source"] == "identity_provider"
    assert len(fake.token_requests) == 2


async def test_silent_returns_none_where_msal_does(
    public: msal.PublicClientApplication, fake: FakeAuthority, clock: VirtualClock
) -> None:
    assert await public.acquire_token_silent(USER_READ, None) is None
    signed_in = await public.acquire_token_by_username_password(ALICE, "alice-pw", USER_READ)
    assert signed_in["token_source"] == "identity_provider" and "refresh_token" in signed_in
    [account] = await public.get_accounts()
    assert account["username"] == ALICE
    assert (await public.get_accounts(username=ALICE.upper())) == [account]
    hit = await public.acquire_token_silent(USER_READ, account)
    assert hit is not None and hit["token_source"] == "cache"
    # The refresh token is revoked and the access token expires: UI is required.
    fake.revoke_refresh_tokens(ALICE)
    fake.require_interaction(ALICE, suberror="basic_action", claims='{"a":1}')
    await clock.advance(7200)
    assert await public.acquire_token_silent(USER_READ, account) is None
    error = await public.acquire_token_silent_with_error(USER_READ, account)
    assert error is not None and error["error"] == "invalid_grant"
    with pytest.warns(UserWarning, match="authority parameter"):
        await public.acquire_token_silent(USER_READ, account, "https://elsewhere/x")
    await public.remove_account(account)
    assert await public.get_accounts() == []
    assert await public.acquire_token_silent_with_error(USER_READ, account) is None


async def test_auth_code_flow_dicts_and_state_mismatch_is_a_value_error(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    async with msal.ConfidentialClientApplication(
        WEB, SECRET, fake.authority("organizations"), clock=clock
    ) as app:
        flow = await app.initiate_auth_code_flow(USER_READ, CALLBACK, login_hint=ALICE)
        flow = json.loads(json.dumps(flow))  # kept in a session, as web apps do
        answer = await browser(flow["auth_uri"])
        with pytest.raises(ValueError, match="state") as caught:
            await app.acquire_token_by_auth_code_flow(flow, {**answer, "state": "forged"})
        assert isinstance(caught.value, MsalSignInError)
        result = await app.acquire_token_by_auth_code_flow(flow, answer)
        assert result["id_token_claims"]["preferred_username"] == ALICE
        denied = await app.acquire_token_by_auth_code_flow(
            flow, {"state": flow["state"], "error": "access_denied", "error_description": "no"}
        )
        assert denied == {"error": "access_denied", "error_description": "no"}
        url = await app.get_authorization_request_url(USER_READ, ALICE, "s", CALLBACK)
        assert dict(parse_qsl(urlsplit(url).query))["login_hint"] == ALICE
        with pytest.raises(ValueError, match="response_type"):
            await app.get_authorization_request_url(USER_READ, response_type="token")


async def test_device_flow_dicts(
    public: msal.PublicClientApplication, fake: FakeAuthority, clock: VirtualClock
) -> None:
    flow = await public.initiate_device_flow(scopes=USER_READ)
    assert "user_code" in flow and flow["user_code"] in flow["message"]
    results: list[dict[str, object]] = []

    async def poll() -> None:
        results.append(await public.acquire_token_by_device_flow(flow))

    async with anyio.create_task_group() as group:
        group.start_soon(poll)
        fake.decline_device_code(flow["user_code"])
        await wait_until(lambda: clock.sleepers == 1)
        await clock.advance(flow["interval"])
    [declined] = results
    assert declined["error"] == "authorization_declined"


async def test_interactive_with_an_opener_and_the_launch_hook(
    public: msal.PublicClientApplication,
) -> None:
    launched: list[str] = []

    async def open_browser(url: str) -> None:
        answer = await browser(url)
        async with aiohttp.ClientSession() as session:
            redirect = urlsplit(url)
            query = dict(parse_qsl(redirect.query))
            async with session.get(query["redirect_uri"], params=answer) as landing:
                assert landing.status == 200

    result = await public.acquire_token_interactive(
        USER_READ,
        login_hint=ALICE,
        on_before_launching_ui=lambda ui: launched.append(ui),
        open_browser=open_browser,
    )
    assert result["token_source"] == "identity_provider"
    assert launched == ["browser"]


async def test_msal_refusals(fake: FakeAuthority) -> None:
    with pytest.raises(ValueError, match="credentials"):
        msal.PublicClientApplication(PUBLIC, SECRET)
    with pytest.raises(ValueError, match="allow_broker"):
        msal.ConfidentialClientApplication(DAEMON, SECRET, allow_broker=True)
    with pytest.raises(ValueError, match="not supported"):
        await msal.ConfidentialClientApplication(
            DAEMON, SECRET
        ).acquire_token_by_user_federated_identity_credential(["s"], "assertion")
    with pytest.raises(ValueError, match="aiohttp"):
        msal.ConfidentialClientApplication(DAEMON, SECRET, http_client=object())
    here = {"win32": "windows", "darwin": "mac"}.get(sys.platform, "linux")
    elsewhere = "windows" if here != "windows" else "linux"
    flag: dict[str, Any] = {f"enable_broker_on_{here}": True}
    other: dict[str, Any] = {f"enable_broker_on_{elsewhere}": True}
    # MSAL raises ImportError when the broker runtime is missing on this platform.
    with pytest.raises(ImportError, match="broker") as caught:
        msal.PublicClientApplication(
            PUBLIC, authority=fake.authority("organizations"), **flag
        )
    assert isinstance(caught.value, MsalConfigurationError)
    # A flag for another platform, or for an authority no broker serves, is ignored.
    msal.PublicClientApplication(
        PUBLIC, authority="https://contoso.b2clogin.com/contoso.onmicrosoft.com/b2c_1_signin",
        **flag,
    )
    app = msal.PublicClientApplication(
        PUBLIC,
        authority=fake.authority("organizations"),
        http_cache={},
        enable_pii_log=True,
        **other,
    )
    async with app:
        assert app.is_pop_supported() is False
        with pytest.raises(ValueError, match="broker"):
            await app.acquire_token_silent(USER_READ, {"home_account_id": "h"}, auth_scheme=1)
        with pytest.raises(MsalConfigurationError):
            await app.acquire_token_by_username_password(ALICE, "pw", "User.Read")
        bad_flow: Any
        for bad_flow in (None, {"user_code": "x"}, "flow"):
            with pytest.raises(MsalConfigurationError):
                await app.acquire_token_by_device_flow(bad_flow, claims_challenge="{}")
        with pytest.raises(MsalConfigurationError):
            await app.acquire_token_silent(USER_READ, "alice")  # type: ignore[arg-type]


async def test_has_state_changed_is_settable(daemon: msal.ConfidentialClientApplication) -> None:
    cache = daemon.token_cache
    assert isinstance(cache, msal.SerializableTokenCache) and msal.TokenCache is type(cache)
    await daemon.acquire_token_for_client(GRAPH_DEFAULT)
    assert cache.has_state_changed
    cache.has_state_changed = False
    assert not cache.has_state_changed
    cache.has_state_changed = True
    assert cache.has_state_changed
    cache.serialize()
    assert not cache.has_state_changed


async def test_remove_tokens_for_client_also_empties_the_storage(
    fake: FakeAuthority, clock: VirtualClock, tmp_path: Path
) -> None:
    def app() -> msal.ConfidentialClientApplication:
        return msal.ConfidentialClientApplication(
            DAEMON, SECRET, fake.authority("contoso"), clock=clock,
            cache_storage=FileCacheStorage(tmp_path / "cache.json"),
        )

    async with app() as first:
        await first.acquire_token_for_client(GRAPH_DEFAULT)
    async with app() as second:  # a restart: the storage serves
        hit = await second.acquire_token_for_client(GRAPH_DEFAULT)
        assert hit["token_source"] == "cache"
        await second.remove_tokens_for_client()
    async with app() as third:
        fresh = await third.acquire_token_for_client(GRAPH_DEFAULT)
    assert fresh["token_source"] == "identity_provider"
    assert len(fake.token_requests) == 2
