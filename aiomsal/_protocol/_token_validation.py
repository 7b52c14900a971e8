"""Checking an incoming bearer token (sans-I/O): signature, issuer, tenant, audience, times.

:func:`read_header` reads the unverified JOSE header and refuses what can
never be valid (five-part JWE, ``none``, HMAC, a non-canonical signature);
:func:`verify_token` checks the signature with the one key the ``kid``
names, using only that key type's algorithms, then the claims against a
:class:`ValidationPolicy` at ``now``. ``jku``, ``x5u``, ``x5c`` and ``jwk``
headers are never read: keys come only from the authority's JWKS
(:func:`parse_jwks`). Every refusal is a typed
:class:`~aiomsal._errors.MsalTokenValidationError` whose message never
contains the token.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

# PyJWT is imported by the two functions that use it, on first use: `import aiomsal` (and
# every application that validates no token) does not pay for it and for cryptography.
from .._errors import (
    MsalClaimsChallengeError,
    MsalConfigurationError,
    MsalInsufficientScopeError,
    MsalInvalidTokenError,
    MsalMissingTokenError,
)

__all__ = [
    "MAX_TOKEN_LENGTH",
    "TENANT_PLACEHOLDER",
    "JwtHeader",
    "SigningKey",
    "ValidatedToken",
    "ValidationPolicy",
    "bearer_token",
    "check_access",
    "claims_challenge",
    "parse_jwks",
    "read_header",
    "verify_token",
]

#: Longest token accepted, in characters (Entra tokens with many groups stay well below).
MAX_TOKEN_LENGTH = 32_768
#: The placeholder of a multi-tenant issuer template.
TENANT_PLACEHOLDER = "{tenantid}"

#: The asymmetric algorithms of each key type; HMAC and ``none`` are never accepted.
_RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_EC_ALGORITHMS = {"P-256": ("ES256",), "P-384": ("ES384",), "P-521": ("ES512",)}
_OKP_ALGORITHMS = {"Ed25519": ("EdDSA",), "Ed448": ("EdDSA",)}
_ASYMMETRIC = frozenset((*_RSA_ALGORITHMS, "ES256", "ES384", "ES512", "EdDSA"))
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: PyJWT checks presence and signature; times, issuer and tenant are checked here, on ``now``.
_DECODE_OPTIONS: Any = {
    "verify_signature": True,
    "verify_aud": True,
    "verify_iss": False,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "require": ["exp", "nbf", "iat", "iss", "aud"],
}


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A public key from a JWKS and the algorithms it may verify."""

    kid: str
    key: Any = field(repr=False)
    algorithms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class JwtHeader:
    """What is read from a token before its signature is checked."""

    kid: str
    alg: str


@dataclass(frozen=True, slots=True)
class ValidationPolicy:
    """What an API accepts.

    ``issuers`` are exact strings, or templates with ``{tenantid}`` that the
    token's own ``tid`` fills in (multi-tenant Entra apps). With
    ``entra=True`` a token must carry one ``tid`` that its issuer names.
    ``allowed_tenants`` (lower-case), when set, lists the only tenants accepted.
    """

    issuers: tuple[str, ...]
    audiences: tuple[str, ...]
    allowed_tenants: frozenset[str] | None = None
    clock_skew: float = 300.0
    entra: bool = True

    def __post_init__(self) -> None:
        if not self.issuers or not all(isinstance(i, str) and i for i in self.issuers):
            raise MsalConfigurationError("at least one issuer is needed")
        if not self.audiences or not all(isinstance(a, str) and a for a in self.audiences):
            raise MsalConfigurationError("at least one audience is needed")
        if not 0 <= self.clock_skew <= 3600:
            raise MsalConfigurationError("clock_skew must be between 0 and 3600 seconds")


