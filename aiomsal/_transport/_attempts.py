"""What became of one request's attempts: whether it left, reached the server, or waited.

A session the transport creates reports its progress through aiohttp's
tracing signals (a wait for a pooled connection, the request's headers
leaving); with a session passed in, whether a failed attempt left is
judged by the kind of failure.
"""

from __future__ import annotations

from types import SimpleNamespace

import aiohttp

__all__ = ["TRACING", "Attempt"]


class Attempt:
    """What became of a request's attempts: whether one left, reached the server, waited."""

    __slots__ = ("left", "queued", "reached", "timeout", "traced")

    def __init__(self) -> None:
        self.left = False  # some attempt was sent (counted once)
        self.reached = False  # the current attempt may have reached the server
        self.queued = False  # the current attempt had to wait for a pooled connection
        self.traced = False  # the session reports progress (a session of ours)
        self.timeout = 0.0

    def start(self, timeout: float) -> None:
        self.reached = self.queued = False
        self.timeout = timeout

    def sent(self) -> None:
        self.left = self.reached = True

    @property
    def stuck_in_pool(self) -> bool:
        """Whether the current attempt waited for a pooled connection and never left."""
        return self.traced and self.queued and not self.reached

    def failed(self, exc: BaseException) -> None:
        """Judge by its kind whether a failed attempt left, when the session did not report it."""
        if not self.traced and not isinstance(exc, _NOT_SENT):
            self.sent()


#: Failures of a request that never left: no connection could be made.
_NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


async def _on_queued_start(_s: object, ctx: SimpleNamespace, _p: object) -> None:
    _attempt_of(ctx).queued = True


async def _on_request_start(_s: object, ctx: SimpleNamespace, _p: object) -> None:
    _attempt_of(ctx).traced = True


async def _on_headers_sent(_s: object, ctx: SimpleNamespace, _p: object) -> None:
    _attempt_of(ctx).sent()


def _attempt_of(ctx: SimpleNamespace) -> Attempt:
    attempt = ctx.trace_request_ctx
    return attempt if isinstance(attempt, Attempt) else Attempt()


def _tracing() -> aiohttp.TraceConfig:
    """Progress reports of a session of ours: pool waits, and whether a request left."""
    config = aiohttp.TraceConfig()
    config.on_request_start.append(_on_request_start)
    config.on_connection_queued_start.append(_on_queued_start)
    config.on_request_headers_sent.append(_on_headers_sent)
    config.freeze()
    return config


TRACING = _tracing()


