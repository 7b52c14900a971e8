"""The call path: deadlines, retries, the pool, failed flights, the clock, scopes, claims, OBO."""

from __future__ import annotations

import json
import traceback
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import anyio
import pytest
from aiohttp import web

from aiomsal import (
    ConfidentialClientApplication,
    FileCacheStorage,
    MsalAssertionExpiredError,
    MsalConfigurationError,
    MsalError,
    MsalServiceError,
    MsalThrottledError,
    MsalTransportError,
    MsalUiRequiredError,
    PublicClientApplication,
)
from aiomsal._concurrency._deadline import within
from aiomsal._concurrency._singleflight import own_copy
from aiomsal._protocol._assertion_lifetime import ASSERTION_CLOCK_SKEW, assertion_expiry
from aiomsal._protocol._http import HttpRequest
from aiomsal._transport._aiohttp_transport import AiohttpTransport
from aiomsal.testing import FakeAuthority, VirtualClock
from tests.helpers import GRAPH, SECRET, aiomsal_tasks, wait_until
from tests.lifetime_helpers import fake_clock, incoming_assertions, serving

pytestmark = pytest.mark.anyio

CLIENT = "call-path-client"
API = "call-path-api"
PUBLIC = "call-path-public"
USER_READ = ["https://graph.microsoft.com/User.Read"]


@pytest.fixture
async def fake() -> AsyncIterator[FakeAuthority]:
    async with serving(CLIENT, API, secret=SECRET, public=PUBLIC) as authority:
        yield authority


@pytest.fixture
def clock(fake: FakeAuthority) -> VirtualClock:
    """The fake's clock, never advanced unless a test says so."""
    return fake_clock(fake)


def confidential(
    fake: FakeAuthority, clock: VirtualClock, **options: object
) -> ConfidentialClientApplication:
    return ConfidentialClientApplication(
        CLIENT,
        client_credential=SECRET,
        authority=fake.authority("contoso"),
        clock=clock,
        **options,  # type: ignore[arg-type]
    )


# -- item 13: each waiter of a failed flight gets its own exception ---------------------------


