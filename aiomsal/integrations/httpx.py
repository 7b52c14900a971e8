"""httpx authentication that attaches aiomsal tokens to requests for chosen origins.

::

    from aiomsal.integrations.httpx import BearerTokenAuth, client_credentials

    graph = "https://graph.microsoft.com"
    auth = BearerTokenAuth(client_credentials(app), {graph: [f"{graph}/.default"]})
    async with httpx.AsyncClient(auth=auth) as client:
        await client.get(f"{graph}/v1.0/users")

Install with ``pip install 'aiomsal[httpx]'``. Async clients only.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, Mapping, Sequence

import httpx

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
    "BearerTokenAuth",
    "TokenSource",
    "azure_credential",
    "claims_from_challenge",
    "client_credentials",
    "current_token",
    "managed_identity",
    "on_behalf_of",
    "using_token",
]


_DEFAULT_PORTS = {"https": 443, "http": 80}


class BearerTokenAuth(httpx.Auth):
    """Adds ``Authorization: Bearer`` to the requests for the origins of ``scopes_by_origin``.

    The same rules as :class:`aiomsal.integrations.aiohttp.BearerTokenMiddleware`:
    exact origins, https only (loopback excepted), and one resend with a new
    token after a CAE claims challenge, unless the body was streamed. httpx
    itself drops the header when a redirect leaves the origin.
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
        return f"BearerTokenAuth({origins})"

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        raise RuntimeError("BearerTokenAuth works with httpx.AsyncClient only")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        url = request.url
        port = url.port or _DEFAULT_PORTS.get(url.scheme)
        scopes = self._origins.get((url.scheme, url.host.rstrip("."), port or 0))
        if scopes is None:
            yield request
            return
        request.headers["Authorization"] = f"Bearer {await self._source(scopes, None)}"
        response = yield request
        if response.status_code != 401:
            return
        claims = claims_from_challenge(response.headers.get("www-authenticate"))
        if claims is None or not _replayable(request):
            return
        request.headers["Authorization"] = f"Bearer {await self._source(scopes, claims)}"
        yield request


def _replayable(request: httpx.Request) -> bool:
    """Whether the body is in memory (bytes, form, JSON), not a consumed stream."""
    try:
        request.content  # noqa: B018 - raises for a streamed body
    except httpx.RequestNotRead:
        return False
    return True
