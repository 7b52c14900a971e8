"""Background refresh, driven by a VirtualClock: hours of token lifetimes in milliseconds."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from aiomsal import (
    CacheStatistics,
    ConfidentialClientApplication,
    MsalServiceError,
)
from aiomsal.testing import FakeAuthority, VirtualClock
from tests.helpers import GRAPH, SECRET, aiomsal_tasks, wait_until

pytestmark = pytest.mark.anyio

CLIENT = "background-refresh-client"
LIFETIME = 3600


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
async def fake(clock: VirtualClock) -> AsyncIterator[FakeAuthority]:
    async with FakeAuthority(clock=clock, token_lifetime=LIFETIME) as authority:
        authority.add_client(CLIENT, secret=SECRET)
        yield authority


@pytest.fixture
async def app(
    fake: FakeAuthority, clock: VirtualClock
) -> AsyncIterator[ConfidentialClientApplication]:
    async with ConfidentialClientApplication(
        CLIENT, client_credential=SECRET, authority=fake.authority("contoso"), clock=clock
    ) as application:
        yield application


def settled(stats: CacheStatistics, first_requests: int = 1) -> bool:
    """Every request sent has come back (as a refresh or a counted failure)."""
    done = first_requests + stats.background_refreshes + stats.refresh_failures
    return stats.requests_sent <= done


async def test_a_hot_token_is_refreshed_before_expiry_for_100_lifetimes(
    app: ConfidentialClientApplication, fake: FakeAuthority, clock: VirtualClock
) -> None:
    first = await app.acquire_token_for_client(GRAPH)
    assert first.token_source == "identity_provider"
    seen = {first.access_token}
    for _ in range(100 * LIFETIME // 100):  # one call every 100 simulated seconds
        await clock.advance(100)
        await wait_until(lambda: settled(app.statistics()))
        result = await app.acquire_token_for_client(GRAPH)
        assert result.token_source == "cache"  # nobody waits on the authority
        assert result.expires_on - clock.time() >= 300
        seen.add(result.access_token)
    stats = app.statistics()
    assert stats.misses == 1
    assert stats.refresh_failures == 0
    # One request per refresh, at most one refresh per lifetime fraction, none wasted.
    assert stats.requests_sent == len(fake.token_requests) == len(seen)
    assert stats.background_refreshes == stats.requests_sent - 1
    assert 100 / 0.8 <= stats.background_refreshes <= 100 / 0.7 + 1


async def test_a_token_nobody_uses_is_not_refreshed(
    app: ConfidentialClientApplication, fake: FakeAuthority, clock: VirtualClock
) -> None:
    await app.acquire_token_for_client(GRAPH)
    await clock.advance(10 * LIFETIME)
    assert len(fake.token_requests) == 1
    assert app.statistics().background_refreshes == 0
    assert (await app.acquire_token_for_client(GRAPH)).token_source == "identity_provider"


async def test_an_outage_across_the_refresh_point_serves_the_valid_token_until_expiry(
    app: ConfidentialClientApplication, fake: FakeAuthority, clock: VirtualClock
) -> None:
    first = await app.acquire_token_for_client(GRAPH)
    await app.acquire_token_for_client(GRAPH)  # in use: scheduled for refresh
    fake.fail_next(10_000, status=503, retry_after=60)
    served_until = first.expires_on - 300
    while clock.time() + 30 < served_until:
        await clock.advance(30)
        result = await app.acquire_token_for_client(GRAPH)  # never raises
        assert result.access_token == first.access_token
    await wait_until(lambda: settled(app.statistics()))
    stats = app.statistics()
    assert stats.refresh_failures >= 1
    assert stats.background_refreshes == 0
    await clock.advance(60)
    with pytest.raises(MsalServiceError):
        await app.acquire_token_for_client(GRAPH)
    # The outage ends: the next caller gets a fresh token.
    fake.clear_faults()
    await clock.advance(61)
    recovered = await app.acquire_token_for_client(GRAPH)
    assert recovered.token_source == "identity_provider"


async def test_a_caller_during_a_refresh_gets_the_valid_token_at_once(
    app: ConfidentialClientApplication, fake: FakeAuthority, clock: VirtualClock
) -> None:
    first = await app.acquire_token_for_client(GRAPH)
    await app.acquire_token_for_client(GRAPH)
    fake.latency = 0.3
    await clock.advance(0.9 * LIFETIME - 300)  # past any refresh time, before expiry margin
    await wait_until(lambda: len(fake.token_requests) == 2)  # the refresh is in flight
    with anyio.fail_after(0.1):
        during = await app.acquire_token_for_client(GRAPH)
    assert during.access_token == first.access_token
    await wait_until(lambda: app.statistics().background_refreshes == 1)
    after = await app.acquire_token_for_client(GRAPH)
    assert after.access_token != first.access_token
    assert len(fake.token_requests) == 2


async def test_close_cancels_refreshes_and_leaves_no_task(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    app = ConfidentialClientApplication(
        CLIENT, client_credential=SECRET, authority=fake.authority("contoso"), clock=clock
    )
    for tenant in ("a", "b", "c"):
        await app.acquire_token_for_client(GRAPH, tenant=tenant)
        await app.acquire_token_for_client(GRAPH, tenant=tenant)
    fake.latency = 5
    await clock.advance(0.9 * LIFETIME - 300)
    await wait_until(lambda: len(fake.token_requests) == 6)  # three refreshes in flight
    assert aiomsal_tasks()
    await app.aclose()
    assert aiomsal_tasks() == []