async def test_2000_waiters_of_a_failed_flight_each_get_their_own_exception(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    fake.latency = 0.2
    fake.fail_next(1, status=400)
    errors: dict[int, BaseException] = {}
    own_contexts: dict[int, BaseException] = {}

    async def caller(app: ConfidentialClientApplication, i: int) -> None:
        try:
            raise LookupError(f"caller {i} was handling this")
        except LookupError as handling:
            own_contexts[i] = handling
            try:
                await app.acquire_token_for_client(GRAPH)
            except MsalServiceError as exc:
                errors[i] = exc

    async with confidential(fake, clock) as app, anyio.create_task_group() as group:
        for i in range(2000):
            group.start_soon(caller, app, i)
    assert len(errors) == 2000
    assert len({id(e) for e in errors.values()}) == 2000
    [cause] = {id(e.__cause__) for e in errors.values()}
    shared = errors[0].__cause__
    assert isinstance(shared, MsalServiceError) and id(shared) == cause
    for i, error in errors.items():
        assert type(error) is type(shared)
        assert error.error == shared.error and error.status == 400
        assert error.__context__ is own_contexts[i]  # its own, never another caller's
    frames = len(traceback.extract_tb(errors[1999].__traceback__))
    assert frames < 20
    assert len("".join(traceback.format_exception(errors[1999]))) < 20_000
    assert len(fake.token_requests) == 1


def test_a_copied_error_keeps_what_callers_read() -> None:
    throttled = MsalThrottledError("temporarily_unavailable", "busy", retry_after=7, status=429)
    copy = own_copy(throttled)
    assert copy is not throttled and type(copy) is MsalThrottledError
    assert copy.retry_after == 7 and copy.status == 429
    assert str(copy) == str(throttled)
    plain = own_copy(KeyError("k"))
    assert type(plain) is KeyError and plain.args == ("k",)


# -- item 15: no awaited call hangs on a clock the test never advances ------------------------


@pytest.mark.parametrize(
    ("fault", "status"), [("status", 500), ("status", 503), ("drop", 500), ("html", 502)]
)
async def test_a_retried_failure_completes_on_a_clock_nobody_advances(
    fake: FakeAuthority, clock: VirtualClock, fault: str, status: int
) -> None:
    fake.fail_next(1, status=status, fault=fault)  # type: ignore[arg-type]
    async with confidential(fake, clock) as app:
        with anyio.fail_after(5):
            result = await app.acquire_token_for_client(GRAPH)
    assert result.token_source == "identity_provider"
    assert len(fake.token_requests) == 2
    assert clock.sleepers == 0


async def test_a_hang_and_a_refused_connection_fail_typed_on_a_clock_nobody_advances(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    fake.fail_next(1, fault="hang")
    async with confidential(fake, clock, timeout=0.5) as app:
        with anyio.fail_after(5), pytest.raises(MsalTransportError):
            await app.acquire_token_for_client(GRAPH)
    with anyio.fail_after(5), pytest.raises(MsalTransportError, match="connect"):
        async with ConfidentialClientApplication(
            CLIENT, client_credential=SECRET, authority=closed_authority(), clock=clock
        ) as app:
            await app.acquire_token_for_client(GRAPH)


async def test_a_caller_waiting_for_another_process_lock_gets_its_token_on_a_still_clock(
    fake: FakeAuthority, clock: VirtualClock, tmp_path: Path
) -> None:
    """Two processes over one file: the second waits for the first's lock, in real time."""
    fake.latency = 0.3
    path = tmp_path / "cache.json"
    first = confidential(fake, clock, cache_storage=FileCacheStorage(path))
    second = confidential(fake, clock, cache_storage=FileCacheStorage(path))
    results = []
    async with first, second:

        async def ask(app: ConfidentialClientApplication) -> None:
            results.append(await app.acquire_token_for_client(GRAPH))

        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(ask, first)
                await anyio.sleep(0.1)  # the first holds the lock and is asking the authority
                group.start_soon(ask, second)
    assert len(results) == 2
    assert results[0].access_token == results[1].access_token
    assert len(fake.token_requests) == 1
    assert clock.sleepers == 0


# -- item 19: timeout= bounds the whole call; spent grants are not resent ---------------------


class DelayingProxy:
    """Forwards every request to ``target`` after ``delay`` real seconds."""

    def __init__(self, target: str, delay: float) -> None:
        self.target = target
        self.delay = delay
        self.url = ""

    async def __aenter__(self) -> DelayingProxy:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._session.close()
        await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.Response:
        await anyio.sleep(self.delay)
        async with self._session.request(
            request.method, self.target + request.path_qs, data=await request.read()
        ) as answer:
            body = await answer.read()
            return web.Response(status=answer.status, body=body, content_type="application/json")


async def test_timeout_bounds_the_whole_call_metadata_and_token_together(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    """Metadata in 0.6 s and a token in 0.6 s: each attempt is in time, the call is not."""
    fake.latency = 0.6
    async with DelayingProxy(fake.base_url, 0.6) as proxy:
        app = ConfidentialClientApplication(
            CLIENT,
            client_credential=SECRET,
            authority=f"{proxy.url}/contoso",
            instance_discovery=False,
            clock=clock,
            timeout=1,
        )
        async with app:
            with anyio.fail_after(5), pytest.raises(MsalTransportError, match="deadline"):
                await app.acquire_token_for_client(GRAPH)
    assert aiomsal_tasks() == []


async def test_two_hangs_fail_a_call_within_its_timeout_not_twice_over(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    async with confidential(fake, clock, timeout=1) as app:
        await app.acquire_token_for_client(["api://warm/.default"])  # metadata known
        fake.fail_next(2, fault="hang")
        with anyio.fail_after(1.8), pytest.raises(MsalTransportError):
            await app.acquire_token_for_client(GRAPH)
    assert len(fake.token_requests) == 2  # the warm-up and the one attempt that hung


async def signed_in(fake: FakeAuthority, clock: VirtualClock) -> PublicClientApplication:
    fake.add_user("alice@contoso.com", password="pw", tenant="contoso")
    app = PublicClientApplication(PUBLIC, authority=fake.authority("contoso"), clock=clock)
    await app.acquire_token_by_username_password("alice@contoso.com", "pw", USER_READ)
    return app


@pytest.mark.parametrize(("fault", "status"), [("drop", 500), ("status", 500)])
async def test_a_refresh_token_that_may_have_reached_the_server_is_not_resent(
    fake: FakeAuthority, clock: VirtualClock, fault: str, status: int
) -> None:
    async with await signed_in(fake, clock) as app:
        [account] = await app.get_accounts()
        sent = len(fake.token_requests)
        fake.fail_next(1, status=status, fault=fault)  # type: ignore[arg-type]
        with anyio.fail_after(5), pytest.raises((MsalTransportError, MsalServiceError)):
            await app.acquire_token_silent(USER_READ, account, force_refresh=True)
        assert len(fake.token_requests) == sent + 1
        assert fake.token_requests[-1].grant_type == "refresh_token"


async def test_an_authorization_code_that_may_have_reached_the_server_is_not_resent(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    fake.add_user("bob@contoso.com", password="pw", tenant="contoso")
    async with PublicClientApplication(
        PUBLIC, authority=fake.authority("contoso"), clock=clock
    ) as app:
        flow = await app.initiate_auth_code_flow(
            USER_READ, "http://localhost", login_hint="bob@contoso.com"
        )
        async with aiohttp.ClientSession() as browser, browser.get(
            flow.auth_uri, allow_redirects=False
        ) as answer:
            location = answer.headers["Location"]
        query = dict(part.split("=", 1) for part in location.split("?", 1)[1].split("&"))
        fake.fail_next(1, fault="drop")
        with anyio.fail_after(5), pytest.raises(MsalTransportError, match="not retried"):
            await app.acquire_token_by_auth_code_flow(flow, query)
    assert [r.grant_type for r in fake.token_requests] == ["authorization_code"]


async def test_a_spent_grant_is_resent_when_its_connection_never_opened() -> None:
    starts: list[object] = []

    async def count(*_: object) -> None:
        starts.append(1)

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(count)
    request = HttpRequest(
        "POST",
        f"{closed_authority()}/oauth2/v2.0/token",
        form={"grant_type": "refresh_token", "refresh_token": "rt"},
        resendable=False,
    )
    async with (
        aiohttp.ClientSession(trace_configs=[trace]) as session,
        AiohttpTransport(clock=VirtualClock(), session=session, retry_backoff=0.01) as transport,
    ):
        with pytest.raises(MsalTransportError, match="after 2 attempts"):
            await transport.send(request)
    assert len(starts) == 2


# -- item 26: a full pool is reported as such, and only what left is counted ------------------


async def test_waiting_for_a_pooled_connection_is_reported_and_not_counted_as_sent(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    """100 calls hold the pool's 100 connections; 50 more, with less time, never get one."""
    app = confidential(fake, clock, timeout=30)
    await app.acquire_token_for_client(["api://warm/.default"])  # the metadata is known
    fake.latency = 30.0  # real seconds: the authority holds every request it gets
    before = app.statistics().requests_sent
    held: list[BaseException] = []
    queued: list[BaseException] = []

    async def call(scope: str, outcomes: list[BaseException], seconds: float) -> None:
        try:  # a caller with a deadline of its own, shorter than timeout=
            await within(seconds, lambda: app.acquire_token_for_client([scope]))
        except MsalError as exc:
            outcomes.append(exc)

    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            for i in range(100):
                group.start_soon(call, f"api://held-{i}/.default", held, 30)
            await wait_until(lambda: len(fake.token_requests) == 101, limit=15)
            for i in range(50):
                group.start_soon(call, f"api://queued-{i}/.default", queued, 1.5)
            await wait_until(lambda: len(queued) == 50, limit=15)
            sent = app.statistics().requests_sent - before
            await app.aclose()  # the held calls end now, typed
    assert len(held) == 100 and len(queued) == 50
    assert all(isinstance(o, MsalTransportError) for o in queued)
    assert all("not sent" in str(o) for o in queued), {str(o) for o in queued}
    pool = [o for o in queued if "waited for a pooled connection" in str(o)]
    # (a caller the loaded loop only reached after its deadline says that instead)
    assert len(pool) >= 25
    assert sent == 100  # the 50 that waited for the pool never left
    assert all("closed" in str(o) for o in held)


# -- item 20: client credentials send the capabilities and check the challenge ----------------


async def test_client_credentials_send_client_capabilities_as_xms_cc(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    challenge = '{"access_token": {"nbf": {"essential": true, "value": "1700000000"}}}'
    async with confidential(fake, clock, client_capabilities=["cp1"]) as app:
        await app.acquire_token_for_client(GRAPH)
        plain = json.loads(fake.token_requests[-1].form["claims"])
        await app.acquire_token_for_client(GRAPH, claims_challenge=challenge)
        merged = json.loads(fake.token_requests[-1].form["claims"])
    assert plain == {"access_token": {"xms_cc": {"values": ["cp1"]}}}
    assert merged == {
        "access_token": {
            "xms_cc": {"values": ["cp1"]},
            "nbf": {"essential": True, "value": "1700000000"},
        }
    }


@pytest.mark.parametrize("challenge", ["not json", "[1, 2]", '"text"', "{"])
async def test_client_credentials_refuse_a_claims_challenge_that_is_no_json_object(
    fake: FakeAuthority, clock: VirtualClock, challenge: str
) -> None:
    async with confidential(fake, clock) as app:
        with pytest.raises(MsalConfigurationError, match="claims_challenge"):
            await app.acquire_token_for_client(GRAPH, claims_challenge=challenge)
    assert fake.token_requests == []


# -- item 21: scopes given as a one-shot iterable ---------------------------------------------


async def test_one_shot_scope_iterables_work_on_a_miss_and_on_a_hit(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    [assertion] = incoming_assertions(fake, clock, API, 1)
    makers = [
        lambda scopes: (s for s in scopes),
        iter,
        lambda scopes: map(str, scopes),
    ]
    async with confidential(fake, clock) as app, ConfidentialClientApplication(
        API, client_credential=SECRET, authority=fake.authority("contoso"), clock=clock
    ) as api, await signed_in(fake, clock) as public:
        [account] = await public.get_accounts()
        for make in makers:
            assert (await app.acquire_token_for_client(make(GRAPH))).scopes
            hit = await app.acquire_token_for_client(make(GRAPH))
            assert hit.token_source == "cache"
            await api.acquire_token_on_behalf_of(assertion, make(USER_READ))
            obo = await api.acquire_token_on_behalf_of(assertion, make(USER_READ))
            assert obo.token_source == "cache"
            silent = await public.acquire_token_silent(make(USER_READ), account)
            assert silent is not None and silent.token_source == "cache"
        with pytest.raises(MsalConfigurationError):
            await app.acquire_token_for_client(iter([]))
    assert [r.grant_type for r in fake.token_requests].count("client_credentials") == 1


# -- item 10: on-behalf-of refuses an expired incoming assertion -------------------------------


async def test_an_expired_assertion_is_refused_before_the_cache_and_the_refresh_token(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    [assertion] = incoming_assertions(fake, clock, API, 1, lifetime=600)
    async with ConfidentialClientApplication(
        API, client_credential=SECRET, authority=fake.authority("contoso"), clock=clock
    ) as api:
        first = await api.acquire_token_on_behalf_of(assertion, USER_READ)
        await clock.advance(600 + ASSERTION_CLOCK_SKEW - 10)  # expired, within the skew
        within_skew = await api.acquire_token_on_behalf_of(assertion, USER_READ)
        await clock.advance(20)
        sent = len(fake.token_requests)
        with pytest.raises(MsalAssertionExpiredError, match="expired") as refused:
            await api.acquire_token_on_behalf_of(assertion, USER_READ)
        with pytest.raises(MsalAssertionExpiredError):
            await api.acquire_token_on_behalf_of(assertion, USER_READ, force_refresh=True)
    assert within_skew.access_token == first.access_token  # still the cached token
    assert len(fake.token_requests) == sent  # neither the cache nor the refresh token used
    assert isinstance(refused.value, MsalUiRequiredError)
    assert refused.value.error == "invalid_grant"
    assert assertion not in str(refused.value) and assertion not in repr(refused.value)


async def test_an_opaque_assertion_is_left_for_the_authority_to_judge(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    async with ConfidentialClientApplication(
        API, client_credential=SECRET, authority=fake.authority("contoso"), clock=clock
    ) as api:
        with pytest.raises(MsalServiceError) as caught:
            await api.acquire_token_on_behalf_of("an-opaque-token", USER_READ)
    assert not isinstance(caught.value, MsalAssertionExpiredError)
    assert len(fake.token_requests) == 1


@pytest.mark.parametrize(
    "assertion",
    [
        "",
        "a.b",
        "a.b.c.d",
        "a.!!!.c",
        "a.e30.c",  # {}
        "a.bnVsbA.c",  # null
        "a.eyJleHAiOiJzb29uIn0.c",  # "exp": "soon"
        "a.eyJleHAiOnRydWV9.c",  # "exp": true
        "a.eyJleHAiOjFlNDAwfQ.c",  # "exp": 1e400 (infinite)
        "a." + "W" * 70_000 + ".c",
    ],
)
def test_an_unreadable_expiry_is_none(assertion: str) -> None:
    assert assertion_expiry(assertion) is None


def test_a_deeply_nested_payload_is_unreadable_not_a_recursion_error() -> None:
    import base64

    payload = base64.urlsafe_b64encode(b"[" * 100_000).decode().rstrip("=")
    assert assertion_expiry(f"a.{payload}.c") is None


def closed_authority() -> str:
    """An authority on a loopback port nothing listens on."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/contoso"
