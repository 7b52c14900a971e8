"""Parsing a token endpoint's answer into a value or a typed error (sans-I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .._errors import MsalServiceError
from ._error_response import decode_json_object, optional_str, parse_error_response
from ._http import HttpResponse

__all__ = ["TokenResponse", "parse_token_response"]


@dataclass(frozen=True, slots=True)
class TokenResponse:
    """A successful token response, secrets hidden from the repr."""

    access_token: str = field(repr=False)
    token_type: str
    expires_in: int
    ext_expires_in: int | None
    refresh_in: int | None
    scope: tuple[str, ...] | None
    refresh_token: str | None = field(default=None, repr=False)
    id_token: str | None = field(default=None, repr=False)
    client_info: str | None = field(default=None, repr=False)
    foci: str | None = None
    correlation_id: str | None = None


def parse_token_response(response: HttpResponse, now: float = 0.0) -> TokenResponse:
    """Return the token of a 2xx answer, or raise the error it carries.

    ``now`` (the application clock) reads an HTTP-date ``Retry-After``.
    """
    if not 200 <= response.status < 300:
        raise parse_error_response(response, now)
    body = decode_json_object(response)
    if body is None:
        raise MsalServiceError(
            "invalid_response",
            "the token endpoint answered with a body that is not a JSON object",
            status=response.status,
            correlation_id=response.headers.get("client-request-id"),
        )
    token = body.get("access_token")
    expires_in = _seconds(body.get("expires_in"))
    if not isinstance(token, str) or not token or expires_in is None:
        raise MsalServiceError(
            "invalid_response",
            "the token response lacks an access_token or a numeric expires_in",
            status=response.status,
            correlation_id=response.headers.get("client-request-id"),
        )
    scope = body.get("scope")
    return TokenResponse(
        access_token=token,
        token_type=str(body.get("token_type") or "Bearer"),
        expires_in=expires_in,
        ext_expires_in=_seconds(body.get("ext_expires_in")),
        refresh_in=_seconds(body.get("refresh_in")),
        scope=tuple(scope.split()) if isinstance(scope, str) and scope else None,
        refresh_token=optional_str(body.get("refresh_token")),
        id_token=optional_str(body.get("id_token")),
        client_info=optional_str(body.get("client_info")),
        foci=optional_str(body.get("foci")),
        correlation_id=response.headers.get("client-request-id"),
    )


def _seconds(value: object) -> int | None:
    """Entra sends numbers; ADFS and older endpoints send numeric strings."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str):
        try:
            return int(float(value))
        except ValueError:
            return None
    return None
