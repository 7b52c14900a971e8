from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from aiomsal._errors import MsalServiceError, MsalSignInError
from aiomsal._protocol._identity import (
    ClientInfo,
    account_from,
    check_id_token,
    decode_id_token,
    home_account_id_for,
    parse_client_info,
)
from aiomsal._protocol._pkce import nonce_claim

NOW = 1_700_000_000.0
CLIENT_ID = "11111111-2222-3333-4444-555555555555"


def b64(data: bytes, *, pad: bool = False) -> str:
    encoded = base64.urlsafe_b64encode(data).decode("ascii")
    return encoded if pad else encoded.rstrip("=")


def jwt(claims: Any) -> str:
    header = b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    return f"{header}.{b64(json.dumps(claims).encode())}.c2lnbmF0dXJl"


def valid_claims(**extra: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "aud": CLIENT_ID,
        "iss": "https://login.microsoftonline.com/tid/v2.0",
        "exp": NOW + 3600,
        "sub": "subject",
    }
    claims.update(extra)
    return claims


# -- client_info ------------------------------------------------------------------------


@pytest.mark.parametrize("pad", [False, True])
def test_parse_client_info(pad: bool) -> None:
    raw = b64(json.dumps({"uid": "u-1", "utid": "t-1"}).encode(), pad=pad)
    info = parse_client_info(raw)
    assert info == ClientInfo("u-1", "t-1")
    assert info.home_account_id == "u-1.t-1"


@pytest.mark.parametrize(
    "raw",
    [
        "!!!not base64!!!",
        b64(b"not json"),
        b64(b"\xff\xfe"),
        b64(json.dumps(["uid", "utid"]).encode()),
        b64(json.dumps({"uid": "u"}).encode()),
        b64(json.dumps({"uid": 1, "utid": "t"}).encode()),
        b64(json.dumps({"uid": "", "utid": "t"}).encode()),
        "é",
    ],
)
def test_parse_client_info_malformed(raw: str) -> None:
    with pytest.raises(MsalServiceError) as caught:
        parse_client_info(raw)
    assert caught.value.error == "invalid_response"


# -- decode_id_token --------------------------------------------------------------------


def test_decode_id_token_returns_payload() -> None:
    claims = valid_claims(name="Ada")
    assert decode_id_token(jwt(claims)) == claims


@pytest.mark.parametrize(
    "raw",
    [
        "onlyonepart",
        "two.parts",
        "a.b.c.d.e",
        f"h.{b64(b'not json')}.s",
        f"h.{b64(json.dumps([1]).encode())}.s",
        "h.!!!.s",
    ],
)
def test_decode_id_token_malformed(raw: str) -> None:
    with pytest.raises(MsalServiceError) as caught:
        decode_id_token(raw)
    assert caught.value.error == "invalid_response"


# -- check_id_token ---------------------------------------------------------------------


def test_check_id_token_accepts_valid_token() -> None:
    check_id_token(valid_claims(), client_id=CLIENT_ID, nonce=None, now=NOW)
    check_id_token(valid_claims(aud=["other", CLIENT_ID]), client_id=CLIENT_ID, nonce=None, now=NOW)


@pytest.mark.parametrize("aud", ["other-client", ["a", "b"], None, 42])
def test_check_id_token_rejects_other_audience(aud: Any) -> None:
    with pytest.raises(MsalSignInError, match="audience"):
        check_id_token(valid_claims(aud=aud), client_id=CLIENT_ID, nonce=None, now=NOW)


def test_check_id_token_rejects_expired_token() -> None:
    claims = valid_claims(exp=NOW - 301)
    with pytest.raises(MsalSignInError, match="expired"):
        check_id_token(claims, client_id=CLIENT_ID, nonce=None, now=NOW)


def test_check_id_token_allows_clock_skew() -> None:
    claims = valid_claims(exp=NOW - 299)
    check_id_token(claims, client_id=CLIENT_ID, nonce=None, now=NOW)
    with pytest.raises(MsalSignInError, match="expired"):
        check_id_token(claims, client_id=CLIENT_ID, nonce=None, now=NOW, skew=0)


@pytest.mark.parametrize("exp", [None, "123", True])
def test_check_id_token_requires_numeric_exp(exp: Any) -> None:
    claims = valid_claims(exp=exp)
    with pytest.raises(MsalSignInError, match="exp"):
        check_id_token(claims, client_id=CLIENT_ID, nonce=None, now=NOW)


def test_check_id_token_accepts_hashed_nonce_as_sent_by_a_flow() -> None:
    claims = valid_claims(nonce=nonce_claim("secret-nonce"))
    check_id_token(claims, client_id=CLIENT_ID, nonce="secret-nonce", now=NOW)


def test_check_id_token_accepts_verbatim_nonce() -> None:
    claims = valid_claims(nonce="app-nonce")
    check_id_token(claims, client_id=CLIENT_ID, nonce="app-nonce", now=NOW)


