"""User flows end to end against FakeAuthority: auth code, interactive, device code,
username/password, refresh token, silent acquisition and accounts."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import anyio
import jwt
import pytest

from aiomsal import (
    Account,
    AuthenticationResult,
    ConfidentialClientApplication,
    MsalError,
    MsalServiceError,
    MsalSignInError,
    MsalUiRequiredError,
    PublicClientApplication,
)
from aiomsal.testing import FakeAuthority, VirtualClock
from tests.helpers import SECRET, aiomsal_tasks, wait_until

pytestmark = pytest.mark.anyio

PUBLIC = "desktop-tool"
WEB = "web-app"
CALLBACK = "http://localhost/callback"
ALICE = "alice@contoso.com"
USER_READ = ["User.Read"]


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
async def fake(clock: VirtualClock) -> AsyncIterator[FakeAuthority]:
    async with FakeAuthority(clock=clock) as authority:
        authority.add_client(PUBLIC, redirect_uris=["http://localhost"])
        authority.add_client(WEB, secret=SECRET, redirect_uris=[CALLBACK])
        authority.add_user(ALICE, password="alice-pw", tenant="contoso", guest_tenants=["fabrikam"])
        authority.add_user("bob@contoso.com", password="bob-pw", tenant="contoso")
        yield authority


@pytest.fixture
async def web(
    fake: FakeAuthority, clock: VirtualClock
) -> AsyncIterator[ConfidentialClientApplication]:
    async with ConfidentialClientApplication(
        WEB,
        client_credential=SECRET,
        authority=fake.authority("organizations"),
        clock=clock,
        client_capabilities=["cp1"],
    ) as app:
        yield app


@pytest.fixture
async def public(
    fake: FakeAuthority, clock: VirtualClock
) -> AsyncIterator[PublicClientApplication]:
    async with PublicClientApplication(
        PUBLIC, authority=fake.authority("organizations"), clock=clock
    ) as app:
        yield app


async def browser(url: str, *, follow: bool = False) -> dict[str, str]:
    """A browser with a signed-in session: GET /authorize, return the redirect's query."""
    async with aiohttp.ClientSession() as session:
        async with session.get(url, allow_redirects=False) as response:
            assert response.status == 302, await response.text()
            location = response.headers["Location"]
        if follow:
            async with session.get(location) as landing:
                assert landing.status == 200
    return dict(parse_qsl(urlsplit(location).query))


def grants(fake: FakeAuthority) -> list[str]:
    return [r.grant_type for r in fake.token_requests]


def claims_of(result: AuthenticationResult) -> dict[str, object]:
    return dict(jwt.decode(result.access_token, options={"verify_signature": False}))


async def sign_in_with_auth_code(
    app: ConfidentialClientApplication | PublicClientApplication,
    scopes: list[str],
    login_hint: str = ALICE,
) -> AuthenticationResult:
    flow = await app.initiate_auth_code_flow(scopes, CALLBACK, login_hint=login_hint)
    return await app.acquire_token_by_auth_code_flow(flow, await browser(flow.auth_uri))


async def test_auth_code_flow_then_silent_from_cache_then_refresh_token(
    web: ConfidentialClientApplication, fake: FakeAuthority, clock: VirtualClock
) -> None:
    result = await sign_in_with_auth_code(web, USER_READ)
    assert result.token_source == "identity_provider"
    assert result.account is not None and result.account.username == ALICE
    assert result.id_token_claims is not None
    assert result.id_token_claims["preferred_username"] == ALICE
    assert result.scopes == ("User.Read",) or "openid" not in result.scopes
    assert result.tenant_id == fake.tenant_id("contoso")
    assert result.id_token is not None and result.id_token not in repr(result)
    form = fake.token_requests[-1].form
    assert form["grant_type"] == "authorization_code"
    assert "code_verifier" in form
    assert json.loads(form["claims"]) == {"access_token": {"xms_cc": {"values": ["cp1"]}}}

    [account] = await web.get_accounts()
    assert account.home_account_id == result.account.home_account_id
    cached = await web.acquire_token_silent(USER_READ, account)
    assert cached is not None and cached.token_source == "cache"
    assert cached.access_token == result.access_token
    assert cached.account == result.account

    # In use, so refreshed in the background with the refresh token before it expires.
    await clock.advance(3600)
    await wait_until(lambda: web.statistics().background_refreshes == 1)
    refreshed = await web.acquire_token_silent(USER_READ, account)
    assert refreshed is not None and refreshed.token_source == "cache"
    assert refreshed.access_token != result.access_token
    assert grants(fake) == ["authorization_code", "refresh_token"]


