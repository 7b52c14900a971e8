"""aiohttp.web integration: a middleware that validates bearer tokens, per-handler requirements.

::

    from aiomsal.integrations.aiohttp_web import CALLER, requires, setup

    @requires(scopes=["Orders.Read"])
    async def orders(request: web.Request) -> web.Response:
        caller = request[CALLER]
        graph = await caller.acquire_token_on_behalf_of(["User.Read"])
        ...

    app = web.Application()
    setup(app, validator, application=confidential_app)   # adds the middleware

Refusals are RFC 6750 answers: ``401`` with ``WWW-Authenticate: Bearer``
(``error="invalid_token"`` for a bad token), ``403`` ``insufficient_scope``,
``503`` when no signing keys could be fetched. While a handler runs, its
caller's token is :func:`~aiomsal.integrations.aiohttp.current_token`, so the
aiohttp client middleware's ``on_behalf_of(app)`` source acts for that caller.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

from .._apps._confidential import ConfidentialClientApplication
from .._apps._token_validator import TokenValidator
from .._errors import MsalConfigurationError, MsalMissingTokenError, MsalTokenValidationError
from .._protocol._token_validation import check_access
from ._caller import Caller, error_body
from ._token_source import using_token

__all__ = [
    "APPLICATION",
    "CALLER",
    "VALIDATOR",
    "Caller",
    "middleware",
    "refusal",
    "requires",
    "setup",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: The validator of the application (set by :func:`setup`).
VALIDATOR: web.AppKey[TokenValidator] = web.AppKey("aiomsal_validator", TokenValidator)
#: The confidential client used for on-behalf-of (set by :func:`setup`, optional).
APPLICATION: web.AppKey[ConfidentialClientApplication] = web.AppKey(
    "aiomsal_application", ConfidentialClientApplication
)
#: The validated caller of a request that carried a valid token.
CALLER: web.RequestKey[Caller] = web.RequestKey("aiomsal_caller", Caller)


def setup(
    app: web.Application,
    validator: TokenValidator,
    *,
    application: ConfidentialClientApplication | None = None,
    require_token: bool = True,
) -> None:
    """Store ``validator`` (and ``application``) on ``app`` and add :func:`middleware`."""
    app[VALIDATOR] = validator
    if application is not None:
        app[APPLICATION] = application
    app.middlewares.append(middleware(require_token=require_token))


def middleware(*, require_token: bool = True) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Validate the bearer token of every request.

    With ``require_token=False`` a request without a token goes on as
    anonymous (no :data:`CALLER`); :func:`requires` still refuses it. A token
    that is present must be valid. Refusals raised by handlers
    (:class:`~aiomsal.MsalTokenValidationError`, a claims challenge among
    them) become their HTTP answers too.
    """

    @web.middleware
    async def validate_bearer_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        validator = request.config_dict[VALIDATOR]
        try:
            token = await validator.validate_authorization(request.headers.get("Authorization"))
        except MsalMissingTokenError as exc:
            if require_token:
                return refusal(exc)
            return await _answer(request, handler)
        except MsalTokenValidationError as exc:
            return refusal(exc)
        request[CALLER] = Caller(token, request.config_dict.get(APPLICATION))
        with using_token(token):
            return await _answer(request, handler)

    return validate_bearer_token


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except MsalTokenValidationError as exc:
        return refusal(exc)


def refusal(error: MsalTokenValidationError) -> web.Response:
    """The HTTP answer to a refused token."""
    return web.Response(
        status=error.status,
        text=error_body(error),
        content_type="application/json",
        headers=error.headers(),
    )


def requires(
    *, scopes: Iterable[str] = (), roles: Iterable[str] = ()
) -> Callable[[Handler], Handler]:
    """Make a handler require a caller with every one of ``scopes`` (or every one of ``roles``).

    No caller: 401; a caller without them: 403 ``insufficient_scope``.
    """
    if isinstance(scopes, str) or isinstance(roles, str):
        raise MsalConfigurationError("scopes and roles are lists, such as ['Orders.Read']")
    wanted_scopes, wanted_roles = tuple(scopes), tuple(roles)

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def protected(request: web.Request) -> web.StreamResponse:
            caller = request.get(CALLER)
            if caller is None:
                return refusal(MsalMissingTokenError("the request carries no bearer token"))
            try:
                check_access(caller.token, scopes=wanted_scopes, roles=wanted_roles)
            except MsalTokenValidationError as exc:
                return refusal(exc)
            return await handler(request)

        return protected

    return decorate
