"""What became of one request's attempts: whether it left, reached the server, or waited.

A session the transport creates reports its progress through aiohttp's
tracing signals (a wait for a pooled connection, the request's headers
leaving); with a session passed in, whether a failed attempt left is
judged by the kind of failure.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import aiohttp

from .._errors import MsalTransportError
from .._protocol._http import HttpRequest

__all__ = ["LIMIT_PER_HOST", "TRACING", "Attempt", "describe", "failed"]

#: Connections kept open per authority host.
LIMIT_PER_HOST = 100


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


def failed(
    request: HttpRequest, where: str, correlation_id: str, exc: BaseException,
    attempt: Attempt, attempts: int, configured: float,
) -> MsalTransportError:
    """The error of a request that failed after ``attempts`` attempts (1: not retried)."""
    tried = "after 2 attempts" if attempts == 2 else "(not retried)"
    if attempts == 1 and request.resendable:
        tried = "(no time left to retry within the call's timeout)"
    return MsalTransportError(
        f"{request.method} {where} failed {tried}: {describe(exc, attempt, configured)} "
        f"(client-request-id {correlation_id})"
    )


def describe(exc: BaseException, attempt: Attempt, configured: float) -> str:
    """Why an attempt failed, without echoing URLs, headers or bodies.

    A timeout says whether the request waited for a pooled connection and
    never left, or whether the call's deadline (not the ``configured``
    per-attempt timeout) cut it short.
    """
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        if attempt.timeout <= 0:
            return "not sent: the call's deadline had passed before it could be"
        if attempt.stuck_in_pool:
            return (
                f"not sent within {attempt.timeout:g}s: it waited for a pooled connection "
                f"(the pool holds {LIMIT_PER_HOST} per host: too many requests at once)"
            )
        if attempt.timeout < configured:
            return (
                f"no answer before the call's deadline ({attempt.timeout:.3g}s were left for "
                f"this request; timeout={configured:g}s bounds the whole call)"
            )
    return _describe(exc, attempt.timeout)


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
