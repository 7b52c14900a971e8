"""The user grants of the fake token endpoint, and its device authorization endpoint.

Importing this module registers the authorization code, refresh token,
device code, password (ROPC) and on-behalf-of grants in
:data:`~aiomsal.testing._fake_grants.GRANT_HANDLERS`.

Errors of the refresh token grant, as the fake answers them (all 400 ``invalid_grant``):
an unknown token AADSTS9002313, a revoked one AADSTS50173, one issued to another
client or already redeemed (each redemption rotates it) AADSTS70000, an expired one
AADSTS70008.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import jwt

from ._fake_grants import (
    RegisteredClient,
    TokenRequest,
    authenticate_client,
    grant_handler,
)
from ._fake_tokens import GrantError, b64url
from ._fake_user_tokens import issue_user_tokens, parse_user_scopes
from ._fake_users import AuthorizationCode, FakeUser, UserDirectory, tenant_guid

__all__ = [
    "DEVICE_CODE_GRANT",
    "JWT_BEARER_GRANT",
    "device_authorization",
    "interaction_error",
    "pkce_matches",
    "signed_in_tenant",
]

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"

_INTERACTION_MESSAGES = {
    50076: "Due to a configuration change made by your administrator, or because you moved "
    "to a new location, you must use multi-factor authentication to access '{resource}'.",
    65001: "The user or administrator has not consented to use the application with ID "
    "'{client_id}'. Send an interactive authorization request for this user and resource.",
    50058: "A silent sign-in request was sent but no user is signed in.",
    50173: "The provided grant has expired due to it being revoked, a fresh auth token is "
    "needed. The user might have changed or reset their password.",
}


def _invalid_grant(code: int, message: str) -> GrantError:
    return GrantError(400, "invalid_grant", code, message)


def _missing(name: str) -> GrantError:
    return GrantError(
        400,
        "invalid_request",
        900144,
        f"The request body must contain the following parameter: '{name}'.",
    )


def _directory(request: TokenRequest) -> UserDirectory:
    if request.directory is None:
        raise GrantError(400, "unsupported_grant_type", 70003, "User grants are not enabled.")
    return request.directory


def signed_in_tenant(user: FakeUser, tenant: str, client_id: str) -> str:
    """The ``tid`` of ``user`` signing in through ``tenant``; AADSTS50020 if not a member."""
    tid = user.tenant_for(tenant)
    if tid is None:
        raise _invalid_grant(
            50020,
            f"User account '{user.username}' from identity provider "
            f"'{user.home_tenant}' does not exist in tenant '{tenant}' and cannot access "
            f"the application '{client_id}' in that tenant.",
        )
    return tid


def interaction_error(
    directory: UserDirectory, user: FakeUser, client_id: str, resource: str
) -> GrantError | None:
    """The error a silent grant for ``user`` must answer with, if a test asked for one."""
    interaction = directory.interaction_for(user)
    if interaction is None:
        return None
    template = _INTERACTION_MESSAGES.get(interaction.code, "User interaction is required.")
    extra = {}
    if interaction.suberror is not None:
        extra["suberror"] = interaction.suberror
    if interaction.claims is not None:
        extra["claims"] = interaction.claims
    message = template.format(resource=resource, client_id=client_id)
    return GrantError(400, interaction.error, interaction.code, message, extra=extra)


def _check_interaction(
    directory: UserDirectory, user: FakeUser, client_id: str, resource: str
) -> None:
    error = interaction_error(directory, user, client_id, resource)
    if error is not None:
        raise error


def pkce_matches(code: AuthorizationCode, verifier: str | None) -> bool:
    """Whether ``verifier`` satisfies the PKCE challenge ``code`` is bound to (if any)."""
    if code.code_challenge is None:
        return True
    if not verifier:
        return False
    if code.code_challenge_method == "S256":
        expected = b64url(hashlib.sha256(verifier.encode()).digest())
    else:
        expected = verifier
    return hmac.compare_digest(expected.encode(), code.code_challenge.encode())


# --- authorization code ----------------------------------------------------------------


@grant_handler("authorization_code")
async def authorization_code(request: TokenRequest) -> dict[str, Any]:
    """Redeem a code from ``/authorize`` (once, within its lifetime, with its PKCE verifier)."""
    directory = _directory(request)
    client = authenticate_client(request, confidential=False)
    client_id = client.client.client_id
    code = directory.codes.get(request.require("code"))
    redirect_uri = request.require("redirect_uri")
    if code is None or request.now >= code.expires_at:
        raise _invalid_grant(
            70008,
            "The provided authorization code or refresh token has expired due to inactivity. "
            "Send a new interactive authorization request for this user and resource.",
        )
    if code.redeemed:
        raise _invalid_grant(
            54005,
            "OAuth2 Authorization code was already redeemed, please retry with a new valid "
            "code or use an existing refresh token.",
        )
    if code.client_id != client_id:
        raise _invalid_grant(
            70000, "The provided grant is invalid: the code was issued to another application."
        )
    if tenant_guid(request.tenant) != tenant_guid(code.tenant):
        raise _invalid_grant(
            700005,
            "Provided Authorization Code is intended to use against other tenant, thus rejected.",
        )
    if redirect_uri != code.redirect_uri:
        raise _invalid_grant(
            500112,
            "The reply address does not match the reply address provided when requesting "
            "the authorization code.",
        )
    if not pkce_matches(code, request.form.get("code_verifier")):
        raise _invalid_grant(501481, "The Code_Verifier does not match the code_challenge.")
    scopes = parse_user_scopes(request.form.get("scope") or code.scope)
    user = directory.require(code.username)
    code.redeemed = True
    return issue_user_tokens(request, client, user, code.tenant_id, scopes, nonce=code.nonce)


# --- refresh token -----------------------------------------------------------------------


@grant_handler("refresh_token")
async def refresh_token(request: TokenRequest) -> dict[str, Any]:
    """Redeem a refresh token for any resource; the answer carries a new one (rotation)."""
    directory = _directory(request)
    client = authenticate_client(request, confidential=False)
    client_id = client.client.client_id
    grant = directory.refresh_tokens.get(request.require("refresh_token"))
    scopes = parse_user_scopes(request.require("scope"))
    if grant is None:
        raise _invalid_grant(
            9002313, "Invalid request. Request is malformed or invalid: unknown refresh token."
        )
    if directory.is_revoked(grant):
        raise _invalid_grant(50173, _INTERACTION_MESSAGES[50173])
    if grant.client_id != client_id:
        raise _invalid_grant(
            70000,
            "The provided grant is invalid: the refresh token was issued to another application.",
        )
    if grant.redeemed:
        raise _invalid_grant(
            70000,
            "The provided grant is invalid: the refresh token was already redeemed. Use the "
            "refresh token returned with it.",
        )
    if request.now >= grant.expires_at:
        raise _invalid_grant(
            70008,
            "The provided authorization code or refresh token has expired due to inactivity. "
            "Send a new interactive authorization request for this user and resource.",
        )
    user = directory.require(grant.username)
    tenant_id = signed_in_tenant(user, request.tenant, client_id)
    _check_interaction(directory, user, client_id, scopes.resource)
    grant.redeemed = True
    return issue_user_tokens(request, client, user, tenant_id, scopes, refresh_token=True)


# --- resource owner password credentials --------------------------------------------------


@grant_handler("password")
async def password(request: TokenRequest) -> dict[str, Any]:
    """The username/password grant (ROPC)."""
    directory = _directory(request)
    client = authenticate_client(request, confidential=False)
    client_id = client.client.client_id
    username = request.require("username")
    secret = request.require("password")
    scopes = parse_user_scopes(request.require("scope"))
    user = directory.find(username)
    if user is None:
        raise _invalid_grant(
            50034,
            f"The user account {username} does not exist in the directory. To sign into "
            "this application, the account must be added to the directory.",
        )
    if not directory.password_matches(username, secret):
        raise _invalid_grant(
            50126, "Error validating credentials due to invalid username or password."
        )
    tenant_id = signed_in_tenant(user, request.tenant, client_id)
    _check_interaction(directory, user, client_id, scopes.resource)
    return issue_user_tokens(request, client, user, tenant_id, scopes)


# --- device code -------------------------------------------------------------------------


def device_authorization(
    form: Mapping[str, str],
    tenant: str,
    clients: Mapping[str, RegisteredClient],
    directory: UserDirectory,
    base_url: str,
    now: float,
) -> dict[str, Any]:
    """Answer ``POST /{tenant}/oauth2/v2.0/devicecode``: start a device authorization."""
    client_id = form.get("client_id")
    if not client_id:
        raise _missing("client_id")
    if client_id not in clients:
        raise GrantError(
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory '{tenant}'.",
        )
    scope = form.get("scope")
    if not scope:
        raise _missing("scope")
    parse_user_scopes(scope)
    authorization = directory.device_codes.create(client_id, tenant, scope, now)
    return authorization.response_body(base_url, now)


@grant_handler(DEVICE_CODE_GRANT)
async def device_code(request: TokenRequest) -> dict[str, Any]:
    """Poll for the tokens of a device code (RFC 8628 errors until the user approves)."""
    directory = _directory(request)
    client = authenticate_client(request, confidential=False)
    client_id = client.client.client_id
    authorization = directory.device_codes.poll(
        request.require("device_code"), client_id, request.now
    )
    assert authorization.username is not None
    user = directory.require(authorization.username)
    tenant_id = signed_in_tenant(user, authorization.tenant, client_id)
    scopes = parse_user_scopes(authorization.scope)
    return issue_user_tokens(request, client, user, tenant_id, scopes)


# --- on-behalf-of ------------------------------------------------------------------------


def _invalid_assertion(message: str) -> GrantError:
    return _invalid_grant(50013, f"Assertion failed signature validation. {message}")


def _verify_user_assertion(request: TokenRequest, client_id: str) -> dict[str, Any]:
    """Check that ``assertion`` is a live user access token this fake issued to ``client_id``."""
    assertion = request.require("assertion")
    claims: dict[str, Any] | None = None
    for signer in request.published_signers or (request.signer,):
        try:
            claims = signer.verify(assertion)
            break
        except jwt.PyJWTError:
            continue
    if claims is None:
        raise _invalid_assertion("The assertion is not a token this authority issued.")
    issuer = claims.get("iss")
    bases = (request.base_url, *request.alias_base_urls)
    if not isinstance(issuer, str) or not any(issuer.startswith(f"{b}/") for b in bases):
        raise _invalid_assertion("The assertion was issued by another authority.")
    if not isinstance(claims.get("oid"), str) or not isinstance(claims.get("scp"), str):
        raise _invalid_assertion("The assertion is not a delegated (user) access token.")
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or request.now >= exp:
        raise _invalid_grant(
            500133,
            "Assertion is not within its valid time range. Ensure that the access token is "
            "not expired before using it for user assertion, or request a new token.",
        )
    if claims.get("aud") not in (f"api://{client_id}", client_id):
        raise _invalid_grant(
            50013, "Assertion audience does not match the Client app presenting the assertion."
        )
    return claims


@grant_handler(JWT_BEARER_GRANT)
async def on_behalf_of(request: TokenRequest) -> dict[str, Any]:
    """The on-behalf-of grant: a middle tier trades a user token for one to a downstream API."""
    directory = _directory(request)
    client_id = request.require("client_id")
    registered = request.clients.get(client_id)
    if registered is not None and not registered.confidential:
        raise GrantError(
            400,
            "invalid_client",
            7000218,
            f"The on-behalf-of flow needs a confidential client: app '{client_id}' has no "
            "credential, and the request body must contain 'client_assertion' or "
            "'client_secret'.",
        )
    client = authenticate_client(request, confidential=True)
    if request.require("requested_token_use") != "on_behalf_of":
        raise GrantError(
            400,
            "invalid_request",
            9002313,
            "Invalid request: 'requested_token_use' must be 'on_behalf_of'.",
        )
    scopes = parse_user_scopes(request.require("scope"))
    claims = _verify_user_assertion(request, client_id)
    user = directory.by_oid(claims["oid"])
    tenant_id = claims.get("tid")
    if user is None or not isinstance(tenant_id, str):
        raise _invalid_assertion("The assertion names no known user.")
    tenant_id = signed_in_tenant(user, tenant_id, client_id)
    _check_interaction(directory, user, client_id, scopes.resource)
    return issue_user_tokens(request, client, user, tenant_id, scopes)
