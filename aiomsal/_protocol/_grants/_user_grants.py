"""Grants that obtain a user's tokens: authorization code, refresh token, password, on-behalf-of.

Each asks for ``client_info`` so the answer names the user's home account.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .._http import HttpRequest
from ._token_request import build_token_request

__all__ = [
    "JWT_BEARER",
    "build_auth_code_request",
    "build_obo_request",
    "build_password_request",
    "build_refresh_token_request",
]

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_CLIENT_INFO = {"client_info": "1"}


def build_auth_code_request(
    token_endpoint: str,
    *,
    client_id: str,
    code: str,
    redirect_uri: str,
    scopes: Iterable[str],
    client_auth: Mapping[str, str],
    code_verifier: str | None = None,
    claims: str | None = None,
) -> HttpRequest:
    extra = {"code": code, "redirect_uri": redirect_uri, **_CLIENT_INFO}
    if code_verifier:
        extra["code_verifier"] = code_verifier
    return build_token_request(
        token_endpoint,
        grant_type="authorization_code",
        client_id=client_id,
        scopes=scopes,
        client_auth=client_auth,
        claims=claims,
        extra=extra,
    )


def build_refresh_token_request(
    token_endpoint: str,
    *,
    client_id: str,
    refresh_token: str,
    scopes: Iterable[str],
    client_auth: Mapping[str, str],
    claims: str | None = None,
) -> HttpRequest:
    return build_token_request(
        token_endpoint,
        grant_type="refresh_token",
        client_id=client_id,
        scopes=scopes,
        client_auth=client_auth,
        claims=claims,
        extra={"refresh_token": refresh_token, **_CLIENT_INFO},
    )


def build_password_request(
    token_endpoint: str,
    *,
    client_id: str,
    username: str,
    password: str,
    scopes: Iterable[str],
    client_auth: Mapping[str, str],
    claims: str | None = None,
) -> HttpRequest:
    return build_token_request(
        token_endpoint,
        grant_type="password",
        client_id=client_id,
        scopes=scopes,
        client_auth=client_auth,
        claims=claims,
        extra={"username": username, "password": password, **_CLIENT_INFO},
    )


def build_obo_request(
    token_endpoint: str,
    *,
    client_id: str,
    user_assertion: str,
    scopes: Iterable[str],
    client_auth: Mapping[str, str],
    claims: str | None = None,
) -> HttpRequest:
    """The on-behalf-of grant (jwt-bearer with ``requested_token_use=on_behalf_of``)."""
    return build_token_request(
        token_endpoint,
        grant_type=JWT_BEARER,
        client_id=client_id,
        scopes=scopes,
        client_auth=client_auth,
        claims=claims,
        extra={
            "assertion": user_assertion,
            "requested_token_use": "on_behalf_of",
            **_CLIENT_INFO,
        },
    )