@dataclass(frozen=True, slots=True)
class ValidatedToken:
    """An incoming access token that passed every check. Its repr never shows the token."""

    #: The verified claims (read-only).
    claims: Mapping[str, Any] = field(repr=False)
    #: The delegated permissions (``scp``), empty for an application token.
    scopes: frozenset[str]
    #: The app roles or application permissions (``roles``).
    roles: frozenset[str]
    #: ``tid``: the tenant of the caller (None outside Entra).
    tenant_id: str | None
    #: ``oid``: the caller's object id in its tenant.
    object_id: str | None
    #: ``sub``.
    subject: str | None
    #: The calling application: ``azp`` (v2) or ``appid`` (v1).
    client_id: str | None
    issuer: str
    #: ``exp``, in epoch seconds.
    expires_on: int
    #: The token itself, for on-behalf-of exchanges.
    access_token: str = field(repr=False)
    #: The ``kid`` of the key that signed it.
    key_id: str = field(repr=False, default="")

    @property
    def is_app_only(self) -> bool:
        """Whether the token was issued to an application acting as itself (no ``scp``)."""
        return not self.scopes

    @property
    def client_capabilities(self) -> tuple[str, ...]:
        """The ``xms_cc`` capabilities of the calling client (``("cp1",)``: CAE-capable)."""
        value = self.claims.get("xms_cc")
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list):
            return tuple(v for v in value if isinstance(v, str))
        return ()


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer`` header.

    No header, or another scheme: :class:`MsalMissingTokenError` (a 401 without
    an error code, RFC 6750 section 3.1); ``Bearer`` with nothing after it:
    :class:`MsalInvalidTokenError`.
    """
    if not authorization:
        raise MsalMissingTokenError("the request carries no bearer token")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise MsalMissingTokenError("the request carries no bearer token")
    token = token.strip()
    if not token:
        raise MsalInvalidTokenError("the bearer token is empty")
    return token


def parse_jwks(document: object) -> dict[str, SigningKey]:
    """The usable signing keys of a JWKS document, by ``kid``.

    Symmetric (``oct``) and encryption keys, keys without a ``kid``, keys that
    do not load and keys whose ``alg`` is not an asymmetric signature
    algorithm of their type are left out. Raises ``ValueError`` when the
    document is not a JWKS or holds no usable key.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("the JWKS document has no 'keys' list")
    keys: dict[str, SigningKey] = {}
    for jwk in document["keys"]:
        signing_key = _signing_key(jwk)
        if signing_key is not None and signing_key.kid not in keys:
            keys[signing_key.kid] = signing_key
    if not keys:
        raise ValueError("the JWKS document holds no usable signing key")
    return keys


def _signing_key(jwk: object) -> SigningKey | None:
    if not isinstance(jwk, dict):
        return None
    kid, kty, use, alg = jwk.get("kid"), jwk.get("kty"), jwk.get("use"), jwk.get("alg")
    if not isinstance(kid, str) or not kid or use not in (None, "sig"):
        return None
    if kty == "RSA":
        algorithms: tuple[str, ...] = _RSA_ALGORITHMS
    elif kty == "EC":
        algorithms = _EC_ALGORITHMS.get(str(jwk.get("crv")), ())
    elif kty == "OKP":
        algorithms = _OKP_ALGORITHMS.get(str(jwk.get("crv")), ())
    else:
        return None
    if alg is not None:
        algorithms = (alg,) if alg in algorithms else ()
    if not algorithms:
        return None
    import jwt

    try:
        loaded = jwt.PyJWK(jwk, algorithms[0])
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        return None
    return SigningKey(kid, loaded.key, algorithms)


