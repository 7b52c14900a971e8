"""HTTP values and the transport seam.

The protocol logic of aiomsal builds :class:`HttpRequest` values and parses
:class:`HttpResponse` values without touching a socket; a :class:`Transport`
sends one for the other. The aiohttp adapter is the only transport shipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ._json import decode_json

__all__ = ["HttpRequest", "HttpResponse", "Transport"]


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One request to an authority.

    ``form`` is sent URL-encoded as the body of a POST. It holds secrets and
    assertions, so it never appears in the repr; nor do ``headers``, which may
    carry a managed identity secret.
    """

    method: Literal["GET", "POST"]
    url: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    form: Mapping[str, str] | None = field(default=None, repr=False)
    #: Whether a throttled answer to this request is remembered (token requests).
    throttle: bool = False
    #: Whether it may be sent again after it may have reached the server (False for
    #: grants that are spent once redeemed: an authorization code, a refresh token that
    #: may rotate). Such a request is resent only when it never left.
    resendable: bool = True

    def throttle_key(self) -> tuple[str, str, tuple[tuple[str, str], ...]]:
        """Identify this request for the throttling memory (secrets included, never shown)."""
        form = tuple(sorted(self.form.items())) if self.form else ()
        return (self.method, self.url, form)


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """One answer from an authority; header names are lower-case."""

    status: int
    headers: Mapping[str, str]
    body: bytes = field(repr=False)
    #: True for a throttled answer replayed from memory: no request was sent.
    replayed: bool = False
    #: Attempts the transport made for this answer (2 after its one retry).
    attempts: int = 1

    def json(self) -> Any:
        """Decode the body as bounded JSON (raises ``JsonRejected``, a ``ValueError``).

        Every parser of an authority's answers decodes through the one bounded
        decoder of :mod:`aiomsal._protocol._json`.
        """
        return decode_json(self.body)


class Transport(Protocol):
    """Sends requests to an authority."""

    async def send(self, request: HttpRequest) -> HttpResponse:
        """Send ``request`` and return the response, or raise ``MsalTransportError``."""
        ...

    async def aclose(self) -> None:
        """Release connections owned by this transport."""
        ...
