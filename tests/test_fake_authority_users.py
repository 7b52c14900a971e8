"""Tests of the user flows of the fake Entra ID, driven by a plain aiohttp client."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import string
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import anyio
import jwt
import pytest

from aiomsal.testing import FakeAuthority, FakeUser, VirtualClock

START = 1_800_000_000
TENANT = "contoso"
GUEST = "fabrikam.onmicrosoft.com"
GRAPH = "https://graph.microsoft.com"
USER_READ = f"{GRAPH}/User.Read"
OIDC = "openid profile offline_access"
NATIVE = "native-app"
WEB = "web-app"
WEB_REDIRECT = "https://app.example/auth/callback"
MIDDLE = "middle-tier"
LOOPBACK = "http://localhost:8400/"
ALICE = "alice@contoso.com"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(start=START)


@pytest.fixture
async def authority(clock: VirtualClock) -> AsyncIterator[FakeAuthority]:
    async with FakeAuthority(clock=clock) as fake:
        fake.add_client(NATIVE, redirect_uris=["http://localhost", "http://127.0.0.1/cb"])
        fake.add_client(WEB, "web-secret", redirect_uris=[WEB_REDIRECT])
        fake.add_client(MIDDLE, "mid-secret")
        fake.add_user(ALICE, "alice-pw", guest_tenants=[GUEST])
        yield fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def token_url(fake: FakeAuthority, tenant: str = TENANT) -> str:
    return f"{fake.authority(tenant)}/oauth2/v2.0/token"


def claims_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def post(
    session: aiohttp.ClientSession, url: str, form: Mapping[str, str]
) -> tuple[int, dict[str, Any]]:
    async with session.post(url, data=dict(form)) as response:
        return response.status, await response.json()


async def authorize(
    session: aiohttp.ClientSession, fake: FakeAuthority, tenant: str = TENANT, **params: str
) -> tuple[int, dict[str, str], str]:
    """GET /authorize without following the redirect: (status, redirect params, body)."""
    query = {
        "client_id": NATIVE,
        "response_type": "code",
        "redirect_uri": LOOPBACK,
        "scope": f"{USER_READ} {OIDC}",
        "state": "st-1",
        **params,
    }
    url = f"{fake.authority(tenant)}/oauth2/v2.0/authorize"
    async with session.get(url, params=query, allow_redirects=False) as response:
        text = await response.text()
        location = response.headers.get("Location", "")
        return response.status, dict(parse_qsl(urlsplit(location).query)), text


def password_form(
    scope: str = f"{USER_READ} {OIDC}", client_id: str = NATIVE, **extra: str
) -> dict[str, str]:
    return {
        "grant_type": "password",
        "client_id": client_id,
        "username": ALICE,
        "password": "alice-pw",
        "scope": scope,
        **extra,
    }


def assert_error(status: int, body: dict[str, Any], error: str, code: int, want: int = 400) -> None:
    assert (status, body["error"], body["error_codes"]) == (want, error, [code]), body
    assert body["error_description"].startswith(f"AADSTS{code}: ")


# --- authorization code ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_authorization_code_flow(
    authority: FakeAuthority, session: aiohttp.ClientSession
) -> None:
    alice = authority.user(ALICE)
    assert isinstance(alice, FakeUser)
    assert (alice.home_tenant, alice.tenant_id) == (TENANT, authority.tenant_id(TENANT))
    verifier, challenge = pkce_pair()
    status, redirect, _ = await authorize(
        session,
        authority,
        nonce="n-0S6",
        code_challenge=challenge,
        code_challenge_method="S256",
        client_info="1",
        login_hint=ALICE.upper(),
    )
    assert status == 302
    assert redirect["state"] == "st-1"
    form = {
        "grant_type": "authorization_code",
        "client_id": NATIVE,
        "code": redirect["code"],
        "redirect_uri": LOOPBACK,
        "code_verifier": verifier,
        "scope": f"{USER_READ} {OIDC}",
        "client_info": "1",
    }
    status, body = await post(session, token_url(authority), form)
    assert status == 200, body
    assert body["token_type"] == "Bearer"
    assert body["scope"] == f"{USER_READ} {OIDC}"
    assert body["expires_in"] == body["ext_expires_in"] == 3600
    assert body["refresh_token"]
    for info in (redirect["client_info"], body["client_info"]):
        padded = info + "=" * (-len(info) % 4)
        decoded = json.loads(base64.urlsafe_b64decode(padded))
        assert decoded == {"uid": alice.oid, "utid": alice.tenant_id}

    jwks_url = f"{authority.authority(TENANT)}/discovery/v2.0/keys"
    async with session.get(jwks_url) as response:
        (jwk,) = (await response.json())["keys"]
    issuer = f"{authority.base_url}/{alice.tenant_id}/v2.0"
    access = jwt.decode(
        body["access_token"],
        jwt.PyJWK(jwk).key,
        algorithms=["RS256"],
        audience=GRAPH,
        issuer=issuer,
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    assert access["scp"] == "User.Read"
    assert (access["oid"], access["tid"]) == (alice.oid, alice.tenant_id)
    assert access["preferred_username"] == ALICE
    assert access["name"] == "Alice"
    assert access["azp"] == NATIVE
    assert access["azpacr"] == "0"
    assert access["ver"] == "2.0"
    assert (access["iat"], access["nbf"], access["exp"]) == (START, START, START + 3600)
    identity = claims_of(body["id_token"])
    assert identity["aud"] == NATIVE
    assert identity["iss"] == issuer
    assert identity["nonce"] == "n-0S6"
    assert (identity["oid"], identity["tid"]) == (alice.oid, alice.tenant_id)
    assert identity["sub"] == access["sub"]
    assert identity["exp"] - identity["iat"] == 3600
    assert [r.grant_type for r in authority.token_requests] == ["authorization_code"]


@pytest.mark.anyio
async def test_code_without_client_info_or_offline_access(
    authority: FakeAuthority, session: aiohttp.ClientSession
) -> None:
    _, redirect, _ = await authorize(session, authority, scope="User.Read openid")
    assert "client_info" not in redirect
    form = {
        "grant_type": "authorization_code",
        "client_id": NATIVE,
        "code": redirect["code"],
        "redirect_uri": LOOPBACK,
    }
    status, body = await post(session, token_url(authority), form)
    assert status == 200, body
    assert body["scope"] == "User.Read openid"
    assert "refresh_token" not in body
    assert "client_info" not in body
    assert "nonce" not in claims_of(body["id_token"])
    assert claims_of(body["access_token"])["aud"] == GRAPH


@pytest.mark.anyio
async def test_confidential_client_code_flow(
    authority: FakeAuthority, session: aiohttp.ClientSession
) -> None:
    _, redirect, _ = await authorize(session, authority, client_id=WEB, redirect_uri=WEB_REDIRECT)
    form = {
        "grant_type": "authorization_code",
        "client_id": WEB,
        "code": redirect["code"],
        "redirect_uri": WEB_REDIRECT,
        "scope": f"{USER_READ} {OIDC}",
    }
    status, body = await post(session, token_url(authority), form)
    assert_error(status, body, "invalid_client", 7000218, want=401)
    status, body = await post(session, token_url(authority), {**form, "client_secret": "nope"})
    assert_error(status, body, "invalid_client", 7000215, want=401)
    status, body = await post(
        session, token_url(authority), {**form, "client_secret": "web-secret"}
    )
    assert status == 200, body
    assert claims_of(body["access_token"])["azpacr"] == "1"


@pytest.mark.anyio
async def test_pkce_mismatch(authority: FakeAuthority, session: aiohttp.ClientSession) -> None:
    verifier, challenge = pkce_pair()
    _, redirect, _ = await authorize(
        session, authority, code_challenge=challenge, code_challenge_method="S256"
    )
    form = {
        "grant_type": "authorization_code",
        "client_id": NATIVE,
        "code": redirect["code"],
        "redirect_uri": LOOPBACK,
        "scope": USER_READ,
    }
    for wrong in ({}, {"code_verifier": verifier + "x"}, {"code_verifier": challenge}):
        status, body = await post(session, token_url(authority), {**form, **wrong})
        assert_error(status, body, "invalid_grant", 501481)
    status, body = await post(session, token_url(authority), {**form, "code_verifier": verifier})
    assert status == 200, body


@pytest.mark.anyio
async def test_code_reuse_expiry_and_binding(
    authority: FakeAuthority, session: aiohttp.ClientSession, clock: VirtualClock
) -> None:
    url = token_url(authority)

    async def fresh_form() -> dict[str, str]:
        _, redirect, _ = await authorize(session, authority)
        return {
            "grant_type": "authorization_code",
            "client_id": NATIVE,
            "code": redirect["code"],
            "redirect_uri": LOOPBACK,
            "scope": USER_READ,
        }

    form = await fresh_form()
    assert (await post(session, url, form))[0] == 200
    assert_error(*await post(session, url, form), "invalid_grant", 54005)
    assert_error(*await post(session, url, {**form, "code": "bogus"}), "invalid_grant", 70008)

    form = await fresh_form()
    status, body = await post(session, url, {**form, "redirect_uri": "http://localhost:9/"})
    assert_error(status, body, "invalid_grant", 500112)
    status, body = await post(session, token_url(authority, GUEST), form)
    assert_error(status, body, "invalid_grant", 700005)
    status, body = await post(
        session, url, {**form, "client_id": WEB, "client_secret": "web-secret"}
    )
    assert_error(status, body, "invalid_grant", 70000)

    await clock.advance(600)
    assert_error(*await post(session, url, form), "invalid_grant", 70008)


# --- /authorize ------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("client_id", "redirect_uri", "ok"),
    [
        (NATIVE, "http://localhost", True),
        (NATIVE, "http://localhost:51234/", True),
        (NATIVE, "http://127.0.0.1:8400/any/path", True),
        (NATIVE, "http://[::1]:8400/", True),
        (NATIVE, "https://localhost:8400/", False),
        (NATIVE, "http://evil.example:8400/", False),
        (WEB, WEB_REDIRECT, True),
        (WEB, WEB_REDIRECT + "/", False),
        (WEB, "http://localhost:8400/", False),
        ("ghost-app", LOOPBACK, False),
    ],
)
async def test_redirect_uri_rules(
    authority: FakeAuthority,
    session: aiohttp.ClientSession,
    client_id: str,
    redirect_uri: str,
    ok: bool,
) -> None:
    status, redirect, text = await authorize(
        session, authority, client_id=client_id, redirect_uri=redirect_uri
    )
    if ok:
        assert status == 302
        assert "code" in redirect
    else:
        assert status == 400
        assert redirect == {}
        assert ("AADSTS700016" if client_id == "ghost-app" else "AADSTS50011") in text


@pytest.mark.anyio
async def test_loopback_path_must_match_registered_path(
    authority: FakeAuthority, session: aiohttp.ClientSession
) -> None:
    authority.add_client("cli", redirect_uris=["http://127.0.0.1/cb"])
    status, _, _ = await authorize(
        session, authority, client_id="cli", redirect_uri="http://localhost:7000/cb"
    )
    assert status == 302
    status, _, text = await authorize(
        session, authority, client_id="cli", redirect_uri="http://localhost:7000/other"
    )
    assert status == 400
    assert "AADSTS50011" in text


@pytest.mark.anyio
async def test_authorize_errors_redirect(
    authority: FakeAuthority, session: aiohttp.ClientSession
) -> None:
    cases: list[tuple[dict[str, str], str, int]] = [
        ({"scope": f"{USER_READ} api://backend/read"}, "invalid_scope", 70011),
        ({"response_type": "token"}, "unsupported_response_type", 700054),
        ({"login_hint": "nobody@contoso.com"}, "invalid_request", 50034),
        ({"code_challenge": "abc", "code_challenge_method": "S512"}, "invalid_request", 9002313),
    ]
    for params, error, code in cases:
        status, redirect, _ = await authorize(session, authority, **params)
        assert status == 302
        assert (redirect["error"], redirect["state"]) == (error, "st-1"), params
        assert redirect["error_description"].startswith(f"AADSTS{code}: ")
        assert "code" not in redirect
    status, redirect, _ = await authorize(session, authority, tenant="elsewhere.example")
    assert redirect["error"] == "invalid_request"
    assert redirect["error_description"].startswith("AADSTS50020: ")

    authority.add_user("bob@contoso.com", "bob-pw")
    _, redirect, _ = await authorize(session, authority)
    assert redirect["error"] == "invalid_request"
    _, redirect, _ = await authorize(session, authority, prompt="none")
    assert redirect["error"] == "login_required"
    _, redirect, _ = await authorize(session, authority, login_hint="bob@contoso.com")
    assert "code" in redirect


@pytest.mark.anyio
async def test_authorize_response_modes(
    authority: FakeAuthority, session: aiohttp.ClientSession
) -> None:
    url = f"{authority.authority(TENANT)}/oauth2/v2.0/authorize"
    query = {
        "client_id": NATIVE,
        "response_type": "code",
        "redirect_uri": "http://localhost:8400/?keep=1",
        "scope": USER_READ,
        "state": "s",
    }
    async with session.get(url, params=query, allow_redirects=False) as response:
        assert response.status == 302
        location = urlsplit(response.headers["Location"])
        params = dict(parse_qsl(location.query))
        assert params["keep"] == "1"
        assert params["code"]
    fragment = {**query, "response_mode": "fragment"}
    async with session.get(url, params=fragment, allow_redirects=False) as response:
        location = urlsplit(response.headers["Location"])
        assert "code" in dict(parse_qsl(location.fragment))
    form_post = {**query, "response_mode": "form_post"}
    async with session.get(url, params=form_post, allow_redirects=False) as response:
        assert response.status == 200
        page = await response.text()
        assert 'name="code"' in page
        assert 'name="state" value="s"' in page


@pytest.mark.anyio
async def test_decline_authorization(
    authority: FakeAuthority, session: aiohttp.ClientSession
) -> None:
    authority.decline_authorization(ALICE)
    status, redirect, _ = await authorize(session, authority)
    assert status == 302
    assert (redirect["error"], redirect["state"]) == ("access_denied", "st-1")
    assert redirect["error_description"].startswith("AADSTS65004: ")
    authority.clear_interaction(ALICE)
    _, redirect, _ = await authorize(session, authority)
    assert "code" in redirect


# --- refresh tokens -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_refresh_rotation_and_revocation(
    authority: FakeAuthority, session: aiohttp.ClientSession, clock: VirtualClock
) -> None:
    url = token_url(authority)
    _, body = await post(session, url, password_form())
    first = body["refresh_token"]

    def refresh(token: str, scope: str = f"{USER_READ} {OIDC}") -> dict[str, str]:
        return {
            "grant_type": "refresh_token",
            "client_id": NATIVE,
            "refresh_token": token,
            "scope": scope,
            "client_info": "1",
        }

    await clock.advance(100)
    status, body = await post(session, url, refresh(first, f"api://backend/read {OIDC}"))
    assert status == 200, body
    second = body["refresh_token"]
    assert second != first
    assert body["scope"] == f"api://backend/read {OIDC}"
    assert "client_info" in body
    access = claims_of(body["access_token"])
    assert (access["aud"], access["scp"], access["iat"]) == ("api://backend", "read", START + 100)

    assert_error(*await post(session, url, refresh(first)), "invalid_grant", 70000)
    assert_error(*await post(session, url, refresh("1.garbage")), "invalid_grant", 9002313)
    status, body = await post(
        session, url, {**refresh(second), "client_id": WEB, "client_secret": "web-secret"}
    )
    assert_error(status, body, "invalid_grant", 70000)
    status, body = await post(session, url, refresh(second, "User.Read"))
    assert status == 200
    assert "refresh_token" in body  # rotated even without offline_access
    third = body["refresh_token"]

    authority.revoke_refresh_tokens(ALICE)
    status, body = await post(session, url, refresh(third))
    assert_error(status, body, "invalid_grant", 50173)
    assert "revoked" in body["error_description"]

    _, body = await post(session, url, password_form())
    authority.refresh_token_lifetime = 3600
    _, body = await post(session, url, refresh(body["refresh_token"]))
    await clock.advance(3600)
    assert_error(*await post(session, url, refresh(body["refresh_token"])), "invalid_grant", 70008)


# --- device code -----------------------------------------------------------------------------


async def start_device_flow(
    session: aiohttp.ClientSession, fake: FakeAuthority, tenant: str = TENANT
) -> dict[str, Any]:
    url = f"{fake.authority(tenant)}/oauth2/v2.0/devicecode"
    status, body = await post(session, url, {"client_id": NATIVE, "scope": f"{USER_READ} {OIDC}"})
    assert status == 200, body
    return body


def device_form(device_code: str) -> dict[str, str]:
    return {
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
        "client_id": NATIVE,
        "device_code": device_code,
    }


@pytest.mark.anyio
async def test_device_code_flow(
    authority: FakeAuthority, session: aiohttp.ClientSession, clock: VirtualClock
) -> None:
    flow = await start_device_flow(session, authority)
    user_code = flow["user_code"]
    assert len(user_code) == 8
    assert set(user_code) <= set(string.ascii_uppercase)
    assert flow["verification_uri"] == f"{authority.base_url}/devicelogin"
    assert (flow["expires_in"], flow["interval"]) == (900, 5)
    assert flow["verification_uri"] in flow["message"]
    assert user_code in flow["message"]
    assert authority.pending_user_codes() == [user_code]

    url = token_url(authority)
    form = device_form(flow["device_code"])
    assert_error(*await post(session, url, form), "authorization_pending", 70016)
    await clock.advance(1)
    assert (await post(session, url, form))[1]["error"] == "slow_down"
    await clock.advance(5)  # the interval is now 10 s: still too fast
    assert (await post(session, url, form))[1]["error"] == "slow_down"
    await clock.advance(15)
    assert (await post(session, url, form))[1]["error"] == "authorization_pending"

    authority.approve_device_code(user_code.lower(), ALICE)
    assert authority.pending_user_codes() == []
    await clock.advance(15)
    status, body = await post(session, url, form)
    assert status == 200, body
    assert body["scope"] == f"{USER_READ} {OIDC}"
    assert {"access_token", "refresh_token", "id_token"} <= body.keys()
    assert claims_of(body["access_token"])["oid"] == authority.user(ALICE).oid
    await clock.advance(15)
    assert_error(*await post(session, url, form), "invalid_grant", 70000)
    assert_error(*await post(session, url, device_form("nope")), "bad_verification_code", 70018)
    grant_types = {r.grant_type for r in authority.token_requests}
    assert grant_types == {"urn:ietf:params:oauth:grant-type:device_code"}


@pytest.mark.anyio
async def test_device_code_declined_and_expired(
    authority: FakeAuthority, session: aiohttp.ClientSession, clock: VirtualClock
) -> None:
    authority.device_code_interval = 1
    authority.device_code_lifetime = 60
    url = token_url(authority)
    declined = await start_device_flow(session, authority)
    assert (declined["interval"], declined["expires_in"]) == (1, 60)
    authority.decline_device_code(declined["user_code"])
    status, body = await post(session, url, device_form(declined["device_code"]))
    assert_error(status, body, "authorization_declined", 65004)
    with pytest.raises(ValueError, match="declined"):
        authority.approve_device_code(declined["user_code"], ALICE)

    expiring = await start_device_flow(session, authority)
    await clock.advance(60)
    status, body = await post(session, url, device_form(expiring["device_code"]))
    assert_error(status, body, "expired_token", 70019)
    with pytest.raises(ValueError, match="expired"):
        authority.approve_device_code(expiring["user_code"], ALICE)
    with pytest.raises(KeyError):
        authority.approve_device_code("NOSUCHCD", ALICE)
    with pytest.raises(KeyError):
        authority.decline_device_code("NOSUCHCD")
    fresh = await start_device_flow(session, authority)
    with pytest.raises(KeyError):
        authority.approve_device_code(fresh["user_code"], "nobody@contoso.com")

    status, body = await post(
        session,
        f"{authority.authority(TENANT)}/oauth2/v2.0/devicecode",
        {"client_id": "ghost", "scope": USER_READ},
    )
    assert_error(status, body, "unauthorized_client", 700016)


# --- password (ROPC) ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_password_grant(authority: FakeAuthority, session: aiohttp.ClientSession) -> None:
    url = token_url(authority)
    status, body = await post(session, url, password_form())
    assert status == 200, body
    access = claims_of(body["access_token"])
    assert (access["preferred_username"], access["aud"]) == (ALICE, GRAPH)
    assert "client_info" not in body
    status, body = await post(session, url, {**password_form(), "password": "wrong"})
    assert_error(status, body, "invalid_grant", 50126)
    status, body = await post(session, url, {**password_form(), "username": "eve@contoso.com"})
    assert_error(status, body, "invalid_grant", 50034)
    status, body = await post(session, url, password_form(client_id=WEB))
    assert_error(status, body, "invalid_client", 7000218, want=401)
    status, body = await post(
        session, url, password_form(client_id=WEB, client_secret="web-secret")
    )
    assert status == 200


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("scope", "aud", "scp", "granted"),
    [
        ("User.Read Mail.Read openid", GRAPH, "User.Read Mail.Read", "User.Read Mail.Read openid"),
        (f"00000003-0000-0000-c000-000000000000/User.Read {OIDC}", GRAPH, "User.Read", None),
        ("api://backend/.default offline_access", "api://backend", "user_impersonation", None),
        ("openid profile", GRAPH, "User.Read", "User.Read openid profile"),
    ],
)
async def test_user_scopes(
    authority: FakeAuthority,
    session: aiohttp.ClientSession,
    scope: str,
    aud: str,
    scp: str,
    granted: str | None,
) -> None:
    status, body = await post(session, token_url(authority), password_form(scope))
    assert status == 200, body
    assert body["scope"] == (granted or scope)
    access = claims_of(body["access_token"])
    assert (access["aud"], access["scp"]) == (aud, scp)
    assert ("refresh_token" in body) == ("offline_access" in scope)
    assert ("id_token" in body) == ("openid" in scope)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "scope",
    [f"{USER_READ} api://backend/read", "api://backend/.default api://backend/read", "api://x"],
)
async def test_invalid_user_scopes(
    authority: FakeAuthority, session: aiohttp.ClientSession, scope: str
) -> None:
    status, body = await post(session, token_url(authority), password_form(scope))
    assert_error(status, body, "invalid_scope", 70011)


# --- on-behalf-of ------------------------------------------------------------------------------


def obo_form(assertion: str, scope: str = f"{USER_READ} {OIDC}") -> dict[str, str]:
    return {
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "requested_token_use": "on_behalf_of",
        "client_id": MIDDLE,
        "client_secret": "mid-secret",
        "assertion": assertion,
        "scope": scope,
    }


@pytest.mark.anyio
async def test_on_behalf_of(
    authority: FakeAuthority, session: aiohttp.ClientSession, clock: VirtualClock
) -> None:
    url = token_url(authority)
    _, body = await post(session, url, password_form(f"api://{MIDDLE}/access_as_user"))
    incoming = body["access_token"]
    assert claims_of(incoming)["aud"] == f"api://{MIDDLE}"
    status, body = await post(session, url, obo_form(incoming))
    assert status == 200, body
    access = claims_of(body["access_token"])
    alice = authority.user(ALICE)
    assert (access["aud"], access["scp"], access["azp"]) == (GRAPH, "User.Read", MIDDLE)
    assert (access["oid"], access["tid"]) == (alice.oid, alice.tenant_id)
    assert claims_of(body["id_token"])["aud"] == MIDDLE
    assert "refresh_token" in body

    # The client id itself is an accepted audience too.
    _, body = await post(session, url, password_form(f"{MIDDLE}/access_as_user"))
    assert (await post(session, url, obo_form(body["access_token"])))[0] == 200

    _, body = await post(session, url, password_form(USER_READ))
    status, body = await post(session, url, obo_form(body["access_token"]))
    assert_error(status, body, "invalid_grant", 50013)
    assert "audience" in body["error_description"]
    assert_error(*await post(session, url, obo_form("not.a.jwt")), "invalid_grant", 50013)
    _, app_token = await post(
        session,
        url,
        {
            "grant_type": "client_credentials",
            "client_id": WEB,
            "client_secret": "web-secret",
            "scope": f"api://{MIDDLE}/.default",
        },
    )
    status, body = await post(session, url, obo_form(app_token["access_token"]))
    assert_error(status, body, "invalid_grant", 50013)

    public = {**obo_form(incoming), "client_id": NATIVE}
    del public["client_secret"]
    assert_error(*await post(session, url, public), "invalid_client", 7000218)
    status, body = await post(session, url, {**obo_form(incoming), "client_secret": "bad"})
    assert_error(status, body, "invalid_client", 7000215, want=401)

    await clock.advance(3600)
    assert_error(*await post(session, url, obo_form(incoming)), "invalid_grant", 500133)


# --- tenants, interaction, faults ------------------------------------------------------------


@pytest.mark.anyio
async def test_guest_tenants(authority: FakeAuthority, session: aiohttp.ClientSession) -> None:
    alice = authority.user(ALICE)
    for tenant, tid in [
        (GUEST, authority.tenant_id(GUEST)),
        ("organizations", alice.tenant_id),
        (alice.tenant_id, alice.tenant_id),
    ]:
        status, body = await post(
            session, token_url(authority, tenant), password_form(client_info="1")
        )
        assert status == 200, body
        for token in (body["access_token"], body["id_token"]):
            claims = claims_of(token)
            assert claims["tid"] == tid
            assert claims["iss"] == f"{authority.base_url}/{tid}/v2.0"
        info = body["client_info"] + "=" * (-len(body["client_info"]) % 4)
        assert json.loads(base64.urlsafe_b64decode(info))["utid"] == alice.tenant_id

    url = token_url(authority, "woodgrove.com")
    assert_error(*await post(session, url, password_form()), "invalid_grant", 50020)
    updated = authority.add_guest_tenant(ALICE, "woodgrove.com")
    assert updated.guest_tenants == (GUEST, "woodgrove.com")
    assert (await post(session, url, password_form()))[0] == 200


@pytest.mark.anyio
async def test_require_interaction(
    authority: FakeAuthority, session: aiohttp.ClientSession
) -> None:
    url = token_url(authority)
    _, body = await post(session, url, password_form())
    refresh = {
        "grant_type": "refresh_token",
        "client_id": NATIVE,
        "refresh_token": body["refresh_token"],
        "scope": USER_READ,
    }
    claims = '{"access_token":{"acrs":{"essential":true,"value":"c1"}}}'
    authority.require_interaction(ALICE, suberror="basic_action", claims=claims)
    status, body = await post(session, url, refresh)
    assert_error(status, body, "interaction_required", 50076)
    assert (body["suberror"], body["claims"]) == ("basic_action", claims)
    assert_error(*await post(session, url, password_form()), "interaction_required", 50076)

    authority.require_interaction(ALICE, "consent_required")
    status, body = await post(session, url, refresh)
    assert_error(status, body, "consent_required", 65001)
    assert "suberror" not in body
    # A browser sign-in still works (the user passes MFA or consents there) ...
    _, redirect, _ = await authorize(session, authority)
    assert "code" in redirect
    # ... unless no interaction is allowed.
    _, redirect, _ = await authorize(session, authority, prompt="none")
    assert redirect["error"] == "consent_required"

    authority.clear_interaction(ALICE)
    status, body = await post(session, url, {**refresh, "claims": claims})
    assert status == 200, body  # the refresh token survived the failed attempts
    assert authority.token_requests[-1].form["claims"] == claims


@pytest.mark.anyio
async def test_faults_latency_and_log_apply_to_user_grants(
    authority: FakeAuthority, session: aiohttp.ClientSession
) -> None:
    url = token_url(authority)
    authority.fail_next(status=503)
    status, body = await post(session, url, password_form())
    assert (status, body["error"]) == (503, "temporarily_unavailable")
    status, _ = await post(session, url, password_form())
    assert status == 200
    assert authority.request_counts() == {("password", NATIVE): 2}
    assert authority.token_requests[-1].scope == f"{USER_READ} {OIDC}"
    assert "users=1" in repr(authority)


def test_users_without_server() -> None:
    fake = FakeAuthority()
    alice = fake.add_user("alice.smith@contoso.com", tenant="contoso.com")
    assert alice.name == "Alice Smith"
    assert alice.tenant_id == fake.tenant_id("contoso.com")
    assert fake.user("ALICE.SMITH@contoso.com") == alice
    assert fake.add_user("alice.smith@contoso.com").oid != alice.oid
    with pytest.raises(KeyError):
        fake.user("nobody")
    with pytest.raises(KeyError):
        fake.require_interaction("nobody")
    with pytest.raises(KeyError):
        fake.revoke_refresh_tokens("nobody")
    assert (fake.device_code_interval, fake.device_code_lifetime) == (5, 900)
    assert fake.authorization_code_lifetime == 600


@pytest.mark.anyio
async def test_command_line_users(session: aiohttp.ClientSession) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    command = [
        *(sys.executable, "-m", "aiomsal.testing", "serve", "--client", NATIVE),
        *("--redirect-uri", "http://localhost", "--user", f"{ALICE}:alice-pw"),
    ]
    async with await anyio.open_process(command, env=env) as process:
        try:
            assert process.stdout is not None
            line = b""
            with anyio.fail_after(10):
                while not line.endswith(b"\n"):
                    line += await process.stdout.receive()
            base_url = json.loads(line)["base_url"]
            status, body = await post(
                session, f"{base_url}/{TENANT}/oauth2/v2.0/token", password_form()
            )
            assert status == 200, body
        finally:
            process.terminate()
            with anyio.fail_after(5):
                await process.wait()
