"""The aiohttp transport, against small aiohttp servers on the loopback interface."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import anyio
import anyio.lowlevel
import pytest
from aiohttp import web

from aiomsal._errors import MsalConfigurationError, MsalTransportError
from aiomsal._protocol._http import HttpRequest
from aiomsal._protocol._throttling import ThrottleMemory
from aiomsal._transport._aiohttp_transport import AiohttpTransport
from aiomsal.testing._certificates import generate_certificate
from aiomsal.testing._virtual_clock import VirtualClock

SECRET = "s3cr3t-form-value"
QUERY_SECRET = "q-s3cr3t"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class RecordingClock:
    """A clock whose sleeps return at once, recorded, moving its time forward."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await anyio.lowlevel.checkpoint()


class SignallingClock(VirtualClock):
    """A virtual clock that tells when someone starts sleeping on it."""

    def __init__(self) -> None:
        super().__init__()
        self.asleep = anyio.Event()

    async def sleep(self, seconds: float) -> None:
        self.asleep.set()
        await super().sleep(seconds)


@dataclass
class Hit:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    form: dict[str, str]


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"ok": true}'
    #: Hold the answer until this event is set (then answer it anyway).
    hold: asyncio.Event | None = None


class Authority:
    """Serves scripted answers in order (the last one repeats) and records every hit."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers) or [Answer()]
        self.hits: list[Hit] = []
        self.first_hit = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.hits.append(
            Hit(
                method=request.method,
                path=request.path,
                query=request.query_string,
                headers={k.lower(): v for k, v in request.headers.items()},
                form=form,
            )
        )
        self.first_hit.set()
        index = min(len(self.hits), len(self.answers)) - 1
        answer = self.answers[index]
        if answer.hold is not None:
            await answer.hold.wait()
        return web.Response(
            status=answer.status,
            headers=answer.headers,
            body=answer.body,
            content_type="application/json",
        )


@asynccontextmanager
async def serve(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    *,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    scheme = "https" if ssl_context else "http"
    try:
        yield f"{scheme}://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def authority(*answers: Answer) -> AsyncIterator[tuple[Authority, str]]:
    auth = Authority(*answers)
    try:
        async with serve(auth.handle) as base:
            yield auth, base
    finally:
        for answer in auth.answers:
            if answer.hold is not None:
                answer.hold.set()


@asynccontextmanager
async def transport_for(
    clock: object | None = None, **kwargs: object
) -> AsyncIterator[AiohttpTransport]:
    clock = clock or RecordingClock()
    if isinstance(clock, RecordingClock):  # it records the backoff (a real-time wait) too
        kwargs.setdefault("network_sleep", clock.sleep)
    transport = AiohttpTransport(clock=clock, **kwargs)  # type: ignore[arg-type]
    try:
        yield transport
    finally:
        await transport.aclose()


def token_request(
    base: str,
    scope: str = "api://x/.default",
    *,
    throttle: bool = True,
    headers: Mapping[str, str] | None = None,
) -> HttpRequest:
    return HttpRequest(
        "POST",
        f"{base}/tenant/oauth2/v2.0/token",
        headers=dict(headers or {}),
        form={
            "grant_type": "client_credentials",
            "client_id": "app",
            "client_secret": SECRET,
            "scope": scope,
        },
        throttle=throttle,
    )


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def counting_trace() -> tuple[aiohttp.TraceConfig, list[str]]:
    starts: list[str] = []

    async def on_start(
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        starts.append(params.method)

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    return trace, starts


# -- headers and bodies -------------------------------------------------------


@pytest.mark.anyio
async def test_headers_and_form_are_sent() -> None:
    async with authority() as (auth, base), transport_for(user_agent="my-app/1.0") as transport:
        response = await transport.send(token_request(base))
    assert response.status == 200
    assert response.json() == {"ok": True}
    assert response.headers["content-type"].startswith("application/json")
    assert all(name == name.lower() for name in response.headers)
    [hit] = auth.hits
    assert hit.method == "POST"
    assert hit.path == "/tenant/oauth2/v2.0/token"
    headers = hit.headers
    assert uuid.UUID(headers["client-request-id"]).version == 4
    assert headers["return-client-request-id"] == "true"
    assert headers["x-client-sku"] == "aiomsal.python"
    assert headers["x-client-ver"]
    assert headers["x-client-os"] == sys.platform
    assert headers["accept"] == "application/json"
    assert headers["user-agent"] == "my-app/1.0"
    assert headers["content-type"] == "application/x-www-form-urlencoded"
    assert hit.form["client_secret"] == SECRET
    assert hit.form["scope"] == "api://x/.default"


@pytest.mark.anyio
async def test_a_given_correlation_id_is_kept() -> None:
    async with authority() as (auth, base), transport_for() as transport:
        await transport.send(
            token_request(base, headers={"Client-Request-Id": "my-correlation-id"})
        )
    assert auth.hits[0].headers["client-request-id"] == "my-correlation-id"


@pytest.mark.anyio
async def test_each_request_gets_its_own_correlation_id() -> None:
    async with authority() as (auth, base), transport_for() as transport:
        await transport.send(token_request(base))
        await transport.send(token_request(base))
    ids = {hit.headers["client-request-id"] for hit in auth.hits}
    assert len(ids) == 2


@pytest.mark.anyio
async def test_get_sends_the_query_and_no_body() -> None:
    async with authority() as (auth, base), transport_for() as transport:
        response = await transport.send(HttpRequest("GET", f"{base}/discovery?api-version=1.1"))
    assert response.status == 200
    [hit] = auth.hits
    assert hit.method == "GET"
    assert hit.query == "api-version=1.1"
    assert hit.form == {}


# -- retry --------------------------------------------------------------------


@pytest.mark.anyio
async def test_one_retry_after_a_500_without_retry_after() -> None:
    clock = RecordingClock()
    answers = (Answer(500, body=b"{}"), Answer(200))
    async with authority(*answers) as (auth, base), transport_for(clock) as transport:
        response = await transport.send(token_request(base))
    assert response.status == 200
    assert len(auth.hits) == 2
    first, second = (hit.headers["client-request-id"] for hit in auth.hits)
    assert first == second
    assert second == auth.hits[1].headers["client-request-id"]
    assert auth.hits[1].form == auth.hits[0].form
    [slept] = clock.sleeps
    assert 0.5 <= slept <= 0.75


@pytest.mark.anyio
async def test_two_500s_return_the_last_answer() -> None:
    clock = RecordingClock()
    answers = (Answer(500, body=b'{"n": 1}'), Answer(502, body=b'{"n": 2}'))
    async with authority(*answers) as (auth, base), transport_for(clock) as transport:
        response = await transport.send(token_request(base))
    assert response.status == 502
    assert response.json() == {"n": 2}
    assert len(auth.hits) == 2
    assert len(clock.sleeps) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("status", [400, 401, 404, 429])
async def test_4xx_are_not_retried(status: int) -> None:
    clock = RecordingClock()
    async with authority(Answer(status)) as (auth, base), transport_for(clock) as transport:
        response = await transport.send(token_request(base))
    assert response.status == status
    assert len(auth.hits) == 1
    assert clock.sleeps == []


@pytest.mark.anyio
async def test_retry_backoff_is_configurable() -> None:
    clock = RecordingClock()
    async with (
        authority(Answer(503), Answer(200)) as (_, base),
        transport_for(clock, retry_backoff=2.0) as transport,
    ):
        await transport.send(token_request(base))
    [slept] = clock.sleeps
    assert 2.0 <= slept <= 3.0


@pytest.mark.anyio
async def test_the_backoff_waits_in_real_time_not_on_the_injected_clock() -> None:
    """A retry is a wait on the network: a VirtualClock nobody advances does not hold it."""
    clock = SignallingClock()
    async with (
        authority(Answer(500), Answer(200)) as (auth, base),
        transport_for(clock, retry_backoff=0.01) as transport,
    ):
        with anyio.fail_after(5):
            response = await transport.send(token_request(base))
    assert response.status == 200
    assert len(auth.hits) == 2
    assert clock.sleepers == 0
    assert not clock.asleep.is_set()


@pytest.mark.anyio
async def test_connection_refused_fails_after_two_attempts() -> None:
    clock = RecordingClock()
    trace, starts = counting_trace()
    url = f"http://127.0.0.1:{closed_port()}/tenant/oauth2/v2.0/token?secret={QUERY_SECRET}"
    request = HttpRequest("POST", url, form={"client_secret": SECRET}, throttle=True)
    async with (
        aiohttp.ClientSession(trace_configs=[trace]) as session,
        transport_for(clock, session=session) as transport,
    ):
        with pytest.raises(MsalTransportError) as caught:
            await transport.send(request)
    assert len(starts) == 2
    assert len(clock.sleeps) == 1
    message = str(caught.value)
    assert "POST" in message
    assert "http://127.0.0.1:" in message
    assert "/tenant/oauth2/v2.0/token" in message
    assert "connect" in message
    assert QUERY_SECRET not in message
    assert "secret=" not in message
    assert SECRET not in message
    assert isinstance(caught.value.__cause__, aiohttp.ClientError | OSError)


@pytest.mark.anyio
async def test_a_timeout_fails_after_two_attempts() -> None:
    clock = RecordingClock()
    hold = asyncio.Event()
    async with (
        authority(Answer(200, hold=hold)) as (auth, base),
        transport_for(clock, timeout=0.2) as transport,
    ):
        with anyio.fail_after(5), pytest.raises(MsalTransportError) as caught:
            await transport.send(token_request(base))
        hold.set()
    assert len(auth.hits) == 2
    assert "timeout" in str(caught.value)
    assert SECRET not in str(caught.value)


@pytest.mark.anyio
async def test_a_server_disconnect_is_retried_then_fails() -> None:
    connections = 0

    async def slam(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.read(1)
        writer.close()

    server = await asyncio.start_server(slam, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with transport_for() as transport:
            with pytest.raises(MsalTransportError, match="disconnected"):
                await transport.send(token_request(f"http://127.0.0.1:{port}"))
    finally:
        server.close()
        await server.wait_closed()
    assert connections == 2


@pytest.mark.anyio
async def test_a_failure_then_a_success_is_a_success() -> None:
    attempts = 0
    auth = Authority()

    async def flaky(request: web.Request) -> web.StreamResponse:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            assert request.transport is not None
            request.transport.close()
        return await auth.handle(request)

    async with serve(flaky) as base, transport_for() as transport:
        response = await transport.send(token_request(base))
    assert response.status == 200
    assert attempts == 2


# -- throttling ---------------------------------------------------------------


@pytest.mark.anyio
async def test_a_429_is_remembered_until_its_time_has_passed() -> None:
    clock = VirtualClock()
    answers = (Answer(429, {"Retry-After": "30"}, b'{"error": "throttled"}'), Answer(200))
    async with authority(*answers) as (auth, base), transport_for(clock) as transport:
        first = await transport.send(token_request(base))
        assert first.status == 429
        assert first.headers["retry-after"] == "30"
        assert len(auth.hits) == 1

        await clock.advance(10)
        replay = await transport.send(token_request(base))
        assert replay.status == 429
        assert replay.headers["retry-after"] == "20"
        assert replay.json() == {"error": "throttled"}
        assert len(auth.hits) == 1

        await clock.advance(21)
        again = await transport.send(token_request(base))
        assert again.status == 200
        assert len(auth.hits) == 2


@pytest.mark.anyio
async def test_a_503_with_retry_after_is_remembered_and_not_retried() -> None:
    clock = RecordingClock()
    async with (
        authority(Answer(503, {"Retry-After": "60"})) as (auth, base),
        transport_for(clock) as transport,
    ):
        assert (await transport.send(token_request(base))).status == 503
        replay = await transport.send(token_request(base))
    assert replay.status == 503
    assert replay.headers["retry-after"] == "60"
    assert len(auth.hits) == 1
    assert clock.sleeps == []


@pytest.mark.anyio
async def test_a_503_without_retry_after_is_retried_and_not_remembered() -> None:
    clock = RecordingClock()
    async with authority(Answer(503)) as (auth, base), transport_for(clock) as transport:
        assert (await transport.send(token_request(base))).status == 503
        assert len(auth.hits) == 2
        assert (await transport.send(token_request(base))).status == 503
        assert len(auth.hits) == 4


@pytest.mark.anyio
async def test_another_scope_is_not_throttled() -> None:
    clock = VirtualClock()
    answers = (Answer(429, {"Retry-After": "30"}), Answer(200))
    async with authority(*answers) as (auth, base), transport_for(clock) as transport:
        assert (await transport.send(token_request(base, "api://x/.default"))).status == 429
        other = await transport.send(token_request(base, "api://y/.default"))
    assert other.status == 200
    assert len(auth.hits) == 2


@pytest.mark.anyio
async def test_requests_without_throttle_are_never_remembered() -> None:
    clock = VirtualClock()
    async with (
        authority(Answer(429, {"Retry-After": "30"})) as (auth, base),
        transport_for(clock) as transport,
    ):
        await transport.send(token_request(base, throttle=False))
        await transport.send(token_request(base, throttle=False))
    assert len(auth.hits) == 2
    assert len(transport.throttle) == 0


@pytest.mark.anyio
async def test_a_given_throttle_memory_is_used() -> None:
    memory = ThrottleMemory(default_retry_after=100)
    clock = VirtualClock()
    async with authority(Answer(429)) as (auth, base):
        async with transport_for(clock, throttle=memory) as first:
            await first.send(token_request(base))
        async with transport_for(clock, throttle=memory) as second:
            replay = await second.send(token_request(base))
    assert second.throttle is memory
    assert replay.headers["retry-after"] == "100"
    assert len(auth.hits) == 1


# -- sessions and closing ------------------------------------------------------


@pytest.mark.anyio
async def test_a_callers_session_is_not_closed() -> None:
    async with aiohttp.ClientSession() as session, authority() as (auth, base):
        transport = AiohttpTransport(clock=RecordingClock(), session=session)
        await transport.send(token_request(base))
        await transport.aclose()
        assert not session.closed
        async with session.get(f"{base}/still-open") as response:
            assert response.status == 200
    assert len(auth.hits) == 2


@pytest.mark.anyio
async def test_the_owned_session_is_created_lazily_and_closed() -> None:
    transport = AiohttpTransport(clock=RecordingClock())
    assert transport._session is None
    async with authority() as (_, base):
        await transport.send(token_request(base))
        session = transport._session
        assert session is not None
        await transport.send(token_request(base))
        assert transport._session is session  # one pooled session
        await transport.aclose()
        assert session.closed
        await transport.aclose()  # idempotent
        with pytest.raises(MsalTransportError, match="closed"):
            await transport.send(token_request(base))


@pytest.mark.anyio
async def test_aclose_without_any_send() -> None:
    transport = AiohttpTransport(clock=RecordingClock())
    await transport.aclose()
    with pytest.raises(MsalTransportError):
        await transport.send(token_request("http://127.0.0.1:1"))


@pytest.mark.anyio
async def test_cancellation_propagates_and_releases_the_connection() -> None:
    hold = asyncio.Event()
    answers = (Answer(200, hold=hold), Answer(200))
    connector = aiohttp.TCPConnector(limit=1)
    clock = RecordingClock()
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        authority(*answers) as (auth, base),
        transport_for(clock, session=session) as transport,
    ):
        task = asyncio.ensure_future(transport.send(token_request(base)))
        with anyio.fail_after(5):
            await auth.first_hit.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert clock.sleeps == []  # not retried
        hold.set()
        # With a single connection allowed, a leaked one would block this forever.
        with anyio.fail_after(5):
            response = await transport.send(token_request(base))
        assert response.status == 200


# -- TLS ------------------------------------------------------------------------


@contextmanager
def tls_files(tmp_path: Path) -> Iterator[tuple[ssl.SSLContext, Path]]:
    ca = generate_certificate("aiomsal test CA", is_ca=True)
    leaf = generate_certificate("127.0.0.1", issuer=ca, ip_addresses=("127.0.0.1",))
    ca_path = tmp_path / "ca.pem"
    ca_path.write_bytes(ca.certificate_pem)
    cert_path = tmp_path / "leaf.pem"
    cert_path.write_bytes(leaf.certificate_pem)
    key_path = tmp_path / "leaf.key"
    key_path.write_bytes(leaf.private_key_pem)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_path, key_path)
    yield server_context, ca_path


@pytest.mark.anyio
async def test_verify_with_a_ca_bundle(tmp_path: Path) -> None:
    auth = Authority()
    with tls_files(tmp_path) as (server_context, ca_path):
        async with serve(auth.handle, ssl_context=server_context) as base:
            async with transport_for(verify=str(ca_path)) as transport:
                assert (await transport.send(token_request(base))).status == 200
            async with transport_for(verify=False) as transport:
                assert (await transport.send(token_request(base))).status == 200
            context = ssl.create_default_context(cafile=str(ca_path))
            async with transport_for(verify=context) as transport:
                assert (await transport.send(token_request(base))).status == 200
    assert len(auth.hits) == 3


@pytest.mark.anyio
async def test_default_verification_rejects_an_unknown_ca(tmp_path: Path) -> None:
    auth = Authority()
    with tls_files(tmp_path) as (server_context, _):
        async with (
            ignoring_rejected_handshakes(expected=2),
            serve(auth.handle, ssl_context=server_context) as base,
            transport_for(verify=True) as transport,
        ):
            with pytest.raises(MsalTransportError, match="certificate") as caught:
                await transport.send(token_request(base))
    assert "2 attempts" in str(caught.value)
    assert auth.hits == []


@asynccontextmanager
async def ignoring_rejected_handshakes(expected: int) -> AsyncIterator[None]:
    """Keep the server's side of ``expected`` refused TLS handshakes out of the test's errors.

    asyncio reports them to the loop's exception handler in debug mode only, and
    may do so after the server has closed; in debug mode, wait for all of them.
    """
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    seen = 0
    all_seen = anyio.Event()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        nonlocal seen
        if isinstance(context.get("exception"), ConnectionResetError | ssl.SSLError):
            seen += 1
            if seen >= expected:
                all_seen.set()
            return
        if previous is None:
            loop.default_exception_handler(context)
        else:
            previous(loop, context)

    loop.set_exception_handler(handler)
    try:
        yield
        if loop.get_debug():
            with anyio.fail_after(5):
                await all_seen.wait()
    finally:
        loop.set_exception_handler(previous)


def test_verify_with_a_missing_ca_bundle(tmp_path: Path) -> None:
    with pytest.raises(MsalConfigurationError, match="CA bundle"):
        AiohttpTransport(clock=RecordingClock(), verify=str(tmp_path / "nope.pem"))


def test_verify_with_a_bad_ca_bundle(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(MsalConfigurationError):
        AiohttpTransport(clock=RecordingClock(), verify=str(bad))


@pytest.mark.parametrize("kwargs", [{"timeout": 0}, {"timeout": -1}, {"retry_backoff": -1}])
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(MsalConfigurationError):
        AiohttpTransport(clock=RecordingClock(), **kwargs)  # type: ignore[arg-type]


# -- logging ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_debug_logs_hold_no_secrets(caplog: pytest.LogCaptureFixture) -> None:
    clock = RecordingClock()
    caplog.set_level(logging.DEBUG, logger="aiomsal")
    async with (
        authority(Answer(500), Answer(200, body=b'{"access_token": "tok-s3cr3t"}')) as (_, base),
        transport_for(clock) as transport,
    ):
        request = HttpRequest(
            "POST",
            f"{base}/token?secret={QUERY_SECRET}",
            headers={"Authorization": "Bearer hdr-s3cr3t"},
            form={"client_secret": SECRET},
            throttle=True,
        )
        await transport.send(request)
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "POST" in text
    assert "/token" in text
    assert "200" in text
    assert "client-request-id=" in text
    for secret in (SECRET, QUERY_SECRET, "hdr-s3cr3t", "tok-s3cr3t"):
        assert secret not in text
