"""aiohttp client middleware that attaches aiomsal tokens to requests for chosen origins.

::

    from aiomsal.integrations.aiohttp import BearerTokenMiddleware, client_credentials

    graph = "https://graph.microsoft.com"
    middleware = BearerTokenMiddleware(client_credentials(app), {graph: [f"{graph}/.default"]})
    async with aiohttp.ClientSession(middlewares=[middleware]) as session:
        await session.get("https://graph.microsoft.com/v1.0/users")

Needs aiohttp 3.12 or later (client middlewares).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aiohttp import ClientHandlerType, ClientRequest, ClientResponse, hdrs

from .._errors import MsalConfigurationError
from ._token_source import (
    TokenSource,
    azure_credential,
    claims_from_challenge,
    client_credentials,
    current_token,
    managed_identity,
    on_behalf_of,
    origin_scopes,
    using_token,
)

__all__ = [
    "BearerTokenMiddleware",
    "TokenSource",
    "azure_credential",
    "claims_from_challenge",
    "client_credentials",
    "current_token",
    "managed_identity",
    "on_behalf_of",
    "using_token",
]


class BearerTokenMiddleware:
    """Adds ``Authorization: Bearer`` to the requests for the origins of ``scopes_by_origin``.

    An origin is ``scheme://host[:port]``, compared exactly: no other host, port
    or scheme ever gets a token, and after a redirect (each hop passes through
    the middleware) neither does the new location unless it is itself listed.
    Only ``https`` origins are accepted (``http`` for loopback hosts only).

    On a ``401`` carrying a CAE claims challenge (``error="insufficient_claims"``)
    a new token is acquired with that challenge and the request is sent once
    more, unless its body cannot be sent again (an async generator): then, as
    for every other ``401``, the response goes back to the caller.
    """

    def __init__(self, source: TokenSource, scopes_by_origin: Mapping[str, Sequence[str]]) -> None:
        if not callable(source):
            raise MsalConfigurationError(
                "source must be a token source: client_credentials(app), on_behalf_of(app), ..."
            )
        self._source = source
        self._origins = origin_scopes(scopes_by_origin)

    def __repr__(self) -> str:
        origins = ", ".join(f"{s}://{h}:{p}" for s, h, p in self._origins)
        return f"BearerTokenMiddleware({origins})"

    async def __call__(self, request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        url = request.url
        scopes = self._origins.get((url.scheme, url.raw_host, url.port))  # type: ignore[arg-type]
        if scopes is None:
            return await handler(request)
        token = await self._source(scopes, None)
        request.headers[hdrs.AUTHORIZATION] = f"Bearer {token}"
        response = await handler(request)
        if response.status != 401:
            return response
        claims = claims_from_challenge(response.headers.get(hdrs.WWW_AUTHENTICATE))
        if claims is None or getattr(request.body, "consumed", False):
            return response
        response.release()
        token = await self._source(scopes, claims)
        request.headers[hdrs.AUTHORIZATION] = f"Bearer {token}"
        return await handler(request)
