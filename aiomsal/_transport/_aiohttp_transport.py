"""The aiohttp transport: pooled connections, one retry, and MSAL's throttling.

This is the only module of aiomsal that uses aiohttp's client. It sends
:class:`~aiomsal._protocol._http.HttpRequest` values and returns
:class:`~aiomsal._protocol._http.HttpResponse` values; it never interprets an answer
beyond deciding whether to retry it once, whether to remember it as a
throttling answer, and whether a GET's redirect stays in its origin (the only
redirects followed). It reads at most ``MAX_BODY_BYTES + 1`` bytes of a body.
Status errors are for the response parsers to raise.
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
import time
import urllib.request
import uuid
from collections.abc import Mapping
from urllib.parse import urljoin, urlsplit

import aiohttp

from aiomsal._concurrency._clock import Clock
from aiomsal._errors import MsalConfigurationError, MsalTransportError
from aiomsal._protocol._http import HttpRequest, HttpResponse
from aiomsal._protocol._json import MAX_BODY_BYTES
from aiomsal._protocol._throttling import ThrottleMemory

__all__ = ["AiohttpTransport"]

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

#: Connections kept open per authority host.
_LIMIT_PER_HOST = 100
#: Connections kept open in all.
_LIMIT = 200
#: Seconds a DNS answer is reused.
_DNS_CACHE_SECONDS = 300
#: Redirects followed for one GET (each within the request's origin).
_MAX_REDIRECTS = 3
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"https": 443, "http": 80}

_FAILURES: tuple[type[BaseException], ...] = (
    aiohttp.ClientError,
    asyncio.TimeoutError,
    TimeoutError,
    OSError,
)


class AiohttpTransport:
    """Sends requests to an authority with aiohttp.

    One pooled :class:`aiohttp.ClientSession` is created on the first
    :meth:`send` and closed by :meth:`aclose`; a ``session`` passed in is used
    instead and is left open for its owner to close.

    ``verify`` is ``True`` for the default certificate verification, a path to
    a PEM CA bundle, an :class:`ssl.SSLContext` used as is, or ``False`` for no
    verification (loopback test authorities only). ``timeout`` bounds each
    attempt, in real seconds. A request that fails to connect, times out, or is
    answered with a 5xx without ``Retry-After`` is sent once more after
    ``retry_backoff`` seconds (plus up to half as much jitter) of ``clock``
    time. Throttling answers are remembered in ``throttle`` and replayed
    without a request until their time has passed. ``retry_once=False`` leaves
    retries to the caller (managed identity's own schedule); ``connect_timeout``
    bounds each connection attempt.
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
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=connect_timeout)
        self._retry_once = retry_once
        self._timeout_seconds = timeout
        self._ssl = _ssl_setting(verify)
        self._retry_backoff = retry_backoff
        self._throttle = throttle if throttle is not None else ThrottleMemory()
        self._user_agent = user_agent
        self._proxies = check_proxies(proxies)
        # Read once: HTTP(S)_PROXY and NO_PROXY, as requests (which MSAL uses) reads them.
        self._env_proxies = urllib.request.getproxies_environment() if trust_env else {}
        self._app_headers = dict(app_headers or {})
        self._closed = False

    @property
    def throttle(self) -> ThrottleMemory:
        """The memory of throttling answers this transport consults."""
        return self._throttle

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"AiohttpTransport({state}, timeout={self._timeout_seconds:g}s)"

    async def send(self, request: HttpRequest) -> HttpResponse:
        """Send ``request`` and return the answer, whatever its status.

        Raises :class:`MsalTransportError` when the authority cannot be reached
        or does not answer in time, after one retry.
        """
        where = _redacted_url(request.url)
        if self._closed:
            raise MsalTransportError(f"{request.method} {where} not sent: the transport is closed")
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
        session = self._session_for_send(request.method, where)

        failure: BaseException | None = None
        response: HttpResponse | None = None
        try:
            response = await self._attempt(session, request, headers, where, correlation_id)
        except _FAILURES as exc:
            failure = exc
            _log.debug(
                "%s %s failed (%s), client-request-id=%s; retrying once",
                request.method,
                where,
                _describe(exc, self._timeout_seconds),
                correlation_id,
            )

        if response is not None and (not self._retry_once or not _is_retryable(response)):
            self._throttle.record(request, response, self._clock.time())
            return response
        if failure is not None and not self._retry_once:
            raise MsalTransportError(
                f"{request.method} {where} failed: {_describe(failure, self._timeout_seconds)} "
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
        await self._clock.sleep(self._retry_backoff * (1.0 + jitter))
        if self._closed or session.closed:
            raise MsalTransportError(
                f"{request.method} {where} not retried: the transport was closed"
            ) from failure

        try:
            response = await self._attempt(session, request, headers, where, correlation_id)
        except _FAILURES as exc:
            raise MsalTransportError(
                f"{request.method} {where} failed after 2 attempts: "
                f"{_describe(exc, self._timeout_seconds)} "
                f"(client-request-id {correlation_id})"
            ) from exc
        response = dataclasses.replace(response, attempts=2)
        self._throttle.record(request, response, self._clock.time())
        return response

    async def aclose(self) -> None:
        """Close the session this transport created; a caller's session is left open."""
        if self._closed:
            return
        self._closed = True
        session, self._session = self._session, None
        if self._owns_session and session is not None and not session.closed:
            await session.close()

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
        if chosen is not None or not self._env_proxies:
            return chosen
        if no_proxy_matches(host, parts.port, self._env_proxies.get("no", "")):
            return None
        return self._env_proxies.get(parts.scheme) or self._env_proxies.get("all")

    # -- internals ---------------------------------------------------------

    def _session_for_send(self, method: str, where: str) -> aiohttp.ClientSession:
        session = self._session
        if session is None:
            connector = aiohttp.TCPConnector(
                limit=_LIMIT,
                limit_per_host=_LIMIT_PER_HOST,
                ttl_dns_cache=_DNS_CACHE_SECONDS,
                use_dns_cache=True,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                raise_for_status=False,
                # Proxies are chosen per request (proxy_for), never for IMDS.
                trust_env=False,
            )
            self._session = session
        elif session.closed:
            raise MsalTransportError(f"{method} {where} not sent: the session is closed")
        return session

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

    async def _attempt(
        self,
        session: aiohttp.ClientSession,
        request: HttpRequest,
        headers: Mapping[str, str],
        where: str,
        correlation_id: str,
    ) -> HttpResponse:
        started = time.perf_counter()
        _log.debug("%s %s client-request-id=%s", request.method, where, correlation_id)
        data = dict(request.form) if request.method == "POST" and request.form else None
        url = request.url
        for hops in range(_MAX_REDIRECTS + 1):
            # No automatic redirects: a POST (a form of secrets) is never redirected, and a
            # GET (metadata, discovery) follows a redirect only within its own origin, so
            # no other origin (nor plain http) can name the endpoints a secret goes to.
            # The `async with` releases the connection on every exit, cancellation included.
            async with session.request(
                request.method,
                url,
                headers=headers,
                data=data,
                ssl=self._ssl,
                timeout=self._timeout,
                proxy=self.proxy_for(url),
                allow_redirects=False,
            ) as raw:
                status = raw.status
                target = (
                    _same_origin_location(url, raw.headers.get("location"))
                    if request.method == "GET"
                    and status in _REDIRECT_STATUSES
                    and hops < _MAX_REDIRECTS
                    else None
                )
                if target is None:
                    body = await _read_capped(raw)
                    response_headers = {name.lower(): value for name, value in raw.headers.items()}
                    break
            _log.debug("%s %s -> %d, following it within the origin", request.method, where, status)
            url = target
        _log.debug(
            "%s %s -> %d in %.1f ms client-request-id=%s",
            request.method,
            where,
            status,
            (time.perf_counter() - started) * 1000.0,
            correlation_id,
        )
        return HttpResponse(status=status, headers=response_headers, body=body)


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


async def _read_capped(raw: aiohttp.ClientResponse) -> bytes:
    """The body, or its first ``MAX_BODY_BYTES + 1`` bytes: the parsers refuse a longer one.

    Reading stops there (a decompressed body too), and the connection, with
    its unread rest, is closed rather than reused.
    """
    chunks: list[bytes] = []
    size = 0
    while size <= MAX_BODY_BYTES:
        chunk = await raw.content.read(MAX_BODY_BYTES + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _same_origin_location(url: str, location: str | None) -> str | None:
    """The absolute target of a redirect when it stays in ``url``'s origin, else None.

    The origin is the scheme, host and port: https never leads to http.
    """
    if not location:
        return None
    try:
        target = urljoin(url, location)
        here, there = urlsplit(url), urlsplit(target)
        same = (
            here.scheme == there.scheme
            and (here.hostname or "") == (there.hostname or "")
            and (here.port or _DEFAULT_PORTS.get(here.scheme))
            == (there.port or _DEFAULT_PORTS.get(there.scheme))
            and not there.username
            and not there.password
        )
    except ValueError:
        return None
    return target if same else None


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


def _describe(exc: BaseException, timeout: float) -> str:
    """Name the kind of failure without echoing URLs, headers or bodies."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "TLS certificate verification failed"
    if isinstance(exc, aiohttp.ClientConnectorSSLError | aiohttp.ClientSSLError):
        return "TLS handshake failed"
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.strerror or type(exc.os_error).__name__
        return f"cannot connect ({reason})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server disconnected"
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return f"no answer within {timeout:g}s (timeout)"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the response body was cut short"
    if isinstance(exc, aiohttp.ClientConnectionError):
        return f"connection error ({type(exc).__name__})"
    if isinstance(exc, OSError):
        reason = exc.strerror or type(exc).__name__
        return f"connection error ({reason})"
    return f"HTTP client error ({type(exc).__name__})"
