"""The client credentials grant (RFC 6749 section 4.4): an application's own token."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .._http import HttpRequest
from ._token_request import build_token_request

__all__ = ["build_client_credentials_request"]


def build_client_credentials_request(
    token_endpoint: str,
    *,
    client_id: str,
    scopes: Iterable[str],
    client_auth: Mapping[str, str],
    claims: str | None = None,
) -> HttpRequest:
    return build_token_request(
        token_endpoint,
        grant_type="client_credentials",
        client_id=client_id,
        scopes=scopes,
        client_auth=client_auth,
        claims=claims,
    )
