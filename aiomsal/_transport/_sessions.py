"""The transport's pooled aiohttp session: made on the loop it serves, dropped once that ends."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp

from ._attempts import TRACING

__all__ = ["LIMIT_PER_HOST", "discard", "loop_of", "new_session"]

#: Connections kept open per authority host.
LIMIT_PER_HOST = 100
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
        # Like requests (which MSAL uses): honour HTTP(S)_PROXY / NO_PROXY.
        trust_env=True,
        trace_configs=[TRACING],
    )


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
