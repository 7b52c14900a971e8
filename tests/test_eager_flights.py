"""Flights start eagerly (Python 3.12+): a miss's request is not queued behind its waiters.

On Python 3.11 a flight's task is queued like any other, behind every task
already waiting for its first step; those tests check the fallback instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anyio
import pytest

from aiomsal import ConfidentialClientApplication
from aiomsal._concurrency._singleflight import SingleFlight
from aiomsal._concurrency._tasks import EAGER_TASKS, TaskRunner
from aiomsal.testing import FakeAuthority
from tests.helpers import SECRET

pytestmark = pytest.mark.anyio

CLIENT = "eager-client"
eager_only = pytest.mark.skipif(not EAGER_TASKS, reason="eager tasks need Python 3.12")


@pytest.fixture
async def fake() -> AsyncIterator[FakeAuthority]:
    async with FakeAuthority() as authority:
        authority.add_client(CLIENT, secret=SECRET)
        yield authority


@eager_only
async def test_a_flight_takes_its_first_step_before_the_call_that_started_it_returns() -> None:
    runner = TaskRunner()
    flights: SingleFlight[str, int] = SingleFlight(runner)
    steps: list[str] = []
    release = asyncio.Event()

    async def call() -> int:
        steps.append("started")
        await release.wait()
        return 7

    flight = flights.start("k", call)
    assert steps == ["started"]  # no await in between: the flight ran up to its first wait
    joined = flights.join("k")
    assert joined is not None
    release.set()
    assert await joined == 7
    assert flight.done.is_set()
    await runner.aclose()


async def test_a_flight_that_ends_in_its_first_step_is_forgotten_and_serves_its_caller() -> None:
    runner = TaskRunner()
    flights: SingleFlight[str, int] = SingleFlight(runner)
    calls = 0

    async def call() -> int:  # never suspends: an eager start finishes it inside start()
        nonlocal calls
        calls += 1
        return calls

    assert await flights.run("k", call) == 1
    assert len(flights) == 0  # no finished flight left behind for later callers to join
    assert await flights.run("k", call) == 2
    await runner.aclose()


async def test_aclose_cancels_a_flight_in_progress_and_leaves_no_task() -> None:
    runner = TaskRunner()
    flights: SingleFlight[str, int] = SingleFlight(runner)
    cancelled = asyncio.Event()

    async def call() -> int:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return 0

    flights.start("k", call)
    await asyncio.sleep(0)  # on 3.11, let the supervisor start it
    await asyncio.sleep(0)
    with anyio.fail_after(5):
        await runner.aclose()
    assert cancelled.is_set()
    assert runner._eager == set()
    with pytest.raises(Exception, match="closed"):
        flights.start("other", call)
    assert len(flights) == 0  # "k" ended with its cancellation; "other" was never known


async def test_a_new_keys_burst_on_a_pooled_connection_sends_its_request_at_once(
    fake: FakeAuthority,
) -> None:
    """2,000 callers miss a new key: the request goes out during the first caller's step.

    On 3.11 it leaves once the loop has given every caller its first step.
    """
    callers, entered = 2000, 0
    entered_when_sent: list[int] = []

    async def on_headers_sent(*_: Any) -> None:
        entered_when_sent.append(entered)

    trace = aiohttp.TraceConfig()
    trace.on_request_headers_sent.append(on_headers_sent)
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        app = ConfidentialClientApplication(
            CLIENT, client_credential=SECRET, authority=fake.authority("contoso"),
            http_session=session,
        )
        async with app:
            await app.acquire_token_for_client(["api://first/.default"])  # pools a connection
            entered_when_sent.clear()

            async def caller() -> None:
                nonlocal entered
                entered += 1
                await app.acquire_token_for_client(["api://second/.default"])

            async with anyio.create_task_group() as group:
                for _ in range(callers):
                    group.start_soon(caller)
            stats = app.statistics()
    assert len(fake.token_requests) == 2
    assert stats.coalesced == callers - 1
    assert entered_when_sent == ([1] if EAGER_TASKS else [callers])
