"""Parsing a token endpoint's answer into a value or a typed error (sans-I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._errors import MsalServiceError
from ._error_response import (
    decode_json_object,
    invalid_response,
    parse_error_response,
    service_error_from_body,
)
from ._http import HttpResponse
from ._json import json_seconds

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
    A 2xx answer with an ``error`` is the error it names (``invalid_grant``
    gives :class:`~aiomsal.MsalUiRequiredError`). Anything else that is not a
    well-formed token raises ``MsalServiceError("invalid_response")``: a body
    that is not bounded JSON (:mod:`._json`), an empty or non-string
    ``access_token``, an ``expires_in`` that is not a positive number of
    seconds up to ten years, an ``ext_expires_in`` or ``refresh_in`` that is
    present, not zero and malformed, a ``scope`` that is neither a string nor
    a list of strings, and a non-string ``token_type``,
    ``refresh_token``, ``id_token``, ``client_info`` or ``foci``.
    """
    correlation_id = response.headers.get("client-request-id")
    if not 200 <= response.status < 300:
        raise parse_error_response(response, now)
    body = decode_json_object(response)
    if body is None:
        raise _invalid(response, "a body that is not a bounded JSON object")
    if body.get("error") is not None:
        raise service_error_from_body(body, response.status, correlation_id=correlation_id)
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise _invalid(response, "no access_token string")
    expires_in = json_seconds(body.get("expires_in"))
    if expires_in is None:
        raise _invalid(response, "an expires_in that is not a positive number of seconds")
    token_type = _string(body, "token_type", response)
    return TokenResponse(
        access_token=token,
        token_type=token_type or "Bearer",
        expires_in=expires_in,
        ext_expires_in=_optional_seconds(body, "ext_expires_in", response),
        refresh_in=_optional_seconds(body, "refresh_in", response),
        scope=_scope(body, response),
        refresh_token=_string(body, "refresh_token", response),
        id_token=_string(body, "id_token", response),
        client_info=_string(body, "client_info", response),
        foci=_string(body, "foci", response),
        correlation_id=correlation_id,
    )


def _string(body: dict[str, Any], name: str, response: HttpResponse) -> str | None:
    """A string field: None when absent, null or empty; not a string is invalid."""
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _invalid(response, f"a {name} that is not a string")
    return value


def _scope(body: dict[str, Any], response: HttpResponse) -> tuple[str, ...] | None:
    """The granted scopes: a space-separated string (RFC 6749), or a list of strings."""
    value = body.get("scope")
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        value = " ".join(value)
    scope = _string({"scope": value}, "scope", response)
    return tuple(scope.split()) if scope else None


def _optional_seconds(body: dict[str, Any], name: str, response: HttpResponse) -> int | None:
    """An optional lifetime: None when absent, null or zero; otherwise malformed is invalid."""
    value = body.get(name)
    if value is None or (value in (0, "0") and not isinstance(value, bool)):
        return None
    seconds = json_seconds(value)
    if seconds is None:
        raise _invalid(response, f"a {name} that is not a positive number of seconds")
    return seconds


def _invalid(response: HttpResponse, problem: str) -> MsalServiceError:
    return invalid_response(response, f"the token endpoint answered with {problem}")
