"""The exception tree of aiomsal.

::

    MsalError
    ├── MsalConfigurationError (also a ValueError)
    ├── MsalTransportError
    ├── MsalSignInError
    └── MsalServiceError
        ├── MsalUiRequiredError
        │   └── MsalAssertionExpiredError
        └── MsalThrottledError

No message of these exceptions ever contains a secret, an assertion or a token:
they carry only what the authority said about the failure and the identifiers
needed to trace it.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "MsalAssertionExpiredError",
    "MsalConfigurationError",
    "MsalError",
    "MsalServiceError",
    "MsalSignInError",
    "MsalThrottledError",
    "MsalTransportError",
    "MsalUiRequiredError",
]

#: Error codes after which only user interaction can help.
UI_REQUIRED_ERRORS = frozenset(
    {"invalid_grant", "interaction_required", "login_required", "consent_required"}
)


class MsalError(Exception):
    """Raised for every failure of aiomsal; the root of its exception tree."""


class MsalConfigurationError(MsalError, ValueError):
    """Raised when an application, credential, authority or scope is malformed."""


class MsalTransportError(MsalError):
    """Raised when the authority could not be reached or did not answer in time."""


class MsalSignInError(MsalError):
    """Raised when a sign-in does not complete or its answer fails a security check.

    The ``state`` of an authorization response or the ``nonce`` of an ID token
    did not match the request, no answer came in time, or the answer lacked
    the authorization code.
    """


class MsalServiceError(MsalError):
    """Raised when the authority answered a request with an error."""

    def __init__(
        self,
        error: str,
        error_description: str | None = None,
        *,
        status: int | None = None,
        error_codes: Sequence[int] = (),
        suberror: str | None = None,
        correlation_id: str | None = None,
        trace_id: str | None = None,
        timestamp: str | None = None,
        claims: str | None = None,
        error_uri: str | None = None,
    ) -> None:
        self.error = error
        self.error_description = error_description
        self.status = status
        self.error_codes = tuple(error_codes)
        self.suberror = suberror
        self.correlation_id = correlation_id
        self.trace_id = trace_id
        self.timestamp = timestamp
        self.claims = claims
        #: A page about the error, when the authority named one.
        self.error_uri = error_uri
        super().__init__(self._message())

    def _message(self) -> str:
        parts = [self.error]
        if self.suberror:
            parts.append(f"({self.suberror})")
        if self.error_description:
            parts.append(f"- {self.error_description}")
        if self.status is not None:
            parts.append(f"[HTTP {self.status}]")
        if self.correlation_id:
            parts.append(f"correlation_id={self.correlation_id}")
        return " ".join(parts)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), dict(self.__dict__)))


class MsalUiRequiredError(MsalServiceError):
    """Raised when only an interactive sign-in can satisfy the request."""


class MsalAssertionExpiredError(MsalUiRequiredError):
    """Raised by on-behalf-of when the incoming user assertion has expired (its ``exp``).

    Checked before the cache and the refresh token are consulted, without a
    request: the web API should answer its caller 401 so that it gets a new
    token. ``error`` is ``"invalid_grant"``, as the authority would say.
    """


class MsalThrottledError(MsalServiceError):
    """Raised when the authority throttles a request (HTTP 429, or 503 with Retry-After).

    A throttled request is remembered: repeating it before ``retry_after``
    seconds have passed fails at once with this error, without a request.
    """

    def __init__(
        self,
        error: str,
        error_description: str | None = None,
        *,
        retry_after: float,
        status: int | None = None,
        error_codes: Sequence[int] = (),
        correlation_id: str | None = None,
        trace_id: str | None = None,
        timestamp: str | None = None,
        error_uri: str | None = None,
    ) -> None:
        #: Seconds to wait before the same request may be sent again.
        self.retry_after = retry_after
        super().__init__(
            error,
            error_description,
            status=status,
            error_codes=error_codes,
            correlation_id=correlation_id,
            trace_id=trace_id,
            timestamp=timestamp,
            error_uri=error_uri,
        )

    def _message(self) -> str:
        return f"{super()._message()} retry_after={self.retry_after:g}s"


def _rebuild(cls: type[MsalServiceError], state: dict[str, object]) -> MsalServiceError:
    error = cls.__new__(cls)
    error.__dict__.update(state)
    Exception.__init__(error, error._message())
    return error