async def test_after_expiry_silent_uses_the_refresh_token(
    web: ConfidentialClientApplication, fake: FakeAuthority, clock: VirtualClock
) -> None:
    result = await sign_in_with_auth_code(web, USER_READ)
    assert result.account is not None
    await clock.advance(3600)  # expired; nobody used it meanwhile, so nobody refreshed it
    refreshed = await web.acquire_token_silent(USER_READ, result.account)
    assert refreshed is not None and refreshed.token_source == "identity_provider"
    assert grants(fake) == ["authorization_code", "refresh_token"]
    again = await web.acquire_token_silent(USER_READ, result.account)
    assert again is not None and again.token_source == "cache"


async def test_state_nonce_and_pkce_are_checked(
    web: ConfidentialClientApplication, fake: FakeAuthority
) -> None:
    flow = await web.initiate_auth_code_flow(USER_READ, CALLBACK, login_hint=ALICE)
    answer = await browser(flow.auth_uri)
    with pytest.raises(MsalSignInError, match="state"):
        await web.acquire_token_by_auth_code_flow(flow, {**answer, "state": "forged"})
    assert fake.token_requests == []

    wrong_nonce = dataclasses.replace(flow, nonce="not-the-nonce")
    with pytest.raises(MsalSignInError, match="nonce"):
        await web.acquire_token_by_auth_code_flow(wrong_nonce, answer)

    flow = await web.initiate_auth_code_flow(USER_READ, CALLBACK, login_hint=ALICE)
    answer = await browser(flow.auth_uri)
    tampered = dataclasses.replace(flow, code_verifier="x" * 50)
    with pytest.raises(MsalServiceError) as caught:
        await web.acquire_token_by_auth_code_flow(tampered, answer)
    assert caught.value.error == "invalid_grant"
    assert await web.get_accounts() == []


async def test_a_declined_sign_in_is_an_access_denied_error(
    web: ConfidentialClientApplication, fake: FakeAuthority
) -> None:
    fake.decline_authorization(ALICE)
    flow = await web.initiate_auth_code_flow(USER_READ, CALLBACK, login_hint=ALICE)
    with pytest.raises(MsalServiceError) as caught:
        await web.acquire_token_by_auth_code_flow(flow, await browser(flow.auth_uri))
    assert caught.value.error == "access_denied"


async def test_the_flow_survives_a_round_trip_through_a_session_dict(
    web: ConfidentialClientApplication,
) -> None:
    flow = await web.initiate_auth_code_flow(USER_READ, CALLBACK, login_hint=ALICE)
    stored = json.loads(json.dumps(flow.to_dict()))
    result = await web.acquire_token_by_auth_code_flow(stored, await browser(flow.auth_uri))
    assert result.account is not None


async def test_interactive_sign_in_through_the_loopback_listener(
    public: PublicClientApplication, fake: FakeAuthority
) -> None:
    opened: list[str] = []

    async def open_browser(url: str) -> None:
        opened.append(url)
        await browser(url, follow=True)

    result = await public.acquire_token_interactive(
        USER_READ, login_hint=ALICE, open_browser=open_browser, timeout=10
    )
    assert result.account is not None and result.account.username == ALICE
    assert "code_challenge=" in opened[0]
    assert fake.token_requests[-1].form["redirect_uri"].startswith("http://localhost:")


async def test_interactive_sign_in_times_out_when_nobody_answers(
    public: PublicClientApplication,
) -> None:
    with pytest.raises(MsalSignInError):
        await public.acquire_token_interactive(
            USER_READ, open_browser=lambda url: None, timeout=0.05
        )


