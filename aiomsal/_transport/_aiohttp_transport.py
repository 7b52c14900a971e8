"""The aiohttp transport: pooled connections, one retry, and MSAL's throttling.

It sends
:class:`~aiomsal._protocol._http.HttpRequest` values and returns
:class:`~aiomsal._protocol._http.HttpResponse` values; it never interprets an answer
beyond deciding whether to retry it once, whether to remember it as a
throttling answer, and whether a GET's redirect stays in its origin (the only
redirects followed). It reads at most ``MAX_BODY_BYTES + 1`` bytes of a body.
Status errors are for the response parsers to raise. aiohttp itself is used
by :mod:`._aiohttp_wire`, imported on the first request in a worker thread
(:mod:`._loading`): ``import aiomsal`` and tokens served from the cache never
import it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import ipaddress
import logging
import random
import ssl
import sys
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, TypeGuard
from urllib.parse import urlsplit

import anyio

from aiomsal._concurrency._clock import Clock
from aiomsal._concurrency._deadline import remaining
from aiomsal._concurrency._loop_binding import LoopBinding
from aiomsal._errors import MsalConfigurationError, MsalTransportError
from aiomsal._protocol._http import HttpRequest, HttpResponse
from aiomsal._protocol._throttling import ThrottleMemory

from ._loading import import_off_loop

if TYPE_CHECKING:
    import aiohttp

    from ._aiohttp_wire import Wire

__all__ = ["AiohttpTransport", "is_client_session"]

_log = logging.getLogger("aiomsal")


@functools.cache
def _package_version() -> str:
    """aiomsal's version, read on the first request (importlib.metadata is slow to import)."""
    import importlib.metadata

    try:
        return importlib.metadata.version("aiomsal")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"


_CORRELATION_HEADER = "client-request-id"

#: Seconds of a call's deadline an attempt leaves, so its more telling timeout fires first.
_DEADLINE_MARGIN = 0.02

#: The aiohttp half, once imported (:func:`_load_wire`); None before the first request.
_wire: Wire | None = None
_WIRE_MODULE = "aiomsal._transport._aiohttp_wire"


async def _load_wire(budget: float, *, on_loop: bool) -> Wire:
    """The aiohttp half, imported in a worker thread (``on_loop``: aiohttp is already in)."""
    global _wire
    if _wire is None:
        if not on_loop:
            await import_off_loop(_WIRE_MODULE, budget)
        from ._aiohttp_wire import WIRE

        _wire = WIRE
    return _wire


def is_client_session(value: object) -> TypeGuard[aiohttp.ClientSession]:
    """Whether ``value`` is an :class:`aiohttp.ClientSession`, without importing aiohttp.

    Until aiohttp is imported (completely), nothing can be one.
    """
    session_class = getattr(sys.modules.get("aiohttp"), "ClientSession", None)
    return isinstance(session_class, type) and isinstance(value, session_class)


