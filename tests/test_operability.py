"""What an operator reads: per-tenant statistics and the log records of token requests."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

import anyio
import pytest

from aiomsal import (
    ConfidentialClientApplication,
    MsalError,
    MsalServiceError,
    TenantStatistics,
)
from aiomsal._apps._reporting import resource_of
from aiomsal.testing import FakeAuthority, VirtualClock
from tests.helpers import GRAPH, SECRET, wait_until

pytestmark = pytest.mark.anyio

T = TypeVar("T")
CLIENT = "operability-client"
TENANTS = ("alpha.example", "beta.example", "gamma.example")


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
async def fake(clock: VirtualClock) -> AsyncIterator[FakeAuthority]:
    async with FakeAuthority(clock=clock) as authority:
        authority.add_client(CLIENT, secret=SECRET)
        yield authority


def make_app(fake: FakeAuthority, clock: VirtualClock) -> ConfidentialClientApplication:
    return ConfidentialClientApplication(
        CLIENT, client_credential=SECRET, authority=fake.authority("contoso"), clock=clock
    )


async def advancing(clock: VirtualClock, call: Awaitable[T]) -> T:
    """Await ``call`` while moving the clock on (the transport's retry sleeps on it)."""
    outcome: list[T] = []
    failure: list[MsalError] = []

    async def run() -> None:
        try:
            outcome.append(await call)
        except MsalError as exc:
            failure.append(exc)

    async with anyio.create_task_group() as group:
        group.start_soon(run)
        with anyio.fail_after(5):
            while not outcome and not failure:
                await clock.advance(0.25)
                await anyio.sleep(0.001)
    if failure:
        raise failure[0]
    return outcome[0]


def aiomsal_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "aiomsal"]


async def test_statistics_break_the_totals_down_per_tenant(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    async with make_app(fake, clock) as app:
        async def call(tenant: str) -> None:
            await app.acquire_token_for_client(GRAPH, tenant=tenant)

        async with anyio.create_task_group() as group:  # 10 cold callers per tenant
            for tenant in TENANTS:
                for _ in range(10):
                    group.start_soon(call, tenant)
        for _ in range(3):
            await app.acquire_token_for_client(GRAPH, tenant=TENANTS[0])
        await app.acquire_token_for_client(GRAPH)  # the authority's own tenant
        fake.fail_next(1, status=400)
        with pytest.raises(MsalServiceError):
            await app.acquire_token_for_client(["api://other/.default"], tenant=TENANTS[2])
        totals = app.statistics()
        stats = app.statistics(by_tenant=True)
    assert totals.tenants == {}
    assert (stats.hits, stats.misses, stats.requests_sent) == (totals.hits, 32, 5)
    assert stats.request_failures == 1
    assert set(stats.tenants) == {*TENANTS, "contoso"}
    alpha, beta, gamma = (stats.tenants[t] for t in TENANTS)
    assert alpha == TenantStatistics(hits=3, misses=10, coalesced=9, requests_sent=1)
    assert beta == TenantStatistics(misses=10, coalesced=9, requests_sent=1)
    assert gamma == TenantStatistics(misses=11, coalesced=9, requests_sent=2, request_failures=1)
    assert stats.tenants["contoso"] == TenantStatistics(misses=1, requests_sent=1)
    for field in ("hits", "misses", "coalesced", "requests_sent", "request_failures"):
        assert sum(getattr(t, field) for t in stats.tenants.values()) == getattr(stats, field)


async def test_a_failure_episode_is_one_warning_with_its_shape_and_correlation_id(
    fake: FakeAuthority, clock: VirtualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiomsal")
    scopes = ["api://backend/.default"]
    async with make_app(fake, clock) as app:
        fake.fail_next(6, status=503)  # each call: an answer, a retry, a second answer
        for _ in range(3):
            with pytest.raises(MsalServiceError):
                await advancing(clock, app.acquire_token_for_client(scopes, tenant=TENANTS[1]))
        await app.acquire_token_for_client(scopes, tenant=TENANTS[1])  # the episode ends
    records = aiomsal_records(caplog)
    warnings = [r for r in records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    (warning,) = warnings
    correlation_ids = [r.correlation_id for r in fake.token_requests]
    assert warning.correlation_id == correlation_ids[0]  # type: ignore[attr-defined]
    assert warning.correlation_id in warning.getMessage()  # type: ignore[attr-defined]
    assert (warning.tenant, warning.resource, warning.grant) == (  # type: ignore[attr-defined]
        TENANTS[1], "api://backend", "client_credentials"
    )
    assert "status=503" in warning.getMessage()
    repeats = [r for r in records if r.getMessage().startswith("token request failed")]
    assert len(repeats) == 3  # the warning, then two debug records
    recovered = [r for r in records if r.getMessage().startswith("token request succeeded")]
    assert len(recovered) == 1 and recovered[0].levelno == logging.INFO
    assert recovered[0].correlation_id == correlation_ids[-1]  # type: ignore[attr-defined]
    assert all(SECRET not in r.getMessage() for r in records)


async def test_a_failing_background_refresh_is_one_warning_for_all_its_retries(
    fake: FakeAuthority, clock: VirtualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aiomsal")
    async with make_app(fake, clock) as app:

        def refresh_failures() -> int:
            return app.statistics().refresh_failures

        first = await app.acquire_token_for_client(GRAPH)
        await app.acquire_token_for_client(GRAPH)  # in use: scheduled for refresh
        fake.fail_next(10_000, status=400)
        while app.statistics().refresh_failures < 3 and clock.time() < first.expires_on - 360:
            await clock.advance(60)
            # Every refresh request sent has failed and been counted before the clock moves on.
            await wait_until(lambda: app.statistics().requests_sent == 1 + refresh_failures())
            await app.acquire_token_for_client(GRAPH)
        stats = app.statistics(by_tenant=True)
    assert stats.tenants["contoso"].refresh_failures == stats.refresh_failures >= 3
    warnings = [r for r in aiomsal_records(caplog) if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].getMessage().startswith("token request failed (service_error)")


@pytest.mark.parametrize(
    ("scope_field", "resource"),
    [
        ("https://graph.microsoft.com/.default", "https://graph.microsoft.com"),
        ("User.Read Mail.Send openid profile offline_access", "Mail.Send User.Read"),
        ("api://b/read api://a/.default api://b/write", "api://a api://b"),
        ("https://management.core.windows.net//.default", "https://management.core.windows.net/"),
        ("", ""),
    ],
)
def test_the_resource_of_a_scope_field(scope_field: str, resource: str) -> None:
    assert resource_of(scope_field) == resource


def test_tenants_beyond_the_bound_are_counted_together(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiomsal import _statistics

    monkeypatch.setattr(_statistics, "MAX_TENANTS", 2)
    counters = _statistics.Counters()
    for realm in ("a", "b", "c", "d", "a"):
        counters.tenants[realm].hits += 1
    assert {realm: t.hits for realm, t in counters.tenants.items()} == {
        "a": 2,
        "b": 1,
        _statistics.OTHER_TENANTS: 2,
    }
    assert counters.tenant("e") is counters.tenants[_statistics.OTHER_TENANTS]