async def test_device_code_flow_polls_until_approved(
    public: PublicClientApplication, fake: FakeAuthority, clock: VirtualClock
) -> None:
    flow = await public.initiate_device_flow(USER_READ)
    assert flow.user_code in flow.message
    assert flow.device_code not in repr(flow)
    results: list[AuthenticationResult] = []

    async def poll() -> None:
        results.append(await public.acquire_token_by_device_flow(flow))

    async with anyio.create_task_group() as group:
        group.start_soon(poll)
        for polls in range(1, 4):  # three polls while the user has not approved yet
            await wait_until(lambda: clock.sleepers == 1)
            await clock.advance(flow.interval)
            await wait_until(lambda: len(fake.token_requests) == polls)  # noqa: B023
        fake.approve_device_code(flow.user_code, ALICE)
        await wait_until(lambda: clock.sleepers == 1)
        await clock.advance(flow.interval)
    [result] = results
    assert result.account is not None and result.account.username == ALICE
    assert len(fake.token_requests) == 4
    silent = await public.acquire_token_silent(USER_READ, result.account)
    assert silent is not None and silent.token_source == "cache"


async def test_device_code_declined_and_expired_are_typed_errors(
    public: PublicClientApplication, fake: FakeAuthority, clock: VirtualClock
) -> None:
    flow = await public.initiate_device_flow(USER_READ)
    fake.decline_device_code(flow.user_code)
    errors: list[MsalServiceError] = []

    async def poll() -> None:
        try:
            await public.acquire_token_by_device_flow(flow)
        except MsalServiceError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as group:
        group.start_soon(poll)
        await wait_until(lambda: clock.sleepers == 1)
        await clock.advance(flow.interval)
    assert errors[0].error == "authorization_declined"

    flow = await public.initiate_device_flow(USER_READ)
    async with anyio.create_task_group() as group:
        group.start_soon(poll)
        while len(errors) < 2:
            await wait_until(lambda: clock.sleepers == 1 or len(errors) == 2)
            await clock.advance(60)
    assert errors[1].error == "expired_token"


async def test_device_code_polling_is_cancellable_and_leaves_no_task(
    public: PublicClientApplication, clock: VirtualClock
) -> None:
    flow = await public.initiate_device_flow(USER_READ)
    with anyio.move_on_after(0.05) as scope:
        await public.acquire_token_by_device_flow(flow)
    assert scope.cancelled_caught
    assert [t for t in aiomsal_tasks() if "_supervise" not in repr(t)] == []


async def test_username_password(public: PublicClientApplication, fake: FakeAuthority) -> None:
    result = await public.acquire_token_by_username_password(ALICE, "alice-pw", USER_READ)
    assert claims_of(result)["preferred_username"] == ALICE
    with pytest.raises(MsalServiceError) as wrong:
        await public.acquire_token_by_username_password(ALICE, "nope", USER_READ)
    assert wrong.value.error == "invalid_grant"
    assert "nope" not in str(wrong.value)
    with pytest.raises(MsalServiceError):
        await public.acquire_token_by_username_password("nobody@contoso.com", "x", USER_READ)


async def test_refresh_token_migration(
    public: PublicClientApplication, fake: FakeAuthority, clock: VirtualClock
) -> None:
    async with PublicClientApplication(
        PUBLIC, authority=fake.authority("organizations"), clock=clock
    ) as old_app:
        await old_app.acquire_token_by_username_password(ALICE, "alice-pw", USER_READ)
        refresh_token = old_app._users.refresh_token(  # what an old cache held
            next(iter(old_app._users._refresh))
        )
    assert refresh_token is not None
    result = await public.acquire_token_by_refresh_token(refresh_token.secret, USER_READ)
    assert result.account is not None and result.account.username == ALICE
    [account] = await public.get_accounts()
    assert (await public.acquire_token_silent(USER_READ, account)) is not None


async def test_scopes_superset_short_forms_and_incremental_consent(
    public: PublicClientApplication, fake: FakeAuthority
) -> None:
    first = await public.acquire_token_by_username_password(
        ALICE, "alice-pw", ["User.Read", "Mail.Read"]
    )
    assert first.account is not None
    subset = await public.acquire_token_silent(["User.Read"], first.account)
    full_form = await public.acquire_token_silent(
        ["https://graph.microsoft.com/User.Read"], first.account
    )
    assert subset is not None and subset.token_source == "cache"
    assert full_form is not None and full_form.token_source == "cache"
    assert len(fake.token_requests) == 1

    other = await public.acquire_token_silent(["api://orders/read"], first.account)
    assert other is not None and other.token_source == "identity_provider"
    assert claims_of(other)["aud"] == "api://orders"
    assert grants(fake) == ["password", "refresh_token"]


