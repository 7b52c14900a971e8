"""Cold on-behalf-of and silent bursts: the misses of one call share its flight from the start."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from aiomsal import (
    ConfidentialClientApplication,
    MsalAssertionExpiredError,
    MsalConfigurationError,
    MsalTransportError,
    PublicClientApplication,
)
from aiomsal._concurrency import _deadline
from aiomsal.testing import FakeAuthority, VirtualClock
from tests.helpers import SECRET, wait_until
from tests.test_obo import API, CLIENT, GRAPH_READ, clock, fake, incoming_tokens

pytestmark = pytest.mark.anyio
__all__ = ["clock", "fake"]  # the fixtures of the on-behalf-of tests

CALLERS = 1000
MAIL = ["https://graph.microsoft.com/Mail.Read"]
CHALLENGE = '{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}'


def make_api(
    fake: FakeAuthority, clock: VirtualClock, **options: Any
) -> ConfidentialClientApplication:
    return ConfidentialClientApplication(
        API, client_credential=SECRET, authority=fake.authority("contoso"), clock=clock, **options
    )


async def burst(count: int, call: Callable[[], Awaitable[object]]) -> list[object]:
    """``count`` concurrent calls; each one's result or exception."""
    outcomes: list[object] = []

    async def one() -> None:
        try:
            outcomes.append(await call())
        except Exception as exc:
            outcomes.append(exc)

    async with anyio.create_task_group() as group:
        for _ in range(count):
            group.start_soon(one)
    return outcomes