def read_header(token: object) -> JwtHeader:
    """The ``kid`` and ``alg`` of a compact JWS, after the checks that need no key."""
    if not isinstance(token, str) or not token:
        raise MsalInvalidTokenError("the bearer token is empty")
    if len(token) > MAX_TOKEN_LENGTH:
        raise MsalInvalidTokenError("the bearer token is too long")
    parts = token.split(".")
    if len(parts) != 3:
        raise MsalInvalidTokenError(
            "the bearer token is an encrypted token (JWE), which is not accepted"
            if len(parts) == 5
            else "the bearer token is not a JWT"
        )
    for part in parts:
        if not part or not _B64URL.fullmatch(part) or len(part) % 4 == 1:
            raise MsalInvalidTokenError("the bearer token is not base64url-encoded")
    if _canonical_b64url(parts[2]) != parts[2]:
        raise MsalInvalidTokenError("the signature of the bearer token is not canonically encoded")
    try:
        header = json.loads(_b64decode(parts[0]))
    except (ValueError, binascii.Error, RecursionError):
        raise MsalInvalidTokenError("the header of the bearer token is not JSON") from None
    if not isinstance(header, dict):
        raise MsalInvalidTokenError("the header of the bearer token is not a JSON object")
    alg, kid = header.get("alg"), header.get("kid")
    if not isinstance(alg, str) or alg not in _ASYMMETRIC:
        raise MsalInvalidTokenError("the bearer token is not signed with an accepted algorithm")
    if not isinstance(kid, str) or not kid:
        raise MsalInvalidTokenError("the bearer token names no signing key (kid)")
    return JwtHeader(kid=kid, alg=alg)


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _canonical_b64url(part: str) -> str:
    try:
        raw = _b64decode(part)
    except (ValueError, binascii.Error):
        return ""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def verify_token(
    token: str, header: JwtHeader, key: SigningKey, policy: ValidationPolicy, now: float
) -> ValidatedToken:
    """Check the signature with ``key``, then the claims; return the accepted token."""
    if header.alg not in key.algorithms:
        raise MsalInvalidTokenError(
            "the bearer token's algorithm does not match its signing key's type"
        )
    import jwt

    try:
        claims = jwt.decode(
            token,
            key.key,
            algorithms=[header.alg],
            audience=list(policy.audiences),
            options=_DECODE_OPTIONS,
        )
    except jwt.InvalidAudienceError:
        raise MsalInvalidTokenError("the bearer token is meant for another audience") from None
    except jwt.MissingRequiredClaimError as exc:
        raise MsalInvalidTokenError(f"the bearer token lacks the {exc.claim!r} claim") from None
    except jwt.InvalidSignatureError:
        raise MsalInvalidTokenError("the signature of the bearer token is not valid") from None
    except (jwt.PyJWTError, ValueError, TypeError, RecursionError):
        raise MsalInvalidTokenError("the bearer token could not be decoded") from None
    _check_times(claims, policy.clock_skew, now)
    issuer, tenant_id = _check_issuer(claims, policy)
    scopes, roles = _permissions(claims)
    return ValidatedToken(
        claims=MappingProxyType(claims),
        scopes=scopes,
        roles=roles,
        tenant_id=tenant_id,
        object_id=_text(claims.get("oid")),
        subject=_text(claims.get("sub")),
        client_id=_text(claims.get("azp")) or _text(claims.get("appid")),
        issuer=issuer,
        expires_on=int(claims["exp"]),
        access_token=token,
        key_id=header.kid,
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _number(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise MsalInvalidTokenError(f"the {name!r} claim of the bearer token is not a number")
    return float(value)


def _check_times(claims: Mapping[str, Any], skew: float, now: float) -> None:
    exp, nbf, iat = _number(claims, "exp"), _number(claims, "nbf"), _number(claims, "iat")
    if exp <= now - skew:
        raise MsalInvalidTokenError("the bearer token expired")
    if nbf > now + skew:
        raise MsalInvalidTokenError("the bearer token is not valid yet (nbf)")
    if iat > now + skew:
        raise MsalInvalidTokenError("the bearer token was issued in the future (iat)")


def _check_issuer(claims: Mapping[str, Any], policy: ValidationPolicy) -> tuple[str, str | None]:
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise MsalInvalidTokenError("the bearer token has no issuer")
    tid = claims.get("tid")
    if policy.entra:
        if not isinstance(tid, str) or not _GUID.fullmatch(tid.lower()):
            raise MsalInvalidTokenError("the bearer token has no tenant id (tid)")
        # JSON objects with repeated names keep the last; a second spelling is refused.
        if any(name.lower() == "tid" and name != "tid" for name in claims):
            raise MsalInvalidTokenError("the bearer token carries more than one tenant id")
    tenant_id = tid if isinstance(tid, str) else None
    for accepted in policy.issuers:
        if TENANT_PLACEHOLDER in accepted:
            if tenant_id is not None and issuer == accepted.replace(TENANT_PLACEHOLDER, tenant_id):
                break
        elif issuer == accepted:
            if policy.entra and tenant_id is not None and tenant_id not in issuer:
                raise MsalInvalidTokenError("the tenant id of the bearer token is not its issuer's")
            break
    else:
        raise MsalInvalidTokenError("the bearer token comes from an issuer this API does not trust")
    if policy.allowed_tenants is not None and (
        tenant_id is None or tenant_id.lower() not in policy.allowed_tenants
    ):
        raise MsalInvalidTokenError("the tenant of the bearer token is not allowed")
    return issuer, tenant_id


def _permissions(claims: Mapping[str, Any]) -> tuple[frozenset[str], frozenset[str]]:
    """``scp`` and ``roles``; a token with neither is not an access token for an API."""
    scp, roles = claims.get("scp"), claims.get("roles")
    scopes = frozenset(scp.split()) if isinstance(scp, str) else frozenset()
    granted: frozenset[str] = frozenset()
    if isinstance(roles, list):
        granted = frozenset(r for r in roles if isinstance(r, str))
    if not scopes and not granted:
        raise MsalInvalidTokenError(
            "the bearer token carries neither scopes nor roles: it is not an access token"
            " for this API (an ID token?)"
        )
    return scopes, granted


def check_access(
    token: ValidatedToken, *, scopes: Iterable[str] = (), roles: Iterable[str] = ()
) -> None:
    """Refuse (403) a token without the required permissions.

    Every scope of ``scopes`` must be granted (``scp``, a user's delegated
    permissions), or every role of ``roles`` (``roles``, app roles or an
    application's permissions); with both, either set suffices, so one route
    serves users and daemons. With neither, any valid token passes.
    """
    if isinstance(scopes, str) or isinstance(roles, str):
        raise MsalConfigurationError("scopes and roles are lists, such as ['Orders.Read']")
    wanted_scopes, wanted_roles = tuple(scopes), tuple(roles)
    if not wanted_scopes and not wanted_roles:
        return
    if wanted_scopes and token.scopes.issuperset(wanted_scopes):
        return
    if wanted_roles and token.roles.issuperset(wanted_roles):
        return
    needed = " ".join(dict.fromkeys((*wanted_scopes, *wanted_roles)))
    what = "scope" if not wanted_roles else "role" if not wanted_scopes else "scope or role"
    raise MsalInsufficientScopeError(f"the bearer token lacks a required {what}", scope=needed)


def claims_challenge(
    token: ValidatedToken, claims: str | Mapping[str, Any], *, authorization_uri: str
) -> MsalClaimsChallengeError | MsalInvalidTokenError:
    """The answer that asks the caller for a token satisfying ``claims`` (Entra CAE).

    A client whose token carries ``xms_cc`` with ``cp1`` gets a 401 with
    ``error="insufficient_claims"`` and the base64 claims request; another
    client cannot handle one and gets a plain ``invalid_token`` 401.
    """
    text = claims if isinstance(claims, str) else json.dumps(claims, separators=(",", ":"))
    try:
        json.loads(text)
    except ValueError:
        raise MsalConfigurationError("claims must be a JSON object") from None
    if "cp1" not in (c.lower() for c in token.client_capabilities):
        return MsalInvalidTokenError("the bearer token does not satisfy the claims required")
    encoded = base64.b64encode(text.encode("utf-8")).decode("ascii")
    return MsalClaimsChallengeError(
        "the bearer token does not satisfy the claims required",
        claims=encoded,
        authorization_uri=authorization_uri,
    )
