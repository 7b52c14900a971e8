"""Cold bursts: the waiters of a miss join one flight and do nothing else until it ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import anyio
import pytest

from aiomsal import ConfidentialClientApplication, MsalError, MsalServiceError
from aiomsal._concurrency._singleflight import SingleFlight
from aiomsal._concurrency._tasks import TaskRunner
from aiomsal._transport._authority_resolver import ResolvedAuthority
from aiomsal.testing import FakeAuthority
from tests.helpers import GRAPH, SECRET, wait_until

pytestmark = pytest.mark.anyio

CLIENT = "cold-start-client"
CALLERS = 1000


@pytest.fixture
async def fake() -> AsyncIterator[FakeAuthority]:
    async with FakeAuthority() as authority:
        authority.add_client(CLIENT, secret=SECRET)
        yield authority


def make_app(fake: FakeAuthority) -> ConfidentialClientApplication:
    return ConfidentialClientApplication(
        CLIENT, client_credential=SECRET, authority=fake.authority("contoso")
    )


async def test_a_cold_burst_resolves_the_authority_in_the_flight_only(
    fake: FakeAuthority,
) -> None:
    """1,000 cold callers: the flight resolves the authority; no waiter wakes to do it."""
    fake.latency = 0.05
    async with make_app(fake) as app:
        resolves = 0
        resolve = app._resolver.resolve

        async def counting(authority: object) -> ResolvedAuthority:
            nonlocal resolves
            resolves += 1
            return await resolve(authority)  # type: ignore[arg-type]

        app._resolver.resolve = counting  # type: ignore[method-assign]
        async with anyio.create_task_group() as group:
            for _ in range(CALLERS):
                group.start_soon(app.acquire_token_for_client, GRAPH)
        stats = app.statistics()
    # Once to build the key and once to find the token endpoint, in the flight (a waiter
    # resolving for itself made it 1,000 + 1, and woke every waiter before the request).
    assert resolves == 2
    assert len(fake.token_requests) == 1
    assert (stats.misses, stats.coalesced, stats.requests_sent) == (CALLERS, CALLERS - 1, 1)


async def test_a_failed_cold_flight_reaches_every_waiter_and_is_forgotten(
    fake: FakeAuthority,
) -> None:
    fake.latency = 0.02
    fake.fail_next(1, status=400)
    outcomes: list[BaseException | str] = []

    async def call() -> None:
        try:
            outcomes.append((await app.acquire_token_for_client(GRAPH)).token_source)
        except MsalServiceError as exc:
            outcomes.append(exc)

    async with make_app(fake) as app:
        async with anyio.create_task_group() as group:
            for _ in range(100):
                group.start_soon(call)
        assert len(outcomes) == 100
        assert all(isinstance(o, MsalServiceError) for o in outcomes)
        again = await app.acquire_token_for_client(GRAPH)
    assert again.token_source == "identity_provider"
    assert len(fake.token_requests) == 2


async def test_a_cancelled_cold_waiter_leaves_the_others_served(fake: FakeAuthority) -> None:
    fake.latency = 0.1
    served: list[str] = []

    async def call() -> None:
        served.append((await app.acquire_token_for_client(GRAPH)).token_source)

    async with make_app(fake) as app:
        async with anyio.create_task_group() as group:
            for _ in range(10):
                group.start_soon(call)
            with anyio.CancelScope() as scope:
                scope.cancel()
                await app.acquire_token_for_client(GRAPH)  # joins, then gives up at once
            await wait_until(lambda: len(fake.token_requests) == 1)
        assert scope.cancelled_caught
    assert served == ["identity_provider"] * 10
    assert len(fake.token_requests) == 1


# -- SingleFlight.join: the waiter's future ------------------------------------------


async def test_join_gives_a_future_of_the_running_flight_only() -> None:
    runner = TaskRunner()
    flights: SingleFlight[str, int] = SingleFlight(runner)
    release = asyncio.Event()

    async def work(value: int) -> int:
        await release.wait()
        return value

    assert flights.join("k") is None  # nothing runs: the caller must start the flight
    leader = asyncio.ensure_future(flights.run("k", work, 42))
    await asyncio.sleep(0)
    joined = [flights.join("k") for _ in range(3)]
    assert all(f is not None for f in joined)
    cancelled = joined[0]
    assert cancelled is not None
    cancelled.cancel()  # one caller gives up: the flight goes on for the others
    release.set()
    assert await leader == 42
    assert [await f for f in joined[1:] if f is not None] == [42, 42]
    assert flights.coalesced == 3
    assert flights.join("k") is None  # the flight is over and forgotten
    await runner.aclose()


async def test_join_delivers_a_failure_and_an_abort() -> None:
    runner = TaskRunner()
    flights: SingleFlight[str, int] = SingleFlight(runner)
    release = asyncio.Event()

    async def fail() -> int:
        await release.wait()
        raise MsalError("no token")

    async def hang() -> int:
        await asyncio.Event().wait()
        return 0

    failing = asyncio.ensure_future(flights.run("a", fail))
    hanging = asyncio.ensure_future(flights.run("b", hang))
    await asyncio.sleep(0)
    joined_a, joined_b = flights.join("a"), flights.join("b")
    assert joined_a is not None and joined_b is not None
    release.set()
    with pytest.raises(MsalError, match="no token"):
        await joined_a
    with pytest.raises(MsalError, match="no token"):
        await failing
    flights.abort(MsalError("closing"))
    with pytest.raises(MsalError, match="closing"):
        await joined_b
    with pytest.raises(MsalError, match="closing"):
        await hanging
    await runner.aclose()
