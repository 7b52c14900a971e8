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
from ._throttling import parse_retry_after

__all__ = [
    "DEFAULT_THROTTLE_SECONDS",
    "decode_json_object",
    "optional_str",
    "parse_error_response",
    "service_error_from_body",
]

#: How long a 429 without ``Retry-After`` tells callers to wait.
DEFAULT_THROTTLE_SECONDS = 5.0


def decode_json_object(response: HttpResponse) -> dict[str, Any] | None:
    """Decode the body as a JSON object, or return ``None``."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def optional_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def service_error_from_body(
    body: Mapping[str, Any],
    status: int,
    *,
    description: str | None = None,
    correlation_id: str | None = None,
) -> MsalServiceError:
    """The error an Entra-shaped error body describes (``MsalServiceError`` or a subclass)."""
    error = optional_str(body.get("error")) or "invalid_response"
    codes = body.get("error_codes")
    error_codes = (
        [c for c in codes if isinstance(c, int) and not isinstance(c, bool)]
        if isinstance(codes, list)
        else []
    )
    cls = MsalUiRequiredError if error in UI_REQUIRED_ERRORS else MsalServiceError
    return cls(
        error,
        description if description is not None else optional_str(body.get("error_description")),
        status=status,
        error_codes=error_codes,
        suberror=optional_str(body.get("suberror")),
        correlation_id=optional_str(body.get("correlation_id")) or correlation_id,
        trace_id=optional_str(body.get("trace_id")),
        timestamp=optional_str(body.get("timestamp")),
        claims=optional_str(body.get("claims")),
        error_uri=optional_str(body.get("error_uri")),
    )


def parse_error_response(response: HttpResponse, now: float = 0.0) -> MsalServiceError:
    """The typed error of a non-2xx answer, with or without an error body.

    HTTP 429, and any 5xx with ``Retry-After``, give :class:`MsalThrottledError`.
    """
    body = decode_json_object(response)
    correlation = response.headers.get("client-request-id")
    if body is None or optional_str(body.get("error")) is None:
        kind = response.headers.get("content-type", "no content type").split(";")[0]
        body = {}
        description: str | None = f"HTTP {response.status} without an OAuth error body ({kind})"
    else:
        description = None
    error = service_error_from_body(
        body, response.status, description=description, correlation_id=correlation
    )
    retry_after = parse_retry_after(response.headers.get("retry-after"), now)
    if response.status == 429 or (response.status >= 500 and retry_after is not None):
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
