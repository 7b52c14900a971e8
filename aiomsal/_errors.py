"""The exception tree of aiomsal.

::

    MsalError
    ├── MsalConfigurationError (also a ValueError)
    ├── MsalTransportError
    ├── MsalSignInError
    ├── MsalServiceError
    │   ├── MsalUiRequiredError
    │   │   └── MsalAssertionExpiredError
    │   └── MsalThrottledError
    └── MsalTokenValidationError   an incoming bearer token is refused (RFC 6750)
        ├── MsalMissingTokenError        401, no error code
        ├── MsalInvalidTokenError        401 invalid_token
        ├── MsalClaimsChallengeError     401 insufficient_claims (Entra CAE)
        ├── MsalInsufficientScopeError   403 insufficient_scope
        └── MsalSigningKeysUnavailableError  503: no signing keys could be fetched

No message of these exceptions ever contains a secret, an assertion or a token:
they carry only what the authority said about the failure and the identifiers
needed to trace it.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "MsalAssertionExpiredError",
    "MsalClaimsChallengeError",
    "MsalConfigurationError",
    "MsalError",
    "MsalInsufficientScopeError",
    "MsalInvalidTokenError",
    "MsalMissingTokenError",
    "MsalServiceError",
    "MsalSignInError",
    "MsalSigningKeysUnavailableError",
    "MsalThrottledError",
    "MsalTokenValidationError",
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


# --- incoming bearer tokens (RFC 6750 section 3) ----------------------------------------------

#: What RFC 6750 allows inside a quoted auth-param: printable ASCII without ``"`` and ``\``.
_CHALLENGE_CHARS = frozenset(chr(c) for c in range(0x20, 0x7F)) - {'"', "\\"}


def _quoted(value: str) -> str:
    return "".join(c if c in _CHALLENGE_CHARS else "?" for c in value)


class MsalTokenValidationError(MsalError):
    """Raised when an incoming bearer token is refused; carries the HTTP answer to send.

    ``status`` and :attr:`www_authenticate` follow RFC 6750 section 3. The
    description names what failed, never the token.
    """

    status = 401
    #: The RFC 6750 ``error`` code (None: the request carried no token).
    error: str | None = None

    def __init__(self, description: str, *, scope: str | None = None) -> None:
        self.description = description
        #: The scopes (space-separated) that would satisfy the request (403 only).
        self.scope = scope
        super().__init__(description)

    def challenge_params(self) -> list[tuple[str, str]]:
        """The auth-params of the ``Bearer`` challenge, in order."""
        params: list[tuple[str, str]] = []
        if self.error is not None:
            params.append(("error", self.error))
            params.append(("error_description", self.description))
        if self.scope:
            params.append(("scope", self.scope))
        return params

    @property
    def www_authenticate(self) -> str | None:
        """The ``WWW-Authenticate`` header value, or None for an answer that needs none."""
        params = self.challenge_params()
        if not params:
            return "Bearer"
        return "Bearer " + ", ".join(f'{name}="{_quoted(value)}"' for name, value in params)

    def headers(self) -> dict[str, str]:
        """The response headers of the HTTP answer."""
        value = self.www_authenticate
        return {} if value is None else {"WWW-Authenticate": value}


class MsalMissingTokenError(MsalTokenValidationError):
    """Raised when a request carries no bearer token: 401 with a bare ``Bearer`` challenge."""


class MsalInvalidTokenError(MsalTokenValidationError):
    """Raised when a bearer token is malformed, forged, expired or not meant for this API."""

    error = "invalid_token"


class MsalClaimsChallengeError(MsalTokenValidationError):
    """Raised to ask a CAE-capable client for a token with more claims (Entra's challenge).

    401 with ``authorization_uri``, ``error="insufficient_claims"`` and the
    base64 ``claims`` request the client passes to its next acquisition.
    """

    error = "insufficient_claims"

    def __init__(
        self, description: str, *, claims: str, authorization_uri: str, realm: str = ""
    ) -> None:
        #: The claims request, base64-encoded as it goes into the header.
        self.claims = claims
        self.authorization_uri = authorization_uri
        self.realm = realm
        super().__init__(description)

    def challenge_params(self) -> list[tuple[str, str]]:
        return [
            ("realm", self.realm),
            ("authorization_uri", self.authorization_uri),
            ("error", "insufficient_claims"),
            ("claims", self.claims),
        ]


class MsalInsufficientScopeError(MsalTokenValidationError):
    """Raised when a valid token lacks the scope or app role a handler requires: 403."""

    status = 403
    error = "insufficient_scope"


class MsalSigningKeysUnavailableError(MsalTokenValidationError):
    """Raised when no signing keys were ever obtained from the authority: 503, no challenge."""

    status = 503

    @property
    def www_authenticate(self) -> str | None:
        return None
