"""Reading an authority's error answers into typed errors (sans-I/O).

One place knows the shape of an Entra ID error body (``error``,
``error_description``, ``error_codes``, ``suberror``, ids, ``claims``) and
which errors mean throttling or "only interaction helps".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._errors import (
    UI_REQUIRED_ERRORS,
    MsalServiceError,
    MsalThrottledError,
    MsalUiRequiredError,
)
from ._http import HttpResponse
from ._json import decode_json_object as _decode_body
from ._throttling import parse_retry_after

__all__ = [
    "DEFAULT_THROTTLE_SECONDS",
    "MAX_DESCRIPTION",
    "decode_json_object",
    "invalid_response",
    "redirect_note",
    "optional_str",
    "parse_error_response",
    "service_error_from_body",
]

#: How long a 429 without ``Retry-After`` tells callers to wait.
DEFAULT_THROTTLE_SECONDS = 5.0
#: The longest ``error_description`` (or other text field) kept from an error body.
MAX_DESCRIPTION = 2000


def decode_json_object(response: HttpResponse) -> dict[str, Any] | None:
    """Decode the body as a bounded JSON object (:mod:`._json`), or return ``None``."""
    return _decode_body(response.body)


def optional_str(value: object) -> str | None:
    """A non-empty string value, else None."""
    return value if isinstance(value, str) and value else None


def _text(value: object) -> str | None:
    """A non-empty string of an error body, cut to :data:`MAX_DESCRIPTION` characters."""
    if not isinstance(value, str) or not value:
        return None
    return value if len(value) <= MAX_DESCRIPTION else value[:MAX_DESCRIPTION] + "..."


def invalid_response(response: HttpResponse, description: str) -> MsalServiceError:
    """``MsalServiceError("invalid_response")`` for an answer that is not what it should be."""
    return MsalServiceError(
        "invalid_response",
        description,
        status=response.status,
        correlation_id=response.headers.get("client-request-id"),
    )


def redirect_note(response: HttpResponse) -> str:
    """The words that explain a 3xx answer that reached a parser; "" for other answers."""
    if 300 <= response.status < 400:
        return " (a redirect: aiomsal follows one only for a GET within the same origin)"
    return ""


def service_error_from_body(
    body: Mapping[str, Any],
    status: int,
    *,
    description: str | None = None,
    correlation_id: str | None = None,
) -> MsalServiceError:
    """The error an Entra-shaped error body describes (``MsalServiceError`` or a subclass)."""
    error = _text(body.get("error")) or "invalid_response"
    codes = body.get("error_codes")
    error_codes = (
        [c for c in codes[:64] if isinstance(c, int) and not isinstance(c, bool)]
        if isinstance(codes, list)
        else []
    )
    cls = MsalUiRequiredError if error in UI_REQUIRED_ERRORS else MsalServiceError
    return cls(
        error,
        description if description is not None else _text(body.get("error_description")),
        status=status,
        error_codes=error_codes,
        suberror=_text(body.get("suberror")),
        correlation_id=_text(body.get("correlation_id")) or correlation_id,
        trace_id=_text(body.get("trace_id")),
        timestamp=_text(body.get("timestamp")),
        claims=optional_str(body.get("claims")),
        error_uri=optional_str(body.get("error_uri")),
    )


def parse_error_response(response: HttpResponse, now: float = 0.0) -> MsalServiceError:
    """The typed error of a non-2xx answer, with or without an error body.

    HTTP 429, and any 5xx with a ``Retry-After`` header, give
    :class:`MsalThrottledError` (with :data:`DEFAULT_THROTTLE_SECONDS` when the
    header cannot be read), exactly as the throttling memory remembers them.
    """
    body = decode_json_object(response)
    correlation = response.headers.get("client-request-id")
    if body is None or optional_str(body.get("error")) is None:
        kind = response.headers.get("content-type", "no content type").split(";")[0][:100]
        body = {}
        description: str | None = (
            f"HTTP {response.status} without an OAuth error body ({kind})"
            + redirect_note(response)
        )
    else:
        description = None
    error = service_error_from_body(
        body, response.status, description=description, correlation_id=correlation
    )
    header = response.headers.get("retry-after")
    retry_after = parse_retry_after(header, now)
    if response.status == 429 or (response.status >= 500 and header is not None):
        return MsalThrottledError(
            error.error,
            error.error_description,
            retry_after=retry_after if retry_after is not None else DEFAULT_THROTTLE_SECONDS,
            status=error.status,
            error_codes=error.error_codes,
            correlation_id=error.correlation_id,
            trace_id=error.trace_id,
            timestamp=error.timestamp,
            error_uri=error.error_uri,
        )
    return error
