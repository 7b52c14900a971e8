"""The transport's pooled aiohttp session: made on the loop it serves, dropped once that ends."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp

from .._concurrency._loop_binding import loop_has_ended
from .._errors import MsalError
from ._attempts import LIMIT_PER_HOST, TRACING

__all__ = ["discard", "loop_of", "new_session", "usable_here"]
#: Connections kept open in all.
_LIMIT = 200
#: Seconds a DNS answer is reused.
_DNS_CACHE_SECONDS = 300


def new_session(timeout: aiohttp.ClientTimeout) -> aiohttp.ClientSession:
    """A pooled session on the running loop, reporting each request's progress (TRACING)."""
    connector = aiohttp.TCPConnector(
        limit=_LIMIT,
        limit_per_host=LIMIT_PER_HOST,
        ttl_dns_cache=_DNS_CACHE_SECONDS,
        use_dns_cache=True,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        raise_for_status=False,
        # Proxies are chosen per request (AiohttpTransport.proxy_for), never for IMDS.
        trust_env=False,
        trace_configs=[TRACING],
    )


async def usable_here(session: aiohttp.ClientSession, *, owned: bool) -> bool:
    """Whether ``session`` serves the running loop; False (after letting go of it) if it is
    ours and of an event loop that ended; :class:`MsalError` if another loop still runs it,
    or it is the caller's and of another loop."""
    loop = None if session.closed else loop_of(session)
    if loop is None or loop is asyncio.get_running_loop():
        return True
    if not owned or not loop_has_ended(loop):
        raise MsalError(
            "the HTTP session belongs to another event loop: an application works "
            "on one event loop at a time (pass an http_session created on this one)"
        )
    await discard(session)
    return False


async def discard(session: aiohttp.ClientSession) -> None:
    """Let go of a session of an event loop that ended, from another loop."""
    loop = loop_of(session)
    if loop is not None and not loop.is_closed():
        session.detach()  # a stopped loop's connections cannot be closed from another loop
        return
    with contextlib.suppress(Exception):  # closed with its loop: nothing left to wait for
        await session.close()


def loop_of(session: aiohttp.ClientSession) -> asyncio.AbstractEventLoop | None:
    """The event loop ``session`` was created on (aiohttp keeps it; None if it does not say)."""
    loop = getattr(session, "_loop", None)
    return loop if isinstance(loop, asyncio.AbstractEventLoop) else None
