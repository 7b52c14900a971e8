"""The interactive flow's redirect listener on the loopback interface (aiohttp.web).

aiohttp.web is imported when the listener opens, in a worker thread
(:mod:`._loading`): the event loop keeps serving meanwhile.

The browser is sent to ``http://localhost:<port>``; Entra ID lets a native
client's loopback redirect URI use any port (RFC 8252 §7.3). The listener
binds 127.0.0.1 only, answers the first authorization response with a small
page and hands its query parameters to the waiting task.

Nothing here logs a request: its query carries the authorization code.
"""

from __future__ import annotations

import asyncio
import html
import socket
from types import TracebackType
from typing import TYPE_CHECKING

import anyio

from .._errors import MsalConfigurationError, MsalError
from ._loading import import_off_loop

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["LoopbackRedirectListener"]

_HOST = "127.0.0.1"
_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body style="font-family: sans-serif; margin: 3em;"><p>{text}</p></body></html>
"""
_SUCCESS = "Authentication complete. You can close this window."
_MISMATCH = "This answer does not belong to the sign-in in progress. It was ignored."
_NO_ANSWER = "Not found."
#: Seconds the first listener may wait for aiohttp.web to be imported.
_IMPORT_BUDGET = 30.0


class LoopbackRedirectListener:
    """Receive one authorization response on ``http://localhost:<port>``.

    ::

        async with LoopbackRedirectListener() as listener:
            ...  # send the browser to a URL whose redirect_uri is listener.redirect_uri
            params = await listener.wait_for_response(state=flow.state)

    ``port=0`` picks a free port; a given port that is in use raises
    :class:`MsalConfigurationError`. A response that arrives before
    :meth:`wait_for_response` is called is kept for it. Leaving the context
    closes the socket, whether or not a response came, even when the
    leaving task is being cancelled.
    """

    def __init__(self, port: int = 0) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise MsalConfigurationError(f"port must be 0 (any) or 1-65535, not {port!r}")
        self._requested_port = port
        self._port: int | None = None
        self._runner: web.AppRunner | None = None
        #: Authorization responses received and not yet handed out, oldest first.
        self._received: list[dict[str, str]] = []
        self._arrived = asyncio.Event()
        self._expected_state: str | None = None
        self._waiting = False

    @property
    def port(self) -> int:
        """The port listened on (known once the context is entered)."""
        if self._port is None:
            raise MsalError("the listener is not open: use it as an async context manager")
        return self._port

    @property
    def redirect_uri(self) -> str:
        """What the authorization request names as ``redirect_uri``."""
        return f"http://localhost:{self.port}"

    async def __aenter__(self) -> LoopbackRedirectListener:
        if self._runner is not None:
            raise MsalError("the listener is already open")
        await import_off_loop("aiohttp.web", _IMPORT_BUDGET)
        from aiohttp import web

        sock = _bind(self._requested_port)
        app = web.Application()
        app.router.add_get("/{path:.*}", self._handle)
        # access_log=None: an access log line would hold the authorization code.
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        try:
            await runner.setup()
            await web.SockSite(runner, sock).start()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await runner.cleanup()
            sock.close()
            raise
        self._runner = runner
        self._port = sock.getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop listening (what leaving the context does); safe to call twice."""
        runner, self._runner = self._runner, None
        self._received.clear()
        if runner is not None:
            with anyio.CancelScope(shield=True):  # the socket must close even when cancelled
                await runner.cleanup()

    async def wait_for_response(self, *, state: str | None = None) -> dict[str, str]:
        """The query parameters of the first authorization response.

        An authorization response is any GET of ``/`` (Entra ID may redirect
        there without parameters on some failures), or a GET of another path
        whose query has a ``code`` or an ``error``; other requests, such as
        ``/favicon.ico``, get a 404. When ``state`` is given, a response with another
        state is answered with an error page and ignored, so that a stray
        request cannot end the wait; :func:`~aiomsal._protocol._auth_code.code_from_auth_response`
        checks the state again in any case. A value repeated in the query
        counts once (its first occurrence).

        Bound it with a timeout (``anyio.fail_after``). Cancelling it leaves
        nothing behind; the listener stays open until the context exits.
        """
        if self._runner is None:
            raise MsalError("the listener is not open: use it as an async context manager")
        if self._waiting:
            raise MsalError("another task is already waiting for the response")
        self._waiting = True
        self._expected_state = state
        try:
            while True:
                while self._received:
                    params = self._received.pop(0)
                    if state is None or params.get("state") == state:
                        return params
                self._arrived.clear()
                await self._arrived.wait()
        finally:
            self._waiting = False

    async def _handle(self, request: web.Request) -> web.Response:
        query = request.query
        is_answer = "code" in query or "error" in query
        if request.path == "/favicon.ico" or (request.path != "/" and not is_answer):
            return _page(404, "Not found", _NO_ANSWER)
        params = {key: query.getone(key) for key in query}
        expected = self._expected_state
        if expected is not None and params.get("state") != expected:
            return _page(400, "Authentication failed", _MISMATCH)
        self._received.append(params)
        self._arrived.set()
        if "code" in params and "error" not in params:
            return _page(200, "Authentication complete", _SUCCESS)
        error = params.get("error") or "the answer carries no authorization code"
        return _page(400, "Authentication failed", f"Authentication failed: {error}")


def _page(status: int, title: str, text: str) -> web.Response:
    from aiohttp import web  # imported when the listener opened

    body = _PAGE.format(title=html.escape(title), text=html.escape(text))
    response = web.Response(
        status=status,
        text=body,
        content_type="text/html",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )
    response.force_close()  # no keep-alive connection to outlive the listener
    return response


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # No SO_REUSEADDR: on Windows it would let another process share the port.
        sock.bind((_HOST, port))
        sock.listen(8)
        sock.setblocking(False)
    except OSError as error:
        sock.close()
        raise MsalConfigurationError(
            f"cannot listen on {_HOST}:{port} for the redirect ({error.strerror or error})"
        ) from error
    return sock