async def test_1000_cold_obo_misses_with_one_assertion_send_one_request(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    [assertion] = (await incoming_tokens(fake, clock, 1)).values()
    fake.latency = 0.05
    async with make_api(fake, clock) as api:
        obo = functools.partial(api.acquire_token_on_behalf_of, assertion, GRAPH_READ)
        outcomes = await burst(CALLERS, obo)
        stats = api.statistics(by_tenant=True)
        assert len(api._calls) == 0  # the call's flight is over and forgotten
    assert {type(o).__name__ for o in outcomes} == {"AuthenticationResult"}
    assert len({o.access_token for o in outcomes}) == 1  # type: ignore[attr-defined]
    assert len(fake.token_requests) == 1
    assert (stats.misses, stats.coalesced, stats.requests_sent) == (CALLERS, CALLERS - 1, 1)
    contoso = stats.tenants["contoso"]
    assert (contoso.misses, contoso.coalesced, contoso.requests_sent) == (CALLERS, CALLERS - 1, 1)


async def test_other_assertions_scopes_and_claims_never_share_a_flight(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    first, second = (await incoming_tokens(fake, clock, 2)).values()
    fake.latency = 0.05
    async with make_api(fake, clock) as api:
        async with anyio.create_task_group() as group:
            for assertion in (first, second):
                for scopes in (GRAPH_READ, MAIL):
                    for claims in (None, CHALLENGE):
                        for _ in range(20):
                            group.start_soon(
                                functools.partial(
                                    api.acquire_token_on_behalf_of,
                                    assertion,
                                    scopes,
                                    claims_challenge=claims,
                                )
                            )
        stats = api.statistics()
    assert len(fake.token_requests) == 8  # 2 assertions x 2 scopes x (no claims, claims)
    with_claims = [r for r in fake.token_requests if "claims" in r.form]
    assert len(with_claims) == 4
    assert (stats.misses, stats.coalesced, stats.requests_sent) == (160, 152, 8)


async def test_a_cancelled_first_caller_does_not_fail_the_waiters(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    [assertion] = (await incoming_tokens(fake, clock, 1)).values()
    fake.latency = 0.1
    served: list[str] = []

    async def call() -> None:
        served.append((await api.acquire_token_on_behalf_of(assertion, GRAPH_READ)).token_source)

    async with make_api(fake, clock) as api:
        first = anyio.CancelScope()

        async def starting() -> None:
            with first:
                await api.acquire_token_on_behalf_of(assertion, GRAPH_READ)

        async with anyio.create_task_group() as group:
            group.start_soon(starting)
            await wait_until(lambda: len(api._calls) == 1)  # the first caller started it
            for _ in range(10):
                group.start_soon(call)
            await wait_until(lambda: api._calls.coalesced == 10)
            first.cancel()
        assert first.cancelled_caught
    assert served == ["identity_provider"] * 10
    assert len(fake.token_requests) == 1


async def test_a_flight_slower_than_timeout_fails_every_waiter_with_its_own_timeout_error(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    [assertion] = (await incoming_tokens(fake, clock, 1)).values()
    fake.latency = 3.0  # real seconds, above timeout=
    async with make_api(fake, clock, timeout=0.3) as api:
        with anyio.fail_after(5):
            obo = functools.partial(api.acquire_token_on_behalf_of, assertion, GRAPH_READ)
            outcomes = await burst(100, obo)
    assert all(isinstance(o, MsalTransportError) for o in outcomes), outcomes[:3]
    assert len({id(o) for o in outcomes}) == 100  # each waiter its own copy ...
    causes = {id(o.__cause__) for o in outcomes if isinstance(o, BaseException)}
    assert len(causes) == 1  # ... chained to the flight's one error
    assert len(fake.token_requests) == 1


async def test_a_waiter_costs_no_cancel_scope_of_its_own(
    fake: FakeAuthority, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deadlines (cancel scopes with a timer) of a burst do not grow with its callers."""
    scopes = {"within": 0, "until": 0}
    within, until = _deadline.within, _deadline.until

    def counting_within(seconds: float, call: Callable[[], Awaitable[Any]]) -> Awaitable[Any]:
        scopes["within"] += 1
        return within(seconds, call)

    def counting_until(deadline: float, call: Callable[[], Awaitable[Any]], s: float) -> Any:
        scopes["until"] += 1
        return until(deadline, call, s)

    monkeypatch.setattr("aiomsal._apps._application.within", counting_within)
    monkeypatch.setattr("aiomsal._concurrency._singleflight.until", counting_until)
    tokens = list((await incoming_tokens(fake, clock, 2)).values())
    fake.latency = 0.05
    counts = []
    for assertion, callers in zip(tokens, (1, CALLERS), strict=True):
        scopes.update(within=0, until=0)
        async with make_api(fake, clock) as api:
            await burst(
                callers, functools.partial(api.acquire_token_on_behalf_of, assertion, GRAPH_READ)
            )
        counts.append(dict(scopes))
    assert counts[0] == counts[1]  # one caller or 1,000: the same deadlines
    assert counts[1]["within"] <= 1  # the token request's, inside the flight


async def test_an_expired_assertion_is_refused_before_joining_a_flight(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    [assertion] = (await incoming_tokens(fake, clock, 1)).values()
    fake.latency = 0.05
    async with make_api(fake, clock) as api, anyio.create_task_group() as group:
        obo = functools.partial(api.acquire_token_on_behalf_of, assertion, GRAPH_READ)
        group.start_soon(burst, 1, obo)  # its outcome does not matter (the fake sees expiry too)
        await wait_until(lambda: len(api._calls) == 1)
        await clock.advance(2 * 3600)  # the assertion (an hour's token) has expired
        with pytest.raises(MsalAssertionExpiredError):
            await obo()
        assert api._calls.coalesced == 0


async def test_unhashable_and_invalid_obo_input_still_gets_the_typed_error(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    [assertion] = (await incoming_tokens(fake, clock, 1)).values()
    async with make_api(fake, clock) as api:
        with pytest.raises(MsalConfigurationError):
            await api.acquire_token_on_behalf_of(assertion, [["not", "a", "scope"]])  # type: ignore[list-item]
        with pytest.raises(MsalConfigurationError):
            await api.acquire_token_on_behalf_of(assertion, "User.Read")
        with pytest.raises((MsalConfigurationError, TypeError)):
            await api.acquire_token_on_behalf_of(assertion, GRAPH_READ, tenant={"x": 1})  # type: ignore[arg-type]
    assert fake.token_requests == []


# -- silent: the same cold path ------------------------------------------------------------


async def signed_in(
    fake: FakeAuthority, clock: VirtualClock, *names: str
) -> PublicClientApplication:
    """A public client with ``names`` signed in (ROPC), the token requests forgotten."""
    app = PublicClientApplication(CLIENT, authority=fake.authority("contoso"), clock=clock)
    for name in names:
        fake.add_user(f"{name}@contoso.com", password="pw", tenant="contoso")
        await app.acquire_token_by_username_password(f"{name}@contoso.com", "pw", GRAPH_READ)
    fake.token_requests.clear()
    return app


async def test_1000_cold_silent_refreshes_for_one_account_send_one_request(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    async with await signed_in(fake, clock, "alice") as app:
        [account] = await app.get_accounts()
        fake.token_requests.clear()
        before = app.statistics()
        fake.latency = 0.05
        outcomes = await burst(
            CALLERS, lambda: app.acquire_token_silent(GRAPH_READ, account, force_refresh=True)
        )
        stats = app.statistics()
    assert {getattr(o, "token_source", o) for o in outcomes} == {"identity_provider"}
    assert [r.grant_type for r in fake.token_requests] == ["refresh_token"]
    assert stats.misses - before.misses == CALLERS
    assert stats.coalesced - before.coalesced == CALLERS - 1


async def test_silent_calls_for_other_accounts_do_not_share(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    async with await signed_in(fake, clock, "alice", "bob", "carol") as app:
        accounts = await app.get_accounts()
        fake.token_requests.clear()
        fake.latency = 0.05
        async with anyio.create_task_group() as group:
            for account in accounts:
                for _ in range(20):
                    group.start_soon(
                        functools.partial(
                            app.acquire_token_silent, GRAPH_READ, account, force_refresh=True
                        )
                    )
        # Another scope for the same account: a call of its own (after, as refresh tokens
        # are single-use at this authority).
        outcomes = await burst(20, lambda: app.acquire_token_silent(MAIL, accounts[0]))
    assert {getattr(o, "token_source", o) for o in outcomes} == {"identity_provider"}
    assert [r.grant_type for r in fake.token_requests] == ["refresh_token"] * 4


async def test_a_silent_burst_without_a_refresh_token_gets_none(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    async with await signed_in(fake, clock, "alice") as app:
        [account] = await app.get_accounts()
        app._users.remove_refresh_token(*_only_refresh_token(app))
        outcomes = await burst(50, lambda: app.acquire_token_silent(MAIL, account))
    assert outcomes == [None] * 50


def _only_refresh_token(app: PublicClientApplication) -> tuple[Any, str]:
    [token] = list(app._users.tokens())
    found = app._users.refresh_token(token.key.partition)
    assert found is not None
    return token.key.partition, found.secret
