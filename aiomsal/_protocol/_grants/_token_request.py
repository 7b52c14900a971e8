"""The parts every token request shares."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .._http import HttpRequest

__all__ = ["build_token_request"]

#: Grants spent once redeemed (a refresh token may rotate): never resent blindly.
SINGLE_USE_GRANTS = frozenset({"authorization_code", "refresh_token"})


def build_token_request(
    token_endpoint: str,
    *,
    grant_type: str,
    client_id: str,
    scopes: Iterable[str],
    client_auth: Mapping[str, str],
    claims: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> HttpRequest:
    """A form POST to the token endpoint; a throttled answer to it is remembered."""
    form = {"grant_type": grant_type, "client_id": client_id, "scope": " ".join(scopes)}
    if claims:
        form["claims"] = claims
    if extra:
        form.update(extra)
    form.update(client_auth)
    return HttpRequest(
        "POST",
        token_endpoint,
        form=form,
        throttle=True,
        resendable=grant_type not in SINGLE_USE_GRANTS,
    )
