"""Event loops and lifetime: one application across loops and threads, closing, bounded memory."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace

import anyio
import pytest

import aiomsal
from aiomsal import (
    AuthenticationResult,
    ConfidentialClientApplication,
    MsalError,
    MsalTransportError,
    PublicClientApplication,
)
from aiomsal._cache._store import CachedToken
from aiomsal.testing import FakeAuthority, VirtualClock
from tests.helpers import GRAPH, SECRET, _runs_aiomsal_code, aiomsal_tasks, wait_until
from tests.lifetime_helpers import fake_clock, fake_in_thread, incoming_assertions, serving
from tests.redis_server import RedisServer

CLIENT = "lifetime-client"
API = "lifetime-api"
USER_READ = ["https://graph.microsoft.com/User.Read"]


def make_app(authority: str, **options: object) -> ConfidentialClientApplication:
    return ConfidentialClientApplication(
        CLIENT, client_credential=SECRET, authority=authority, **options  # type: ignore[arg-type]
    )


# -- one application, several event loops ------------------------------------------------


def test_two_asyncio_runs_share_a_module_level_app() -> None:
    """A script or notebook: the second asyncio.run() gets misses answered and timeout= firing."""
    with fake_in_thread(CLIENT, secret=SECRET) as threaded:
        fake = threaded.fake
        app = make_app(fake.authority("contoso"), timeout=0.5)

        async def first() -> AuthenticationResult:
            return await app.acquire_token_for_client(GRAPH)

        async def second() -> tuple[AuthenticationResult, AuthenticationResult]:
            with anyio.fail_after(5):
                fresh = await app.acquire_token_for_client(GRAPH, force_refresh=True)
                hit = await app.acquire_token_for_client(GRAPH)
                threaded.call(lambda: fake.fail_next(1, fault="hang"))
                with pytest.raises(MsalTransportError):
                    await app.acquire_token_for_client(GRAPH, force_refresh=True)
            return fresh, hit

        async def third() -> None:
            with anyio.fail_after(5):
                await app.acquire_token_for_client(GRAPH, force_refresh=True)
                await app.aclose()
            assert aiomsal_tasks() == []

        cold = asyncio.run(first())
        fresh, hit = asyncio.run(second())
        asyncio.run(third())
    assert cold.token_source == fresh.token_source == "identity_provider"
    assert hit.token_source == "cache"
    assert hit.access_token == fresh.access_token != cold.access_token
    assert len(fake.token_requests) == 4


def end_like_a_test_runner(loop: asyncio.AbstractEventLoop) -> None:
    """What asyncio.run(), anyio's and pytest's runners do: cancel what is left, then close."""
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


# A loop only stopped (never closed) keeps the tasks it was given and never ran (a
# background refresh started by the last hit): Python warns when they are collected.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore:coroutine 'TaskRunner._guard' was never awaited")
@pytest.mark.parametrize("close_each_loop", [True, False])
def test_a_shared_app_across_per_test_event_loops(close_each_loop: bool) -> None:
    """A test suite with one loop per test and a shared application fixture."""
    with fake_in_thread(CLIENT, secret=SECRET) as threaded:
        app = make_app(threaded.fake.authority("contoso"), timeout=0.5)
        loops = []
        sources = []
        for round_ in range(3):
            loop = asyncio.new_event_loop()
            loops.append(loop)

            async def one_test(round_: int = round_) -> None:
                with anyio.fail_after(5):
                    result = await app.acquire_token_for_client(GRAPH, force_refresh=round_ > 0)
                    sources.append(result.token_source)
                    sources.append((await app.acquire_token_for_client(GRAPH)).token_source)

            loop.run_until_complete(one_test())
            if close_each_loop:
                end_like_a_test_runner(loop)
        final = asyncio.new_event_loop()
        final.run_until_complete(app.aclose())
        final.close()
        for loop in loops:
            loop.close()
    assert sources == ["identity_provider", "cache"] * 3
    assert len(threaded.fake.token_requests) == 3


def test_a_second_running_loop_gets_a_clear_error_and_takes_over_once_the_first_ends() -> None:
    """Two threads with their own loops: a hit is served, a miss is refused at once, typed."""
    with fake_in_thread(CLIENT, secret=SECRET) as threaded:
        app = make_app(threaded.fake.authority("contoso"), timeout=1)
        bound, release = threading.Event(), threading.Event()

        async def owner() -> None:
            await app.acquire_token_for_client(GRAPH)
            await app.acquire_token_for_client(GRAPH)  # a hit: scheduled for refresh here
            bound.set()
            while not release.is_set():  # noqa: ASYNC110 - the other thread sets it
                await asyncio.sleep(0.005)

        thread = threading.Thread(target=lambda: asyncio.run(owner()))
        thread.start()
        assert bound.wait(10)

        async def from_another_thread() -> AuthenticationResult:
            with anyio.fail_after(5):
                hit = await app.acquire_token_for_client(GRAPH)
                with pytest.raises(MsalError, match="another running event loop") as refused:
                    await app.acquire_token_for_client(GRAPH, force_refresh=True)
                assert type(refused.value) is MsalError
                with pytest.raises(MsalError, match="another running event loop"):
                    await app.aclose()
            return hit

        try:
            hit = asyncio.run(from_another_thread())
        finally:
            release.set()
            thread.join(10)

        async def after_the_owner_ended() -> AuthenticationResult:
            with anyio.fail_after(5):
                result = await app.acquire_token_for_client(GRAPH, force_refresh=True)
                await app.aclose()
            return result

        taken_over = asyncio.run(after_the_owner_ended())
    assert hit.token_source == "cache"
    assert taken_over.token_source == "identity_provider"
    assert len(threaded.fake.token_requests) == 2


# -- closing ----------------------------------------------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[FakeAuthority]:
    async with serving(CLIENT, API, secret=SECRET, public="lifetime-public") as authority:
        yield authority


@pytest.fixture
def clock(fake: FakeAuthority) -> VirtualClock:
    """The fake's clock, never advanced unless a test says so."""
    return fake_clock(fake)


