"""Who a token response is about: client_info, ID token claims, the account (sans-I/O)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._errors import MsalServiceError, MsalSignInError
from .._result import Account
from ._json import JsonRejected, decode_json
from ._pkce import nonce_claim

__all__ = [
    "ClientInfo",
    "account_from",
    "check_id_token",
    "decode_id_token",
    "home_account_id_for",
    "parse_client_info",
]


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """Entra's ``client_info``: the user's object id and home tenant id."""

    uid: str
    utid: str

    @property
    def home_account_id(self) -> str:
        return f"{self.uid}.{self.utid}"


def parse_client_info(raw: str) -> ClientInfo:
    """Decode a ``client_info`` value (base64url JSON, padding optional).

    Anything else raises ``MsalServiceError("invalid_response")``.
    """
    data = _decode_b64_json(raw) if isinstance(raw, str) else None
    uid = None if data is None else data.get("uid")
    utid = None if data is None else data.get("utid")
    if not isinstance(uid, str) or not uid or not isinstance(utid, str) or not utid:
        raise MsalServiceError(
            "invalid_response", "the client_info is not base64url JSON with a uid and a utid"
        )
    return ClientInfo(uid, utid)


def decode_id_token(raw: str) -> dict[str, Any]:
    """The claims of an ID token, without verifying its signature.

    An ID token received over TLS directly from the token endpoint, as every
    ID token aiomsal reads is, may be trusted without checking its signature
    (OpenID Connect Core 1.0 §3.1.3.7, item 6): TLS authenticated the issuer.
    A token that is not three segments with a bounded JSON object as payload,
    or whose ``exp``, ``iat``, ``nbf`` or ``auth_time`` is present but not a
    finite number, raises ``MsalServiceError("invalid_response")``.
    """
    parts = raw.split(".") if isinstance(raw, str) else []
    claims = _decode_b64_json(parts[1]) if len(parts) == 3 else None
    if claims is None:
        raise MsalServiceError("invalid_response", "the id_token is not a JWT with a JSON payload")
    for name in ("exp", "iat", "nbf", "auth_time"):
        if name in claims and _number(claims[name]) is None:
            raise MsalServiceError(
                "invalid_response", f"the id_token's {name} claim is not a finite number"
            )
    return claims


def check_id_token(
    claims: Mapping[str, Any],
    *,
    client_id: str,
    nonce: str | None,
    now: float,
    skew: float = 300,
    max_age: int | None = None,
) -> None:
    """Check that an ID token was issued to this client, is current, and answers this request.

    * ``aud`` (a string or a list) must contain ``client_id``;
    * ``exp`` must be later than ``now - skew``;
    * when ``nonce`` is given, the ``nonce`` claim must be
      :func:`~aiomsal._protocol._pkce.nonce_claim` of it (what an auth code flow sends,
      as MSAL's does) or the nonce itself (what an application that built its
      own authorization URL sent, as with MSAL's ``get_authorization_request_url``);
    * when ``max_age`` was requested, ``auth_time`` must be at most that old.

    Raises :class:`MsalSignInError` naming the failed check (never the token).
    """
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if client_id not in audiences:
        raise MsalSignInError("ID token check failed: its audience is not this client")
    expiry = _number(claims.get("exp"))
    if expiry is None:
        raise MsalSignInError("ID token check failed: it has no numeric exp claim")
    if expiry <= now - skew:
        raise MsalSignInError("ID token check failed: it has expired")
    if nonce is not None:
        found = claims.get("nonce")
        if not isinstance(found, str) or not (
            _same(found, nonce_claim(nonce)) | _same(found, nonce)
        ):
            raise MsalSignInError("ID token check failed: nonce mismatch")
    if max_age is not None:
        auth_time = _number(claims.get("auth_time"))
        if auth_time is None:
            raise MsalSignInError(
                "ID token check failed: max_age was requested but it has no auth_time"
            )
        if now - skew > auth_time + max_age:
            raise MsalSignInError("ID token check failed: the sign-in is older than max_age")


def home_account_id_for(
    client_info: ClientInfo | None,
    claims: Mapping[str, Any] | None,
    *,
    authority_kind: str,
) -> str:
    """The cache's id of the account a response is about.

    * With ``client_info`` (Entra, B2C, CIAM): ``"<uid>.<utid>"``.
    * ADFS, which sends no ``client_info``: the ``sub`` claim, as MSAL does.
    * Any other issuer without ``client_info``: ``"<sub>.<issuer digest>"``,
      where the digest is the first 16 characters of the unpadded base64url
      SHA-256 of the ``iss`` claim. The digest alphabet has no ``.``, so the
      id splits back unambiguously at its last dot, and the same ``sub`` from
      two issuers gives two ids.

    Raises ``MsalServiceError("invalid_response")`` when no id can be formed.
    """
    if client_info is not None:
        return client_info.home_account_id
    sub = _claim(claims, "sub")
    if authority_kind == "adfs":
        if sub is not None:
            return sub
    else:
        issuer = _claim(claims, "iss")
        if sub is not None and issuer is not None:
            digest = hashlib.sha256(issuer.encode("utf-8")).digest()
            return f"{sub}.{base64.urlsafe_b64encode(digest).decode('ascii')[:16]}"
    raise MsalServiceError(
        "invalid_response", "the response identifies no account (no client_info, sub or iss)"
    )


def account_from(
    home_account_id: str,
    environment: str,
    *,
    claims: Mapping[str, Any] | None,
    client_info: ClientInfo | None,
    authority_kind: str,
) -> Account:
    """The :class:`Account` a response is about.

    ``username`` is ``preferred_username`` (or ``upn``, or ``email``);
    ``local_account_id`` is ``oid`` (or ``sub``); ``realm`` is ``"adfs"`` for
    ADFS (as in MSAL's cache), else the ``tid`` claim, else the ``utid`` of
    ``client_info``, else ``""``.
    """
    username = _claim(claims, "preferred_username", "upn", "email")
    local_id = _claim(claims, "oid", "sub")
    if authority_kind == "adfs":
        realm = "adfs"
    else:
        realm = _claim(claims, "tid") or (client_info.utid if client_info else "")
    return Account(
        home_account_id=home_account_id,
        environment=environment,
        realm=realm,
        username=username,
        local_account_id=local_id,
        authority_type="ADFS" if authority_kind == "adfs" else "MSSTS",
    )


def _claim(claims: Mapping[str, Any] | None, *names: str) -> str | None:
    """The first of ``names`` that is a non-empty string claim."""
    if claims is None:
        return None
    for name in names:
        value = claims.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _number(value: object) -> float | None:
    """A finite number claim as a float (JSON integers are bounded by the decoder)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def _same(found: str, expected: str) -> bool:
    """Compare in constant time (``hmac.compare_digest`` wants bytes for non-ASCII text)."""
    return hmac.compare_digest(found.encode("utf-8"), expected.encode("utf-8"))


def _decode_b64_json(segment: str) -> dict[str, Any] | None:
    """Decode unpadded or padded base64url JSON into an object, or return None."""
    if not segment.isascii():
        return None
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = decode_json(raw)
    except (binascii.Error, JsonRejected):
        return None
    return value if isinstance(value, dict) else None
