"""What the web framework integrations hand a protected handler: the validated caller."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from .._apps._confidential import ConfidentialClientApplication
from .._errors import MsalConfigurationError, MsalTokenValidationError
from .._protocol._token_validation import ValidatedToken
from .._result import AuthenticationResult

__all__ = ["Caller", "error_body", "error_code"]


@dataclass(frozen=True, slots=True)
class Caller:
    """The caller of a protected request: its validated token, and on-behalf-of for it.

    Its repr never shows a token.
    """

    token: ValidatedToken
    application: ConfidentialClientApplication | None = field(default=None, repr=False)

    async def acquire_token_on_behalf_of(
        self,
        scopes: Iterable[str],
        *,
        claims_challenge: str | None = None,
        force_refresh: bool = False,
    ) -> AuthenticationResult:
        """A downstream token for this caller, through the application's cache.

        A multi-tenant application asks the caller's own tenant.
        """
        app = self.application
        if app is None:
            raise MsalConfigurationError(
                "on-behalf-of needs the ConfidentialClientApplication of this API:"
                " pass application= to the integration"
            )
        tenant = self.token.tenant_id if app.authority.is_multi_tenant else None
        return await app.acquire_token_on_behalf_of(
            self.token.access_token,
            scopes,
            claims_challenge=claims_challenge,
            force_refresh=force_refresh,
            tenant=tenant,
        )


def error_code(error: MsalTokenValidationError) -> str:
    """The ``error`` of a refusal's body (RFC 6750's code, or one for the other answers)."""
    return error.error or ("temporarily_unavailable" if error.status == 503 else "unauthorized")


def error_body(error: MsalTokenValidationError) -> str:
    """The JSON body of a refusal: the error code and the description."""
    return json.dumps({"error": error_code(error), "error_description": error.description})