@pytest.mark.anyio
async def test_closing_under_1000_in_flight_calls_leaves_no_task_and_types_every_outcome(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    fake.latency = 0.5  # real seconds: every call is in flight (or waiting for the pool)
    app = make_app(fake.authority("contoso"), clock=clock)
    await app.acquire_token_for_client(GRAPH)  # the metadata is known: misses reach the pool
    outcomes: list[object] = []

    async def call(i: int) -> None:
        try:
            scopes = [f"api://resource-{i % 250}/.default"]
            outcomes.append(await app.acquire_token_for_client(scopes))
        except MsalError as exc:
            outcomes.append(exc)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            for i in range(1000):
                group.start_soon(call, i)
            await wait_until(lambda: app.statistics().misses == 1001)
            await app.aclose()
    assert len(outcomes) == 1000
    assert all(isinstance(o, MsalError) for o in outcomes)  # nothing had come back yet
    assert {str(o) for o in outcomes} <= {
        "the application was closed",
        "the application was closed while acquiring a token",
    }
    assert aiomsal_tasks() == []
    assert app.statistics().requests_sent <= 1 + 250


@pytest.mark.anyio
async def test_every_call_after_close_raises_hits_included(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    alice = fake.add_user("alice@contoso.com", password="pw", tenant="contoso")
    [assertion] = incoming_assertions(fake, clock, API, 1)
    confidential = make_app(fake.authority("contoso"), clock=clock)
    api = ConfidentialClientApplication(
        API, client_credential=SECRET, authority=fake.authority("contoso"), clock=clock
    )
    public = PublicClientApplication(
        "lifetime-public", authority=fake.authority("contoso"), clock=clock
    )
    for _ in range(2):  # a miss, then a hit: the hit paths are memoized
        await confidential.acquire_token_for_client(GRAPH)
        await api.acquire_token_on_behalf_of(assertion, USER_READ)
    await public.acquire_token_by_username_password(alice.username, "pw", USER_READ)
    [account] = await public.get_accounts()
    assert (await public.acquire_token_silent(USER_READ, account)).token_source == "cache"  # type: ignore[union-attr]
    for app in (confidential, api, public):
        await app.aclose()
    sent = len(fake.token_requests)

    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: confidential.acquire_token_for_client(GRAPH),
        lambda: confidential.acquire_token_for_client(iter(GRAPH)),
        lambda: api.acquire_token_on_behalf_of(assertion, USER_READ),
        lambda: public.acquire_token_silent(USER_READ, account),
        lambda: public.get_accounts(),
        lambda: public.remove_account(account),
        lambda: public.acquire_token_by_username_password(alice.username, "pw", USER_READ),
        lambda: public.acquire_token_by_refresh_token("rt", USER_READ),
        lambda: public.initiate_device_flow(USER_READ),
        lambda: public.initiate_auth_code_flow(USER_READ, "http://localhost"),
        lambda: public.get_authorization_request_url(USER_READ, "http://localhost"),
    ]
    for call in calls:
        with pytest.raises(MsalError, match="closed"):
            await call()
    with pytest.raises(MsalError, match="closed"):
        async with confidential:
            pass
    assert len(fake.token_requests) == sent
    assert confidential.statistics().hits == 1  # statistics keep answering
    assert aiomsal_tasks() == []


# -- bounded memory under hot users -------------------------------------------------------


def retained_by_aiomsal() -> int:
    """Bytes still allocated by aiomsal's own modules (not its fakes, not the test's)."""
    gc.collect()
    package = os.path.dirname(os.path.abspath(aiomsal.__file__))
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [
            tracemalloc.Filter(True, os.path.join(package, "*")),
            tracemalloc.Filter(False, os.path.join(package, "testing", "*")),
        ]
    )
    return sum(stat.size for stat in snapshot.statistics("filename"))