class AiohttpTransport:
    """Sends requests to an authority with aiohttp.

    One pooled :class:`aiohttp.ClientSession` is created on the first
    :meth:`send` and closed by :meth:`aclose`; a ``session`` passed in is used
    instead and is left open for its owner to close.

    ``verify`` is ``True`` for the default certificate verification, a path to
    a PEM CA bundle, an :class:`ssl.SSLContext` used as is, or ``False`` for no
    verification (loopback test authorities only). ``timeout`` bounds each
    attempt, in real seconds, and so does what is left of the call's deadline
    (:mod:`aiomsal._concurrency._deadline`), pool waits included. A request that
    fails to connect, times out, or gets a 5xx without ``Retry-After`` is sent
    once more after ``retry_backoff`` real seconds (plus up to half as much
    jitter), unless it is not :attr:`~HttpRequest.resendable` and may have left.
    Throttling answers are remembered in ``throttle`` (on ``clock`` time) and
    replayed without a request until their time has passed.
    ``retry_once=False`` leaves retries to the caller (managed identity's own
    schedule); ``connect_timeout`` bounds each connection attempt. With
    ``binding``, a session of an event loop that ended is replaced by a new one.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 10.0,
        verify: bool | str | ssl.SSLContext = True,
        retry_backoff: float = 0.5,
        throttle: ThrottleMemory | None = None,
        user_agent: str | None = None,
        retry_once: bool = True,
        connect_timeout: float | None = None,
        binding: LoopBinding | None = None,
        network_sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        proxies: Mapping[str, str] | None = None,
        trust_env: bool = True,
        app_headers: Mapping[str, str] | None = None,
    ) -> None:
        if not timeout > 0:
            raise MsalConfigurationError("timeout must be a positive number of seconds")
        if not retry_backoff >= 0:
            raise MsalConfigurationError("retry_backoff must be a non-negative number of seconds")
        self._clock = clock
        self._session = session
        self._owns_session = session is None
        self._connect_timeout = connect_timeout
        self._retry_once = retry_once
        self._timeout_seconds = timeout
        self._ssl = _ssl_setting(verify)
        self._retry_backoff = retry_backoff
        self._throttle = throttle if throttle is not None else ThrottleMemory()
        self._user_agent = user_agent
        self._binding = binding
        self._network_sleep = network_sleep
        self._proxies = check_proxies(proxies)
        # Read once, on first need: HTTP(S)_PROXY and NO_PROXY, as requests (MSAL's) reads them.
        self._env_proxies: dict[str, str] | None = None if trust_env else {}
        self._app_headers = dict(app_headers or {})
        self._closed = False

    @property
    def throttle(self) -> ThrottleMemory:
        """The memory of throttling answers this transport consults."""
        return self._throttle

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"AiohttpTransport({state}, timeout={self._timeout_seconds:g}s)"

    async def send(
        self, request: HttpRequest, *, not_sent: Callable[[], None] | None = None
    ) -> HttpResponse:
        """Send ``request`` and return the answer, whatever its status.

        Raises :class:`MsalTransportError` when the authority cannot be reached
        or does not answer in time, after one retry. ``not_sent()`` is called
        when the request never left after all: its connection failed, or no
        pooled connection came free in time (a throttled replay, which sends
        nothing either, comes back with ``replayed`` set).
        """
        where = _redacted_url(request.url)
        if self._closed:
            raise MsalTransportError(f"{request.method} {where} not sent: the transport is closed")
        if self._binding is not None:
            self._binding.bind()
        replay = self._throttle.check(request, self._clock.time())
        if replay is not None:
            _log.debug(
                "%s %s -> %d replayed from the throttling memory (retry-after %ss)",
                request.method,
                where,
                replay.status,
                replay.headers.get("retry-after"),
            )
            return replay

        headers = self._headers(request)
        correlation_id = headers[_CORRELATION_HEADER]
        wire = _wire if _wire is not None else await self._first_wire(request, where, not_sent)
        session = await self._session_for_send(wire, request.method, where)
        attempt = wire.new_attempt()
        why = functools.partial(wire.describe, configured=self._timeout_seconds)
        fail = functools.partial(wire.failed, request, where, correlation_id, attempt=attempt,
                                 configured=self._timeout_seconds)

        async def once() -> HttpResponse:
            try:
                return await wire.attempt(
                    session, request, headers, where=where, correlation_id=correlation_id,
                    attempt=attempt, connect_timeout=self._connect_timeout, ssl_setting=self._ssl,
                    timeout=self._budget(),
                    proxy_for=self.proxy_for,
                )
            except BaseException as exc:
                attempt.failed(exc)  # whether it left, judged by its kind when untraced
                raise

        try:
            failure: BaseException | None = None
            response: HttpResponse | None = None
            try:
                response = await once()
            except wire.failures as exc:
                failure = exc
                # A spent grant is resent only when it never left (it cannot have reached).
                if not request.resendable and attempt.reached:
                    raise fail(exc, attempts=1) from exc
                _log.debug(
                    "%s %s failed (%s), client-request-id=%s; retrying once",
                    request.method,
                    where,
                    why(exc, attempt),
                    correlation_id,
                )

            if response is not None and (
                not self._retry_once or not _is_retryable(response) or not request.resendable
            ):
                self._throttle.record(request, response, self._clock.time())
                return response
            if failure is not None and not self._retry_once:
                raise MsalTransportError(
                    f"{request.method} {where} failed: {why(failure, attempt)} "
                    f"(client-request-id {correlation_id})"
                ) from failure
            if response is not None:
                _log.debug(
                    "%s %s -> %d without Retry-After, client-request-id=%s; retrying once",
                    request.method,
                    where,
                    response.status,
                    correlation_id,
                )

            jitter = random.uniform(0.0, 0.5)  # noqa: S311 - jitter, not a secret
            backoff = self._retry_backoff * (1.0 + jitter)
            if remaining() <= backoff + _DEADLINE_MARGIN:
                if response is not None:
                    self._throttle.record(request, response, self._clock.time())
                    return response  # no time left for a retry: the answer as it is
                assert failure is not None
                raise fail(failure, attempts=1) from failure
            # A wait on the network, in real time: the injected clock governs token time only.
            await self._network_sleep(backoff)
            if self._closed or session.closed:
                raise MsalTransportError(
                    f"{request.method} {where} not retried: the transport was closed"
                ) from failure

            try:
                response = await once()
            except wire.failures as exc:
                raise fail(exc, attempts=2) from exc
            response = dataclasses.replace(response, attempts=2)
            self._throttle.record(request, response, self._clock.time())
            return response
        finally:
            if not attempt.left and not_sent is not None:
                not_sent()

    async def aclose(self) -> None:
        """Close the session this transport created; a caller's session is left open."""
        if self._closed:
            return
        self._closed = True
        session, self._session = self._session, None
        if self._owns_session and session is not None and not session.closed:
            # A session exists: the aiohttp half has been imported.
            assert _wire is not None
            if _wire.loop_of(session) in (None, asyncio.get_running_loop()):
                await session.close()
            else:
                await _wire.discard(session)

    async def __aenter__(self) -> AiohttpTransport:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def proxy_for(self, url: str) -> str | None:
        """The proxy a request to ``url`` goes through, or None.

        ``proxies`` (requests' form: ``{"https": url, "http": url}``, or
        ``"all"``) wins; else, with ``trust_env``, ``HTTPS_PROXY`` /
        ``HTTP_PROXY`` unless ``NO_PROXY`` names the host. A link-local host
        (IMDS, 169.254.169.254) is always reached directly: a proxy would
        answer for another machine.
        """
        try:
            parts = urlsplit(url)
            host = parts.hostname or ""
        except ValueError:
            return None
        if is_link_local(host):
            return None
        chosen = self._proxies.get(parts.scheme) or self._proxies.get("all")
        env = self._env_proxies
        if env is None:
            import urllib.request  # slow to import (aiohttp imports it too)

            env = self._env_proxies = urllib.request.getproxies_environment()
        if chosen is not None or not env:
            return chosen
        if no_proxy_matches(host, parts.port, env.get("no", "")):
            return None
        return env.get(parts.scheme) or env.get("all")

    # -- internals ---------------------------------------------------------

    def _budget(self) -> float:
        """What an attempt may take: ``timeout``, within what is left of the call's deadline."""
        return min(self._timeout_seconds, remaining() - _DEADLINE_MARGIN)

    async def _first_wire(
        self, request: HttpRequest, where: str, not_sent: Callable[[], None] | None
    ) -> Wire:
        """The aiohttp half, imported off the loop within what is left of the call's deadline."""
        budget = self._budget()
        try:
            # A caller's session means aiohttp is imported: the rest takes no thread.
            return await _load_wire(budget, on_loop=self._session is not None)
        except TimeoutError:
            if not_sent is not None:
                not_sent()
            raise MsalTransportError(
                f"{request.method} {where} not sent: the HTTP client (aiohttp) was still "
                f"being imported when the call's deadline came ({max(budget, 0.0):.3g}s)"
            ) from None

    async def _session_for_send(self, wire: Wire, method: str, where: str) -> aiohttp.ClientSession:
        session = self._session
        if session is not None and not await wire.usable_here(session, owned=self._owns_session):
            session = self._session = None  # ours, of an event loop that ended: let go
        if session is None:
            session = self._session = wire.new_session(self._timeout_seconds, self._connect_timeout)
        elif session.closed:
            raise MsalTransportError(f"{method} {where} not sent: the session is closed")
        return session

    async def release_loop(self) -> None:
        """Close the session this transport created (its event loop is ending); reopen on use."""
        session = self._session
        if (
            self._owns_session
            and session is not None
            and _wire is not None
            and _wire.loop_of(session) in (None, asyncio.get_running_loop())
        ):
            self._session = None
            await session.close()

    def _headers(self, request: HttpRequest) -> dict[str, str]:
        headers: dict[str, str] = {
            "accept": "application/json",
            "return-client-request-id": "true",
            "x-client-sku": "aiomsal.python",
            "x-client-ver": _package_version(),
            "x-client-os": sys.platform,
        }
        if self._user_agent:
            headers["user-agent"] = self._user_agent
        headers.update(self._app_headers)
        headers.update(_lower_keys(request.headers))
        if not headers.get(_CORRELATION_HEADER):
            headers[_CORRELATION_HEADER] = str(uuid.uuid4())
        return headers


