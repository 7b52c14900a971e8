"""Checks of the options applications take from MSAL: scopes to leave out, assertion
claims, the application's name and version headers."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .._errors import MsalConfigurationError

__all__ = ["app_headers", "check_client_claims", "check_exclude_scopes"]

#: Claims of a client assertion that aiomsal sets and no option may replace.
ASSERTION_CLAIMS = frozenset({"aud", "iss", "sub", "exp", "nbf", "iat", "jti"})


def check_exclude_scopes(exclude_scopes: Sequence[str] | None) -> frozenset[str]:
    """MSAL's ``exclude_scopes``: reserved scopes to leave out (never ``openid``)."""
    if not exclude_scopes:
        return frozenset()
    if not isinstance(exclude_scopes, (list, tuple)) or not all(
        isinstance(s, str) and s for s in exclude_scopes
    ):
        raise MsalConfigurationError("exclude_scopes must be a list of strings")
    if "openid" in exclude_scopes:
        raise MsalConfigurationError('exclude_scopes cannot opt out of the "openid" scope')
    return frozenset(exclude_scopes)


def check_client_claims(client_claims: Mapping[str, Any] | None) -> str:
    """MSAL's ``client_claims`` as canonical JSON ("" for none), checked once.

    The claims go into every client assertion signed with a certificate;
    they may not replace the assertion's own claims (audience, issuer,
    lifetime, id).
    """
    if not client_claims:
        return ""
    if not isinstance(client_claims, Mapping) or not all(isinstance(k, str) for k in client_claims):
        raise MsalConfigurationError("client_claims must be a dict of claim names to values")
    clash = ASSERTION_CLAIMS & set(client_claims)
    if clash:
        raise MsalConfigurationError(
            f"client_claims cannot replace the assertion's {', '.join(sorted(clash))}"
        )
    try:
        return json.dumps(dict(client_claims), sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise MsalConfigurationError(f"client_claims must be JSON-serializable ({exc})") from None


def app_headers(app_name: str | None, app_version: str | None) -> dict[str, str]:
    """MSAL's ``x-app-name`` and ``x-app-ver`` headers, sent with every request."""
    headers: dict[str, str] = {}
    for header, value in (("x-app-name", app_name), ("x-app-ver", app_version)):
        if value is None or value == "":
            continue
        if not isinstance(value, str) or not value.isprintable() or not value.isascii():
            raise MsalConfigurationError(f"{header} must be printable ASCII text")
        headers[header] = value
    return headers
