"""The aiohttp half of the transport: sessions, one attempt on the wire, aiohttp's failures.

:class:`~aiomsal._transport._aiohttp_transport.AiohttpTransport` imports this
module on its first request, in a worker thread (:mod:`._loading`), so that
``import aiomsal`` and tokens served from the cache never import aiohttp.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from urllib.parse import urljoin, urlsplit

import aiohttp

from .._protocol._http import HttpRequest, HttpResponse
from .._protocol._json import MAX_BODY_BYTES
from ._attempts import Attempt, describe, failed
from ._sessions import discard, loop_of, new_session, usable_here

__all__ = ["WIRE", "Wire"]

_log = logging.getLogger("aiomsal")

#: Redirects followed for one GET (each within the request's origin).
_MAX_REDIRECTS = 3
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"https": 443, "http": 80}


async def _attempt(
    session: aiohttp.ClientSession,
    request: HttpRequest,
    headers: Mapping[str, str],
    *,
    where: str,
    correlation_id: str,
    attempt: Attempt,
    timeout: float,
    connect_timeout: float | None,
    ssl_setting: bool | ssl.SSLContext,
    proxy_for: Callable[[str], str | None],
) -> HttpResponse:
    """One attempt at ``request`` (and the redirects it follows within its origin).

    ``timeout`` is what the attempt may take: none is sent unless it is positive.
    """
    attempt.start(timeout)
    if attempt.timeout <= 0:
        raise asyncio.TimeoutError  # the call's deadline has passed: nothing is sent
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
            ssl=ssl_setting,
            timeout=aiohttp.ClientTimeout(total=attempt.timeout, sock_connect=connect_timeout),
            trace_request_ctx=attempt,
            proxy=proxy_for(url),
            allow_redirects=False,
        ) as raw:
            attempt.sent()
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


class Wire:
    """What the transport does with aiohttp, behind one object it holds once it is imported."""

    #: The failures of an attempt that the transport retries (or reports).
    failures: tuple[type[BaseException], ...] = (
        aiohttp.ClientError,
        asyncio.TimeoutError,
        TimeoutError,
        OSError,
    )
    describe = staticmethod(describe)
    failed = staticmethod(failed)
    discard = staticmethod(discard)
    loop_of = staticmethod(loop_of)
    usable_here = staticmethod(usable_here)
    attempt = staticmethod(_attempt)

    @staticmethod
    def new_attempt() -> Attempt:
        """What will become of a request's attempts."""
        return Attempt()

    @staticmethod
    def new_session(timeout: float, connect_timeout: float | None) -> aiohttp.ClientSession:
        """A pooled session of the transport's, on the running loop."""
        return new_session(aiohttp.ClientTimeout(total=timeout, sock_connect=connect_timeout))


#: The one :class:`Wire` (it holds nothing of any transport's).
WIRE = Wire()