def check_proxies(proxies: object) -> dict[str, str]:
    """requests' ``proxies`` dict (scheme -> proxy URL), checked; ``{}`` for None."""
    if proxies is None:
        return {}
    if not isinstance(proxies, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in proxies.items()
    ):
        raise MsalConfigurationError(
            "proxies must map a scheme to a proxy URL, as {'https': 'http://proxy:3128'}"
        )
    for value in proxies.values():
        try:
            scheme = urlsplit(value).scheme
        except ValueError:
            scheme = ""
        if scheme not in ("http", "https"):
            raise MsalConfigurationError("a proxy URL must start with http:// or https://")
    return dict(proxies)


def no_proxy_matches(host: str, port: int | None, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` (comma-separated hosts, ``.domain`` suffixes, ``*``) names the host."""
    host = host.lower().strip("[]")
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        name, _, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if entry_port and entry_port != str(port):
            continue
        name = name.lstrip(".")
        if host == name or host.endswith("." + name):
            return True
    return False


def is_link_local(host: str) -> bool:
    """Whether ``host`` is an IPv4 or IPv6 link-local address (where IMDS answers)."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0]).is_link_local
    except ValueError:
        return False


def _ssl_setting(verify: bool | str | ssl.SSLContext) -> bool | ssl.SSLContext:
    if verify is True:
        return True
    if verify is False:
        return False
    if isinstance(verify, ssl.SSLContext):
        return verify
    if isinstance(verify, str):
        if not verify:
            raise MsalConfigurationError(
                "verify must be True, False, a CA bundle path or an SSLContext"
            )
        try:
            return ssl.create_default_context(cafile=verify)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise MsalConfigurationError(
                f"verify: cannot load the CA bundle {verify!r}: {type(exc).__name__}"
            ) from exc
    raise MsalConfigurationError("verify must be True, False, a CA bundle path or an SSLContext")


def _lower_keys(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def _redacted_url(url: str) -> str:
    """``scheme://host[:port]/path`` of ``url``: no user info, no query, no fragment."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparsable URL>"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    return f"{parts.scheme}://{netloc}{parts.path}"


def _is_retryable(response: HttpResponse) -> bool:
    return response.status >= 500 and "retry-after" not in response.headers
