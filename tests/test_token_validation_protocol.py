"""The sans-I/O parts of token validation: JWKS parsing, challenges, access checks."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from aiomsal import (
    MsalConfigurationError,
    MsalInsufficientScopeError,
    MsalInvalidTokenError,
    ValidatedToken,
)
from aiomsal._protocol._token_validation import (
    ValidationPolicy,
    check_access,
    parse_jwks,
    read_header,
    verify_token,
)
from aiomsal.testing._fake_tokens import shared_signer

RSA = shared_signer().jwk()


def ec_jwk(curve: ec.EllipticCurve, crv: str, kid: str) -> tuple[Any, dict[str, Any]]:
    key = ec.generate_private_key(curve)
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    return key, {**jwk, "kid": kid, "crv": crv, "use": "sig"}


def test_only_asymmetric_signing_keys_with_a_kid_are_kept() -> None:
    _, p256 = ec_jwk(ec.SECP256R1(), "P-256", "ec")
    keys = parse_jwks(
        {
            "keys": [
                RSA,
                p256,
                {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
                {**RSA, "kid": "enc", "use": "enc"},
                {**RSA, "kid": ""},
                {**RSA, "kid": "rs-alg-none", "alg": "none"},
                {**RSA, "kid": "rs-alg-hs", "alg": "HS256"},
                {**RSA, "kid": "pinned", "alg": "PS256"},
                {"kty": "RSA", "kid": "broken", "n": "AQAB"},
                "not a key",
                {**RSA, "kid": RSA["kid"], "n": "x"},  # a duplicate kid: the first stays
            ]
        }
    )
    assert sorted(keys) == sorted([RSA["kid"], "ec", "pinned"])
    assert keys["ec"].algorithms == ("ES256",)
    assert keys["pinned"].algorithms == ("PS256",)
    assert "HS256" not in keys[RSA["kid"]].algorithms
    document: object
    for document in ({}, {"keys": "x"}, [], {"keys": [{"kty": "oct", "kid": "k", "k": "AA"}]}):
        with pytest.raises(ValueError):  # noqa: PT011 - turned into invalid_response
            parse_jwks(document)


def test_an_ec_token_is_verified_with_its_curves_algorithm_only() -> None:
    key, jwk = ec_jwk(ec.SECP256R1(), "P-256", "ec")
    keys = parse_jwks({"keys": [jwk]})
    claims = {
        "aud": "api",
        "iss": "https://issuer/",
        "iat": 100,
        "nbf": 100,
        "exp": 1000,
        "roles": ["r"],
    }
    policy = ValidationPolicy(issuers=("https://issuer/",), audiences=("api",), entra=False)
    token = jwt.encode(claims, key, algorithm="ES256", headers={"kid": "ec"})
    validated = verify_token(token, read_header(token), keys["ec"], policy, 500)
    assert validated.roles == {"r"} and validated.tenant_id is None
    head = base64.urlsafe_b64encode(b'{"alg":"ES384","kid":"ec"}').rstrip(b"=").decode()
    forged = f"{head}.{token.split('.', 1)[1]}"
    with pytest.raises(MsalInvalidTokenError, match="does not match"):
        verify_token(forged, read_header(forged), keys["ec"], policy, 500)


def token_with(scopes: str = "", roles: tuple[str, ...] = ()) -> ValidatedToken:
    return ValidatedToken(
        claims={},
        scopes=frozenset(scopes.split()),
        roles=frozenset(roles),
        tenant_id=None,
        object_id=None,
        subject=None,
        client_id=None,
        issuer="i",
        expires_on=0,
        access_token="secret-token",
    )


def test_access_needs_every_scope_or_every_role() -> None:
    user, daemon = token_with("a b"), token_with(roles=("r1", "r2"))
    check_access(user)
    check_access(user, scopes=["a", "b"])
    check_access(daemon, roles=["r1", "r2"])
    check_access(daemon, scopes=["a"], roles=["r1"])
    with pytest.raises(MsalConfigurationError):
        check_access(user, scopes="a")
    for token, scopes, roles in ((user, ["a", "c"], []), (daemon, [], ["r3"]), (user, [], ["a"])):
        with pytest.raises(MsalInsufficientScopeError) as caught:
            check_access(token, scopes=scopes, roles=roles)
        assert caught.value.status == 403


def test_challenge_values_are_sanitized() -> None:
    error = MsalInvalidTokenError('a "quoted" \\ description\nwith é')
    assert error.www_authenticate == (
        'Bearer error="invalid_token", error_description="a ?quoted? ? description?with ?"'
    )


def test_the_header_checks_need_no_key() -> None:
    good = shared_signer().sign({"a": 1})
    assert read_header(good).kid == shared_signer().kid
    head = base64.urlsafe_b64encode(b'["not", "an object"]').rstrip(b"=").decode()
    with pytest.raises(MsalInvalidTokenError, match="not a JSON object"):
        read_header(f"{head}.{good.split('.', 1)[1]}")
    with pytest.raises(MsalInvalidTokenError, match="empty"):
        read_header(None)


def test_entra_issuers_are_v2_and_v1_of_the_tenant_or_templates() -> None:
    from aiomsal._apps._token_validator import _entra_issuers
    from aiomsal._protocol._authority import parse_authority

    tid = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    single = parse_authority("https://login.microsoftonline.com/contoso.onmicrosoft.com")
    assert _entra_issuers(single, f"https://login.microsoftonline.com/{tid}/v2.0") == (
        f"https://login.microsoftonline.com/{tid}/v2.0",
        f"https://sts.windows.net/{tid}/",
    )
    multi = parse_authority("https://login.microsoftonline.com/organizations")
    template = "https://login.microsoftonline.com/{tenantid}/v2.0"
    assert _entra_issuers(multi, template) == (template, "https://sts.windows.net/{tenantid}/")
    china = parse_authority(f"https://login.chinacloudapi.cn/{tid}")
    assert _entra_issuers(china, f"https://login.chinacloudapi.cn/{tid}/v2.0")[1] == (
        f"https://sts.chinacloudapi.cn/{tid}/"
    )
