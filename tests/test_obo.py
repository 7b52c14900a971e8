"""On-behalf-of: a web API calls Graph as each of thousands of users, from the cache."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import jwt
import pytest

from aiomsal import (
    AuthenticationResult,
    ConfidentialClientApplication,
    MsalConfigurationError,
    MsalServiceError,
    PublicClientApplication,
)
from aiomsal.testing import FakeAuthority, VirtualClock
from tests.helpers import SECRET, wait_until

pytestmark = pytest.mark.anyio

API = "orders-api"  # the middle tier: a web API called by users, calling Graph
CLIENT = "orders-spa"  # the users' client, which gets tokens for the API
GRAPH_READ = ["https://graph.microsoft.com/User.Read"]
USERS = 200


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
async def fake(clock: VirtualClock) -> AsyncIterator[FakeAuthority]:
    async with FakeAuthority(clock=clock) as authority:
        authority.add_client(API, secret=SECRET)
        authority.add_client(CLIENT, redirect_uris=["http://localhost"])
        authority.add_client("another-api", secret=SECRET)
        yield authority


@pytest.fixture
async def api(
    fake: FakeAuthority, clock: VirtualClock
) -> AsyncIterator[ConfidentialClientApplication]:
    async with ConfidentialClientApplication(
        API, client_credential=SECRET, authority=fake.authority("contoso"), clock=clock
    ) as app:
        yield app


async def incoming_tokens(
    fake: FakeAuthority, clock: VirtualClock, users: int, audience: str = API
) -> dict[str, str]:
    """Sign users in to the client app; return each user's oid -> token for the API."""
    tokens: dict[str, str] = {}
    async with PublicClientApplication(
        CLIENT, authority=fake.authority("contoso"), clock=clock
    ) as client:
        for i in range(users):
            user = fake.add_user(f"user{i}@contoso.com", password="pw", tenant="contoso")
            result = await client.acquire_token_by_username_password(
                user.username, "pw", [f"api://{audience}/access_as_user"]
            )
            tokens[user.oid] = result.access_token
    fake.token_requests.clear()
    return tokens


def oid_of(result: AuthenticationResult) -> str:
    claims = jwt.decode(result.access_token, options={"verify_signature": False})
    return str(claims["oid"])


async def test_2000_calls_for_200_users_send_200_requests_and_nobody_gets_another_users_token(
    api: ConfidentialClientApplication, fake: FakeAuthority, clock: VirtualClock
) -> None:
    tokens = await incoming_tokens(fake, clock, USERS)
    fake.latency = 0.02
    mismatches: list[tuple[str, str]] = []

    async def call(oid: str, assertion: str) -> None:
        result = await api.acquire_token_on_behalf_of(assertion, GRAPH_READ)
        if oid_of(result) != oid:
            mismatches.append((oid, oid_of(result)))

    async def round_of_calls() -> None:
        async with anyio.create_task_group() as group:
            for _ in range(10):
                for oid, assertion in tokens.items():
                    group.start_soon(call, oid, assertion)

    await round_of_calls()
    assert len(fake.token_requests) == USERS
    assert {r.grant_type for r in fake.token_requests} == {
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    }
    await round_of_calls()  # every user's token is cached: no request at all
    assert len(fake.token_requests) == USERS
    assert mismatches == []

    # In use, so refreshed before expiry, with the refresh tokens the OBO grant returned.
    await clock.advance(3600)
    await wait_until(lambda: api.statistics().background_refreshes == USERS)
    await round_of_calls()
    assert len(fake.token_requests) == 2 * USERS
    assert [r.grant_type for r in fake.token_requests[USERS:]] == ["refresh_token"] * USERS
    assert mismatches == []
    stats = api.statistics()
    assert stats.requests_sent == 2 * USERS
    assert stats.hits + stats.misses == 3 * USERS * 10
    assert stats.hits >= 2 * USERS * 10


async def test_after_expiry_an_unused_obo_token_is_renewed_with_its_refresh_token(
    api: ConfidentialClientApplication, fake: FakeAuthority, clock: VirtualClock
) -> None:
    [assertion] = (await incoming_tokens(fake, clock, 1)).values()
    await api.acquire_token_on_behalf_of(assertion, GRAPH_READ)
    await clock.advance(3600)
    renewed = await api.acquire_token_on_behalf_of(assertion, GRAPH_READ)
    assert renewed.token_source == "identity_provider"
    assert [r.grant_type for r in fake.token_requests][-1] == "refresh_token"


async def test_hot_obo_tokens_are_refreshed_in_the_background_with_the_refresh_token(
    api: ConfidentialClientApplication, fake: FakeAuthority, clock: VirtualClock
) -> None:
    [assertion] = (await incoming_tokens(fake, clock, 1)).values()
    first = await api.acquire_token_on_behalf_of(assertion, GRAPH_READ)
    assert (await api.acquire_token_on_behalf_of(assertion, GRAPH_READ)).token_source == "cache"
    await clock.advance(3000)
    await wait_until(lambda: api.statistics().background_refreshes == 1)
    later = await api.acquire_token_on_behalf_of(assertion, GRAPH_READ)
    assert later.token_source == "cache"
    assert later.access_token != first.access_token
    assert [r.grant_type for r in fake.token_requests][-1] == "refresh_token"


async def test_an_assertion_for_another_api_is_refused(
    api: ConfidentialClientApplication, fake: FakeAuthority, clock: VirtualClock
) -> None:
    [assertion] = (await incoming_tokens(fake, clock, 1, audience="another-api")).values()
    with pytest.raises(MsalServiceError) as caught:
        await api.acquire_token_on_behalf_of(assertion, GRAPH_READ)
    assert caught.value.error == "invalid_grant"
    assert assertion not in str(caught.value)


async def test_app_tokens_and_user_tokens_live_in_separate_caches(
    api: ConfidentialClientApplication, fake: FakeAuthority, clock: VirtualClock
) -> None:
    [assertion] = (await incoming_tokens(fake, clock, 1)).values()
    as_user = await api.acquire_token_on_behalf_of(
        assertion, ["https://graph.microsoft.com/.default"]
    )
    as_app = await api.acquire_token_for_client(["https://graph.microsoft.com/.default"])
    assert as_app.token_source == "identity_provider"
    assert as_user.access_token != as_app.access_token
    assert "oid" in jwt.decode(as_user.access_token, options={"verify_signature": False})
    assert as_user.account is not None and as_app.account is None
    again = await api.acquire_token_on_behalf_of(
        assertion, ["https://graph.microsoft.com/.default"]
    )
    assert again.access_token == as_user.access_token
    assert await api.get_accounts() == []  # on-behalf-of users are not accounts of the API


async def test_bad_assertions_are_refused_before_any_request(
    api: ConfidentialClientApplication, fake: FakeAuthority
) -> None:
    for bad in ("", None):
        with pytest.raises(MsalConfigurationError):
            await api.acquire_token_on_behalf_of(bad, GRAPH_READ)  # type: ignore[arg-type]
    assert fake.token_requests == []
