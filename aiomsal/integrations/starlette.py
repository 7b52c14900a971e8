"""Starlette integration: an AuthenticationBackend validating bearer tokens, with RFC 6750 errors.

::

    from aiomsal.integrations.starlette import TokenAuthenticationMiddleware, require

    async def orders(request: Request) -> Response:
        caller = require(request, scopes=["Orders.Read"])        # 401 / 403 otherwise
        graph = await caller.acquire_token_on_behalf_of(["User.Read"])
        ...

    app = Starlette(
        routes=[Route("/orders", orders)],
        middleware=[Middleware(TokenAuthenticationMiddleware, validator=validator,
                               application=confidential_app)],
        exception_handlers={MsalTokenValidationError: token_error_handler},
    )

Starlette's own ``on_error`` answers a plain ``400``; :func:`on_error` answers
``401`` with ``WWW-Authenticate: Bearer error="invalid_token"`` (``403``
``insufficient_scope``, ``503`` without keys). ``request.user`` is a
:class:`TokenUser` and ``request.auth.scopes`` holds the token's scopes and
roles, so Starlette's ``@requires`` works too (it answers 403 without a
challenge; :func:`require` adds it). Install with ``pip install 'aiomsal[starlette]'``.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    BaseUser,
)
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from .._apps._confidential import ConfidentialClientApplication
from .._apps._token_validator import TokenValidator
from .._errors import MsalMissingTokenError, MsalTokenValidationError
from .._protocol._token_validation import ValidatedToken, check_access
from ._caller import Caller, error_body
from ._token_source import using_token

__all__ = [
    "BearerTokenBackend",
    "Caller",
    "TokenAuthenticationError",
    "TokenAuthenticationMiddleware",
    "TokenUser",
    "on_error",
    "require",
    "token_error_handler",
]


class TokenAuthenticationError(AuthenticationError):
    """Raised by :class:`BearerTokenBackend` for a refused token; wraps the aiomsal error."""

    def __init__(self, error: MsalTokenValidationError) -> None:
        self.error = error
        super().__init__(error.description)


class TokenUser(BaseUser):
    """The authenticated caller: ``request.user``."""

    def __init__(self, caller: Caller) -> None:
        self.caller = caller

    @property
    def token(self) -> ValidatedToken:
        return self.caller.token

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        name = self.token.claims.get("preferred_username") or self.token.claims.get("name")
        return name if isinstance(name, str) else self.identity

    @property
    def identity(self) -> str:
        return self.token.object_id or self.token.subject or ""

    def __repr__(self) -> str:
        return f"TokenUser({self.token!r})"


class BearerTokenBackend(AuthenticationBackend):
    """Validates the ``Authorization: Bearer`` token of each connection.

    No token: anonymous (``None``), or refused with ``require_token=True``.
    """

    def __init__(
        self,
        validator: TokenValidator,
        *,
        application: ConfidentialClientApplication | None = None,
        require_token: bool = False,
    ) -> None:
        self.validator = validator
        self.application = application
        self.require_token = require_token

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        try:
            token = await self.validator.validate_authorization(conn.headers.get("authorization"))
        except MsalMissingTokenError as exc:
            if self.require_token:
                raise TokenAuthenticationError(exc) from None
            return None
        except MsalTokenValidationError as exc:
            raise TokenAuthenticationError(exc) from None
        credentials = AuthCredentials(sorted(token.scopes | token.roles))
        return credentials, TokenUser(Caller(token, self.application))


def _response(error: MsalTokenValidationError) -> Response:
    return Response(
        error_body(error),
        status_code=error.status,
        headers=error.headers(),
        media_type="application/json",
    )


def on_error(conn: HTTPConnection, exc: AuthenticationError) -> Response:
    """The ``on_error`` of :class:`AuthenticationMiddleware`: the RFC 6750 answer."""
    if isinstance(exc, TokenAuthenticationError):
        return _response(exc.error)
    return _response(MsalMissingTokenError("authentication failed"))


async def token_error_handler(request: Request, exc: Exception) -> Response:
    """An exception handler for :class:`~aiomsal.MsalTokenValidationError` raised by endpoints."""
    if isinstance(exc, MsalTokenValidationError):
        return _response(exc)
    raise exc


def require(
    request: HTTPConnection, *, scopes: Iterable[str] = (), roles: Iterable[str] = ()
) -> Caller:
    """The caller of ``request``, who must have every one of ``scopes`` (or of ``roles``).

    Raises :class:`~aiomsal.MsalMissingTokenError` (401) for an anonymous
    request and :class:`~aiomsal.MsalInsufficientScopeError` (403); register
    :func:`token_error_handler` to turn them into answers.
    """
    user = request.scope.get("user")
    if not isinstance(user, TokenUser):
        raise MsalMissingTokenError("the request carries no bearer token")
    check_access(user.token, scopes=scopes, roles=roles)
    return user.caller


class _CurrentToken:
    """Makes the caller's token the current one while the app answers (for on-behalf-of)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        user = scope.get("user")
        if isinstance(user, TokenUser):
            with using_token(user.token):
                await self.app(scope, receive, send)
        else:
            await self.app(scope, receive, send)


class TokenAuthenticationMiddleware(AuthenticationMiddleware):
    """:class:`AuthenticationMiddleware` with :class:`BearerTokenBackend` and :func:`on_error`."""

    def __init__(
        self,
        app: ASGIApp,
        validator: TokenValidator,
        *,
        application: ConfidentialClientApplication | None = None,
        require_token: bool = False,
    ) -> None:
        backend = BearerTokenBackend(
            validator, application=application, require_token=require_token
        )
        super().__init__(_CurrentToken(app), backend=backend, on_error=on_error)