@pytest.mark.parametrize("found", ["other", nonce_claim("other"), None, 7, "é"])
def test_check_id_token_rejects_nonce_mismatch(found: Any) -> None:
    claims = valid_claims(nonce=found)
    with pytest.raises(MsalSignInError, match="nonce mismatch") as caught:
        check_id_token(claims, client_id=CLIENT_ID, nonce="secret-nonce", now=NOW)
    assert "secret-nonce" not in str(caught.value)
    assert nonce_claim("secret-nonce") not in str(caught.value)


def test_check_id_token_ignores_nonce_claim_when_none_expected() -> None:
    check_id_token(valid_claims(nonce="whatever"), client_id=CLIENT_ID, nonce=None, now=NOW)


def test_check_id_token_max_age() -> None:
    fresh = valid_claims(auth_time=NOW - 60)
    check_id_token(fresh, client_id=CLIENT_ID, nonce=None, now=NOW, max_age=120)
    stale = valid_claims(auth_time=NOW - 1000)
    with pytest.raises(MsalSignInError, match="max_age"):
        check_id_token(stale, client_id=CLIENT_ID, nonce=None, now=NOW, max_age=120)
    with pytest.raises(MsalSignInError, match="auth_time"):
        check_id_token(valid_claims(), client_id=CLIENT_ID, nonce=None, now=NOW, max_age=120)


# -- home_account_id_for ----------------------------------------------------------------


def test_home_account_id_from_client_info() -> None:
    info = ClientInfo("uid", "utid")
    assert home_account_id_for(info, valid_claims(), authority_kind="aad") == "uid.utid"
    assert home_account_id_for(info, None, authority_kind="adfs") == "uid.utid"


def test_home_account_id_for_adfs_is_sub() -> None:
    assert home_account_id_for(None, {"sub": "adfs-sub"}, authority_kind="adfs") == "adfs-sub"


def test_home_account_id_for_generic_oidc_is_scoped_by_issuer() -> None:
    first = home_account_id_for(
        None, {"sub": "s.1", "iss": "https://a.example"}, authority_kind="oidc"
    )
    second = home_account_id_for(
        None, {"sub": "s.1", "iss": "https://b.example"}, authority_kind="oidc"
    )
    assert first != second
    sub, digest = first.rsplit(".", 1)
    assert sub == "s.1"
    assert len(digest) == 16
    assert first == home_account_id_for(
        None, {"sub": "s.1", "iss": "https://a.example"}, authority_kind="oidc"
    )


@pytest.mark.parametrize(
    ("claims", "kind"),
    [
        (None, "aad"),
        (None, "adfs"),
        ({"iss": "https://a.example"}, "oidc"),
        ({"sub": "s"}, "oidc"),
        ({"oid": "o"}, "adfs"),
    ],
)
def test_home_account_id_missing(claims: dict[str, Any] | None, kind: str) -> None:
    with pytest.raises(MsalServiceError) as caught:
        home_account_id_for(None, claims, authority_kind=kind)
    assert caught.value.error == "invalid_response"


# -- account_from -----------------------------------------------------------------------


def test_account_from_entra_claims() -> None:
    claims = {"preferred_username": "ada@contoso.com", "oid": "oid-1", "sub": "s", "tid": "tid-1"}
    account = account_from(
        "uid.utid",
        "login.microsoftonline.com",
        claims=claims,
        client_info=ClientInfo("uid", "utid"),
        authority_kind="aad",
    )
    assert account.home_account_id == "uid.utid"
    assert account.environment == "login.microsoftonline.com"
    assert account.username == "ada@contoso.com"
    assert account.local_account_id == "oid-1"
    assert account.realm == "tid-1"
    assert account.authority_type == "MSSTS"


def test_account_from_fallbacks() -> None:
    upn = account_from(
        "h",
        "env",
        claims={"upn": "u@x", "email": "e@x", "sub": "sub-1"},
        client_info=ClientInfo("uid", "utid"),
        authority_kind="aad",
    )
    assert (upn.username, upn.local_account_id, upn.realm) == ("u@x", "sub-1", "utid")
    email = account_from(
        "h", "env", claims={"email": "e@x"}, client_info=None, authority_kind="oidc"
    )
    assert (email.username, email.local_account_id, email.realm) == ("e@x", None, "")
    bare = account_from("h", "env", claims=None, client_info=None, authority_kind="b2c")
    assert (bare.username, bare.local_account_id, bare.realm) == (None, None, "")


def test_account_from_adfs() -> None:
    account = account_from(
        "sub-1",
        "adfs.contoso.com",
        claims={"upn": "u@contoso", "sub": "sub-1"},
        client_info=None,
        authority_kind="adfs",
    )
    assert account.realm == "adfs"
    assert account.authority_type == "ADFS"
    assert account.username == "u@contoso"
    assert account.local_account_id == "sub-1"