def live_tokens() -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, CachedToken))


@pytest.mark.anyio
async def test_a_bounded_cache_keeps_memory_flat_under_hot_on_behalf_of_users(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    """Each user calls twice (a miss, then a hit that schedules a refresh): memory stays flat."""
    limit = 100
    assertions = incoming_assertions(fake, clock, API, 900)
    app = ConfidentialClientApplication(
        API,
        client_credential=SECRET,
        authority=fake.authority("contoso"),
        clock=clock,
        max_cache_entries=limit,
    )

    async def users(batch: list[str]) -> None:
        for start in range(0, len(batch), 20):

            async def twice(assertion: str) -> None:
                await app.acquire_token_on_behalf_of(assertion, USER_READ)
                hit = await app.acquire_token_on_behalf_of(assertion, USER_READ)
                assert hit.token_source == "cache"

            async with anyio.create_task_group() as group:
                for assertion in batch[start : start + 20]:
                    group.start_soon(twice, assertion)
        fake.token_requests.clear()  # the fake's own log is not the application's memory

    async with app:
        await users(assertions[:100])  # warm: pools, memos and the metadata are in place
        gc.collect()
        tracemalloc.start()
        try:
            await users(assertions[100:300])
            after_200 = retained_by_aiomsal()
            await users(assertions[300:])
            after_800 = retained_by_aiomsal()
        finally:
            tracemalloc.stop()
        scheduled = len(app._refresher)
        tokens = live_tokens()
        evicted_assertion_kept = any(
            token.context in assertions[:800] for token in app._refresher._heap
        )
    assert app.statistics().hits == 900
    assert scheduled <= 2 * limit + 64  # swept of tokens that left once grown by a quarter
    assert tokens <= 3 * limit
    assert not evicted_assertion_kept  # an evicted user's assertion leaves with its token
    # 600 more users: an unbounded schedule would keep ~600 x 3.9 KiB (2.3 MiB) alive;
    # here at most the records of a quarter's growth wait for the next sweep.
    assert after_800 - after_200 < 512 * 1024
    assert len(app._refresher) == 0 and app._refresher._heap == []  # aclose() emptied it


@pytest.mark.anyio
async def test_a_bounded_application_token_cache_keeps_its_schedule_bounded(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    limit = 20
    async with make_app(fake.authority("contoso"), clock=clock, max_cache_entries=limit) as app:
        for i in range(300):
            scopes = [f"api://hot-{i}/.default"]
            await app.acquire_token_for_client(scopes)
            assert (await app.acquire_token_for_client(scopes)).token_source == "cache"
        gc.collect()
        assert len(app._refresher) <= 2 * limit + 64
        assert live_tokens() <= 3 * limit + 64


# -- the background refresh schedule ---------------------------------------------------------


@pytest.mark.anyio
async def test_a_refresh_skipped_because_its_token_was_replaced_is_not_counted(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    async with make_app(fake.authority("contoso"), clock=clock) as app:
        await app.acquire_token_for_client(GRAPH)
        await app.acquire_token_for_client(GRAPH)  # a hit: scheduled for its refresh time
        await app.acquire_token_for_client(GRAPH, force_refresh=True)  # replaced, never used
        await clock.advance(3600)
        await wait_until(lambda: not app._runner._pending)
        await anyio.sleep(0.05)  # a refresh would have reached the authority by now
        stats = app.statistics()
    assert stats.background_refreshes == 0
    assert stats.requests_sent == len(fake.token_requests) == 2


@pytest.mark.anyio
async def test_an_evicted_token_leaves_the_schedule_with_its_assertion(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    assertions = incoming_assertions(fake, clock, API, 3)
    async with ConfidentialClientApplication(
        API,
        client_credential=SECRET,
        authority=fake.authority("contoso"),
        clock=clock,
        max_cache_entries=1,
    ) as app:
        for assertion in assertions:
            await app.acquire_token_on_behalf_of(assertion, USER_READ)
            await app.acquire_token_on_behalf_of(assertion, USER_READ)
        gc.collect()
        held = [t.context for t in app._refresher._heap if t.renew is not None]
        assert held == assertions[-1:]  # the evicted ones' assertions were let go at once


# -- the test helpers themselves --------------------------------------------------------------


def test_finding_aiomsal_tasks_compares_with_the_package_directory() -> None:
    """A checkout named ``aiomsal`` (git's default) puts its virtualenv under ``/aiomsal/``."""
    package = os.path.dirname(os.path.abspath(aiomsal.__file__))
    checkout = os.path.dirname(package)

    def runs(path: str) -> bool:
        coroutine = SimpleNamespace(cr_code=SimpleNamespace(co_filename=path))
        return _runs_aiomsal_code(coroutine)

    assert runs(os.path.join(package, "_concurrency", "_tasks.py"))
    assert not runs(os.path.join(package, "testing", "_fake_authority.py"))
    assert not runs(os.path.join(checkout, ".venv", "lib", "site-packages", "anyio", "_core.py"))
    assert not runs("/home/me/aiomsal/.venv/lib/python3.11/site-packages/anyio/_core.py")


def test_two_asyncio_runs_keep_a_redis_storage_working(redis_server: RedisServer) -> None:
    """The storage's Redis connections belong to the first loop: the second run gets new ones."""
    with fake_in_thread(CLIENT, secret=SECRET) as threaded:
        fake = threaded.fake
        storage = aiomsal.RedisCacheStorage(redis_server.url)
        app = make_app(fake.authority("contoso"), cache_storage=storage)
        other = make_app(fake.authority("contoso"), cache_storage=storage)

        async def first() -> None:
            await app.acquire_token_for_client(GRAPH)

        async def second() -> AuthenticationResult:
            with anyio.fail_after(5):
                result = await other.acquire_token_for_client(GRAPH)  # a miss read from Redis
                await app.acquire_token_for_client(GRAPH, force_refresh=True)  # a write-through
                await other.aclose()
                await app.aclose()
            return result

        asyncio.run(first())
        result = asyncio.run(second())
    assert result.token_source == "cache"
    assert other.statistics().storage_hits == 1
    assert app.statistics().storage_errors == other.statistics().storage_errors == 0
    assert len(fake.token_requests) == 2
