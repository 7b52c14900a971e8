"""ConfidentialClientApplication.acquire_token_for_client against FakeAuthority."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import anyio
import pytest

from aiomsal import (
    AuthenticationResult,
    ConfidentialClientApplication,
    MsalConfigurationError,
    MsalError,
    MsalServiceError,
    MsalThrottledError,
    MsalTransportError,
)
from aiomsal.testing import FakeAuthority, VirtualClock
from tests.helpers import GRAPH, SECRET, aiomsal_tasks, wait_until

pytestmark = pytest.mark.anyio

CLIENT = "11111111-2222-3333-4444-555555555555"


@pytest.fixture
async def fake() -> AsyncIterator[FakeAuthority]:
    async with FakeAuthority() as authority:
        authority.add_client(CLIENT, secret=SECRET)
        yield authority


def make_app(fake: FakeAuthority, **options: object) -> ConfidentialClientApplication:
    return ConfidentialClientApplication(
        CLIENT,
        client_credential=SECRET,
        authority=fake.authority("contoso"),
        **options,  # type: ignore[arg-type]
    )


def token_requests(fake: FakeAuthority) -> int:
    return len(fake.token_requests)


async def test_first_call_asks_the_authority_then_the_cache_answers(fake: FakeAuthority) -> None:
    async with make_app(fake) as app:
        first = await app.acquire_token_for_client(GRAPH)
        second = await app.acquire_token_for_client(GRAPH)
    assert first.token_source == "identity_provider"
    assert second.token_source == "cache"
    assert second.access_token == first.access_token
    assert first.correlation_id is not None
    assert first.scopes == tuple(GRAPH)
    assert first.tenant_id == "contoso"
    assert first.expires_on > first.refresh_on > 0  # type: ignore[operator]
    assert token_requests(fake) == 1
    assert first.access_token not in repr(first)
    assert app.statistics().hits == 1


async def test_one_thousand_concurrent_callers_send_one_request(fake: FakeAuthority) -> None:
    fake.latency = 0.05
    results: list[AuthenticationResult] = []

    async def call() -> None:
        results.append(await app.acquire_token_for_client(GRAPH))

    async with make_app(fake) as app, anyio.create_task_group() as group:
        for _ in range(1000):
            group.start_soon(call)
    assert token_requests(fake) == 1
    assert len({r.access_token for r in results}) == 1
    assert len(results) == 1000
    stats = app.statistics()
    assert stats.requests_sent == 1
    assert stats.misses + stats.hits == 1000


async def test_one_hundred_keys_times_ten_callers_send_one_hundred_requests(
    fake: FakeAuthority,
) -> None:
    fake.latency = 0.02
    scopes = [[f"api://resource-{i}/.default"] for i in range(100)]
    tokens: dict[int, set[str]] = {i: set() for i in range(100)}

    async def call(i: int) -> None:
        tokens[i].add((await app.acquire_token_for_client(scopes[i])).access_token)

    async with make_app(fake) as app, anyio.create_task_group() as group:
        for _ in range(10):
            for i in range(100):
                group.start_soon(call, i)
    assert token_requests(fake) == 100
    assert all(len(t) == 1 for t in tokens.values())
    assert len(set().union(*tokens.values())) == 100
    # Metadata is fetched once for the authority, however many callers needed it.
    assert fake.discovery_requests == 2  # instance discovery + OpenID configuration


async def test_instance_discovery_can_be_turned_off(fake: FakeAuthority) -> None:
    async with make_app(fake, instance_discovery=False) as app:
        await app.acquire_token_for_client(GRAPH)
    assert fake.discovery_requests == 1


async def test_each_tenant_has_its_own_token(fake: FakeAuthority) -> None:
    async with make_app(fake) as app:
        a = await app.acquire_token_for_client(GRAPH, tenant="tenant-a")
        b = await app.acquire_token_for_client(GRAPH, tenant="tenant-b")
        again = await app.acquire_token_for_client(GRAPH, tenant="tenant-a")
    assert (a.tenant_id, b.tenant_id) == ("tenant-a", "tenant-b")
    assert a.access_token != b.access_token
    assert again.access_token == a.access_token
    assert [r.tenant for r in fake.token_requests] == ["tenant-a", "tenant-b"]


async def test_wrong_secret_is_an_invalid_client_error(fake: FakeAuthority) -> None:
    app = ConfidentialClientApplication(
        CLIENT, client_credential="wrong", authority=fake.authority("contoso")
    )
    async with app:
        with pytest.raises(MsalServiceError) as caught:
            await app.acquire_token_for_client(GRAPH)
    assert caught.value.error == "invalid_client"
    assert caught.value.status == 401
    assert 7000215 in caught.value.error_codes
    assert "wrong" not in str(caught.value)
    assert app.statistics().cached_tokens == 0


async def test_a_failure_reaches_every_waiter_and_is_not_cached(fake: FakeAuthority) -> None:
    fake.latency = 0.05
    fake.fail_next(1, status=400)
    errors: list[BaseException] = []

    async def call() -> None:
        try:
            await app.acquire_token_for_client(GRAPH)
        except MsalServiceError as exc:
            errors.append(exc)

    async with make_app(fake) as app:
        async with anyio.create_task_group() as group:
            for _ in range(20):
                group.start_soon(call)
        assert len(errors) == 20
        assert token_requests(fake) == 1
        result = await app.acquire_token_for_client(GRAPH)
    assert result.token_source == "identity_provider"
    assert token_requests(fake) == 2


async def test_a_cancelled_waiter_does_not_cancel_the_request_for_others(
    fake: FakeAuthority,
) -> None:
    fake.latency = 0.2
    results: list[AuthenticationResult] = []
    leader = anyio.CancelScope()

    async def lead() -> None:
        with leader:  # the caller that starts the flight, then gives up
            await app.acquire_token_for_client(GRAPH)

    async def call() -> None:
        results.append(await app.acquire_token_for_client(GRAPH))

    async with make_app(fake) as app:
        async with anyio.create_task_group() as group:
            group.start_soon(lead)
            await wait_until(lambda: token_requests(fake) == 1)
            for _ in range(5):
                group.start_soon(call)
            await anyio.sleep(0.01)
            leader.cancel()
        assert leader.cancelled_caught
        assert len(results) == 5
        assert token_requests(fake) == 1
        # A caller that gives up on a cold key leaves the request to finish and fill the cache.
        with anyio.move_on_after(0.01):
            await app.acquire_token_for_client(["api://other/.default"])
        await wait_until(lambda: app.statistics().cached_tokens == 2)
        other = await app.acquire_token_for_client(["api://other/.default"])
    assert other.token_source == "cache"
    assert token_requests(fake) == 2


async def test_different_keys_never_wait_on_each_other(fake: FakeAuthority) -> None:
    fake.fail_next(1, fault="hang")
    async with make_app(fake, timeout=30) as app, anyio.create_task_group() as group:
        group.start_soon(app.acquire_token_for_client, ["api://slow/.default"])
        await wait_until(lambda: token_requests(fake) == 1)
        with anyio.fail_after(5):
            fast = await app.acquire_token_for_client(["api://fast/.default"])
        assert fast.token_source == "identity_provider"
        group.cancel_scope.cancel()


@pytest.mark.parametrize(("status", "retry_after"), [(429, 30.0), (503, 12.0)])
async def test_throttling_is_remembered_until_retry_after_passes(
    status: int, retry_after: float
) -> None:
    clock = VirtualClock()
    async with FakeAuthority(clock=clock) as fake:
        fake.add_client(CLIENT, secret=SECRET)
        fake.fail_next(1, status=status, retry_after=retry_after)
        async with make_app(fake, clock=clock) as app:
            with pytest.raises(MsalThrottledError) as caught:
                await app.acquire_token_for_client(GRAPH)
            assert caught.value.retry_after == retry_after
            await clock.advance(retry_after / 2)
            with pytest.raises(MsalThrottledError) as again:
                await app.acquire_token_for_client(GRAPH)
            assert 0 < again.value.retry_after <= retry_after / 2
            assert token_requests(fake) == 1  # answered from memory
            assert app.statistics().requests_sent == 1
            await clock.advance(retry_after)
            result = await app.acquire_token_for_client(GRAPH)
        assert result.token_source == "identity_provider"
        assert token_requests(fake) == 2


async def test_a_server_error_is_retried_once(fake: FakeAuthority) -> None:
    fake.fail_next(1, status=500)
    async with make_app(fake) as app:
        result = await app.acquire_token_for_client(GRAPH)
    assert result.token_source == "identity_provider"
    assert token_requests(fake) == 2


@pytest.mark.parametrize(
    ("fault", "status", "error_type", "error"),
    [
        ("status", 500, MsalServiceError, "server_error"),
        ("html", 502, MsalServiceError, "invalid_response"),
        ("malformed_json", 200, MsalServiceError, "invalid_response"),
        ("drop", 500, MsalTransportError, None),
        ("hang", 500, MsalTransportError, None),
    ],
)
# Server errors and lost connections are retried once, so they take two faults to fail a call;
# a hang takes the whole call's deadline (timeout=), so one fails it.
async def test_each_fault_gives_its_typed_error_and_leaves_the_cache_usable(
    fake: FakeAuthority,
    fault: str,
    status: int,
    error_type: type[MsalError],
    error: str | None,
) -> None:
    faults = 1 if fault in ("malformed_json", "hang") else 2
    fake.fail_next(faults, status=status, fault=fault)  # type: ignore[arg-type]
    async with make_app(fake, timeout=0.5 if fault == "hang" else 5) as app:
        with anyio.fail_after(5), pytest.raises(error_type) as caught:
            await app.acquire_token_for_client(GRAPH)
        if error is not None:
            assert isinstance(caught.value, MsalServiceError)
            assert caught.value.error == error
        result = await app.acquire_token_for_client(GRAPH)
        assert result.token_source == "identity_provider"
        assert (await app.acquire_token_for_client(GRAPH)).token_source == "cache"


async def test_claims_challenge_and_force_refresh_skip_the_cache(fake: FakeAuthority) -> None:
    async with make_app(fake) as app:
        first = await app.acquire_token_for_client(GRAPH)
        forced = await app.acquire_token_for_client(GRAPH, force_refresh=True)
        claims = '{"access_token": {"xms_cc": {"values": ["cp1"]}}}'
        challenged = await app.acquire_token_for_client(GRAPH, claims_challenge=claims)
        cached = await app.acquire_token_for_client(GRAPH)
    assert forced.token_source == challenged.token_source == "identity_provider"
    assert len({first.access_token, forced.access_token, challenged.access_token}) == 3
    assert cached.access_token == challenged.access_token
    assert json.loads(fake.token_requests[-1].form["claims"]) == json.loads(claims)


async def test_a_token_near_expiry_is_not_served() -> None:
    clock = VirtualClock()
    async with FakeAuthority(clock=clock) as fake:
        fake.add_client(CLIENT, secret=SECRET)
        fake.token_lifetime = 3600
        app = make_app(fake, clock=clock)
        async with app:
            first = await app.acquire_token_for_client(GRAPH)
            await clock.advance(3600 - 301)
            assert (await app.acquire_token_for_client(GRAPH)).access_token == first.access_token
            await clock.advance(2)
            second = await app.acquire_token_for_client(GRAPH)
    assert second.access_token != first.access_token


async def test_close_leaves_no_task_behind(fake: FakeAuthority) -> None:
    fake.fail_next(1, fault="hang")
    app = make_app(fake, timeout=30)
    errors: list[BaseException] = []

    async def call() -> None:
        try:
            await app.acquire_token_for_client(GRAPH)
        except MsalError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as group:
        for _ in range(50):  # the leader and 49 waiters that joined its flight
            group.start_soon(call)
        await wait_until(lambda: token_requests(fake) == 1)
        await app.aclose()
    assert len(errors) == 50
    assert aiomsal_tasks() == []
    with pytest.raises(MsalError):
        await app.acquire_token_for_client(GRAPH)


@pytest.mark.parametrize(
    "scopes",
    [
        "https://graph.microsoft.com/.default",
        [],
        ["openid"],
        ["https://graph.microsoft.com/User.Read"],
        ["https://graph.microsoft.com/.default", "api://other/.default"],
        [""],
    ],
)
async def test_bad_scopes_are_refused_before_any_request(
    fake: FakeAuthority, scopes: object
) -> None:
    async with make_app(fake) as app:
        with pytest.raises(MsalConfigurationError):
            await app.acquire_token_for_client(scopes)  # type: ignore[arg-type]
    assert token_requests(fake) == 0
    assert fake.discovery_requests == 0


@pytest.mark.parametrize(
    "options",
    [
        {"client_id": ""},
        {"authority": "http://login.example.com/contoso"},
        {"authority": "not a url"},
        {"authority": "https://login.microsoftonline.com/contoso?x=1"},
        {"client_credential": ""},
        {"client_credential": {"private_key": "garbage", "thumbprint": "AB"}},
        {"verify": False},
        {"timeout": 0},
    ],
)
def test_bad_configuration_raises_at_construction(options: dict[str, object]) -> None:
    arguments: dict[str, object] = {
        "client_id": CLIENT,
        "client_credential": SECRET,
        "authority": "https://login.microsoftonline.com/contoso",
    }
    arguments.update(options)
    with pytest.raises(MsalConfigurationError):
        ConfidentialClientApplication(**arguments)  # type: ignore[arg-type]
