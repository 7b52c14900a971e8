"""FastAPI integration: a ``Security()`` dependency validating bearer tokens, in the OpenAPI docs.

::

    from aiomsal.integrations.fastapi import Caller, TokenBearer, token_error_handler

    bearer = TokenBearer(validator, application=confidential_app,
                         scopes={"api://orders/Orders.Read": "Read orders"})
    app = FastAPI(exception_handlers={MsalTokenValidationError: token_error_handler})

    @app.get("/orders")
    async def orders(caller: Caller = Security(bearer, scopes=["Orders.Read"])) -> dict:
        graph = await caller.acquire_token_on_behalf_of(["User.Read"])
        ...

The required values of ``Security(..., scopes=[...])`` (``SecurityScopes``,
gathered along the dependency chain) must all be granted as delegated scopes
(``scp``) or all as app roles (``roles``), so one route serves users and
daemons. The scheme is an OAuth2 authorization-code scheme in the OpenAPI
document (Swagger's Authorize button), with the route's scopes in its security
requirement. Refusals: ``401`` with ``WWW-Authenticate: Bearer`` (plus
``error="invalid_token"`` for a bad token), ``403`` ``insufficient_scope``.
Install with ``pip install 'aiomsal[fastapi]'``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from fastapi import HTTPException, Request
from fastapi.security import OAuth2AuthorizationCodeBearer, SecurityScopes

from .._apps._confidential import ConfidentialClientApplication
from .._apps._token_validator import TokenValidator
from .._errors import MsalMissingTokenError, MsalTokenValidationError
from ._caller import Caller, error_code
from ._token_source import using_token
from .starlette import token_error_handler

__all__ = ["Caller", "TokenBearer", "http_exception", "token_error_handler"]


def http_exception(error: MsalTokenValidationError) -> HTTPException:
    """The :class:`HTTPException` answering a refused token (status, challenge, error code)."""
    return HTTPException(
        status_code=error.status,
        detail={"error": error_code(error), "error_description": error.description},
        headers=error.headers() or None,
    )


class TokenBearer(OAuth2AuthorizationCodeBearer):
    """A security scheme whose dependency validates the bearer token and yields the :class:`Caller`.

    ``scopes`` (scope -> description) are listed in the OpenAPI document;
    ``authorization_url``/``token_url`` default to the validator's authority.
    With ``auto_error=False`` a request without a token gets ``None``.
    While the route runs, the caller's token is
    :func:`~aiomsal.integrations.aiohttp.current_token`.
    """

    def __init__(
        self,
        validator: TokenValidator,
        *,
        application: ConfidentialClientApplication | None = None,
        scopes: Mapping[str, str] | None = None,
        authorization_url: str | None = None,
        token_url: str | None = None,
        scheme_name: str | None = "aiomsal",
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        base = validator.authority.url
        super().__init__(
            authorizationUrl=authorization_url or f"{base}/oauth2/v2.0/authorize",
            tokenUrl=token_url or f"{base}/oauth2/v2.0/token",
            scopes=dict(scopes or {}),
            scheme_name=scheme_name,
            description=description,
            auto_error=auto_error,
        )
        self.validator = validator
        self.application = application

    async def __call__(  # type: ignore[override]
        self, request: Request, security_scopes: SecurityScopes
    ) -> AsyncIterator[Caller | None]:
        wanted = security_scopes.scopes
        try:
            token = await self.validator.validate_authorization(
                request.headers.get("authorization"), scopes=wanted, roles=wanted
            )
        except MsalMissingTokenError as exc:
            if not self.auto_error:
                yield None
                return
            raise http_exception(exc) from None
        except MsalTokenValidationError as exc:
            raise http_exception(exc) from None
        with using_token(token):
            yield Caller(token, self.application)