async def test_a_guest_tenant_token_carries_the_guest_tenant(
    public: PublicClientApplication, fake: FakeAuthority
) -> None:
    home = await public.acquire_token_by_username_password(ALICE, "alice-pw", USER_READ)
    assert home.account is not None
    guest = await public.acquire_token_silent(USER_READ, home.account, tenant="fabrikam")
    assert guest is not None
    assert guest.tenant_id == fake.tenant_id("fabrikam") != home.tenant_id
    assert claims_of(guest)["tid"] == fake.tenant_id("fabrikam")
    assert guest.account is not None
    assert guest.account.home_account_id == home.account.home_account_id


async def test_a_revoked_refresh_token_means_ui_required(
    public: PublicClientApplication, fake: FakeAuthority, clock: VirtualClock
) -> None:
    result = await public.acquire_token_by_username_password(ALICE, "alice-pw", USER_READ)
    assert result.account is not None
    fake.revoke_refresh_tokens(ALICE)
    await clock.advance(3600)
    with pytest.raises(MsalUiRequiredError) as caught:
        await public.acquire_token_silent(USER_READ, result.account)
    assert caught.value.error == "invalid_grant"


async def test_interaction_required_carries_suberror_and_claims(
    public: PublicClientApplication, fake: FakeAuthority, clock: VirtualClock
) -> None:
    result = await public.acquire_token_by_username_password(ALICE, "alice-pw", USER_READ)
    assert result.account is not None
    challenge = '{"access_token":{"acrs":{"essential":true,"value":"c1"}}}'
    fake.require_interaction(ALICE, suberror="basic_action", claims=challenge)
    with pytest.raises(MsalUiRequiredError) as caught:
        await public.acquire_token_silent(USER_READ, result.account, force_refresh=True)
    assert caught.value.error == "interaction_required"
    assert caught.value.suberror == "basic_action"
    assert caught.value.claims == challenge


async def test_a_claims_challenge_skips_the_cache_and_reaches_the_authority(
    web: ConfidentialClientApplication, fake: FakeAuthority
) -> None:
    result = await sign_in_with_auth_code(web, USER_READ)
    assert result.account is not None
    challenge = '{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}'
    fresh = await web.acquire_token_silent(USER_READ, result.account, claims_challenge=challenge)
    assert fresh is not None and fresh.token_source == "identity_provider"
    sent = json.loads(fake.token_requests[-1].form["claims"])
    assert sent["access_token"]["nbf"]["value"] == "1700000000"
    assert sent["access_token"]["xms_cc"] == {"values": ["cp1"]}


async def test_remove_account_removes_its_tokens(public: PublicClientApplication) -> None:
    alice = await public.acquire_token_by_username_password(ALICE, "alice-pw", USER_READ)
    bob = await public.acquire_token_by_username_password("bob@contoso.com", "bob-pw", USER_READ)
    assert alice.account is not None and bob.account is not None
    assert len(await public.get_accounts()) == 2
    assert [a.username for a in await public.get_accounts(username=ALICE.upper())] == [ALICE]
    await public.remove_account(alice.account)
    assert [a.username for a in await public.get_accounts()] == ["bob@contoso.com"]
    assert await public.acquire_token_silent(USER_READ, alice.account) is None
    assert await public.acquire_token_silent(USER_READ, bob.account) is not None


async def test_silent_without_anything_cached_returns_none(
    public: PublicClientApplication,
) -> None:
    stranger = Account("uid.utid", "127.0.0.1", "utid", "stranger@contoso.com")
    assert await public.acquire_token_silent(USER_READ, stranger) is None
    assert await public.acquire_token_silent(USER_READ, None) is None


async def test_reserved_scopes_are_refused(public: PublicClientApplication) -> None:
    with pytest.raises(MsalError):
        await public.initiate_device_flow(["openid", "User.Read"])
