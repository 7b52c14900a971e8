from __future__ import annotations

import json
import warnings
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from aiomsal._errors import (
    MsalConfigurationError,
    MsalServiceError,
    MsalSignInError,
    MsalUiRequiredError,
)
from aiomsal._protocol._auth_code import (
    AuthCodeFlow,
    build_authorization_url,
    code_from_auth_response,
    initiate_auth_code_flow,
)
from aiomsal._protocol._identity import check_id_token
from aiomsal._protocol._pkce import nonce_claim, s256_challenge

ENDPOINT = "https://login.microsoftonline.com/common/oauth2/v2.0/authorize"
REDIRECT = "http://localhost:8400"
SCOPES = ["User.Read", "openid", "profile", "offline_access"]


def query_of(url: str) -> dict[str, str]:
    parsed = parse_qs(urlsplit(url).query, keep_blank_values=True)
    assert all(len(v) == 1 for v in parsed.values()), parsed
    return {k: v[0] for k, v in parsed.items()}


def new_flow(**kwargs: Any) -> AuthCodeFlow:
    return initiate_auth_code_flow(
        ENDPOINT, client_id="cid", redirect_uri=REDIRECT, scopes=SCOPES, **kwargs
    )


# -- build_authorization_url ------------------------------------------------------------


def test_build_minimal_url() -> None:
    url = build_authorization_url(ENDPOINT, client_id="cid", redirect_uri=REDIRECT, scopes=SCOPES)
    assert url.startswith(ENDPOINT + "?")
    assert query_of(url) == {
        "client_id": "cid",
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "scope": "User.Read openid profile offline_access",
        "client_info": "1",
    }


def test_build_full_url() -> None:
    url = build_authorization_url(
        ENDPOINT,
        client_id="cid",
        redirect_uri=REDIRECT,
        scopes=SCOPES,
        state="st",
        nonce="no",
        code_challenge="ch",
        prompt="select_account",
        login_hint="ada@contoso.com",
        domain_hint="contoso.com",
        claims='{"id_token":{"acrs":{"essential":true}}}',
        response_mode="form_post",
        max_age=0,
    )
    query = query_of(url)
    assert query["state"] == "st"
    assert query["nonce"] == "no"
    assert query["code_challenge"] == "ch"
    assert query["code_challenge_method"] == "S256"
    assert query["prompt"] == "select_account"
    assert query["login_hint"] == "ada@contoso.com"
    assert query["domain_hint"] == "contoso.com"
    assert json.loads(query["claims"]) == {"id_token": {"acrs": {"essential": True}}}
    assert query["response_mode"] == "form_post"
    assert query["max_age"] == "0"
    assert query["client_info"] == "1"


def test_build_keeps_endpoint_query() -> None:
    endpoint = (
        "https://contoso.b2clogin.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize?p=b2c_1_signin"
    )
    url = build_authorization_url(endpoint, client_id="cid", redirect_uri=REDIRECT, scopes=SCOPES)
    assert url.startswith(endpoint + "&")
    assert query_of(url)["p"] == "b2c_1_signin"
    assert query_of(url)["client_id"] == "cid"


def test_build_rejects_endpoint_query_that_repeats_a_parameter() -> None:
    with pytest.raises(MsalConfigurationError, match="state"):
        build_authorization_url(
            ENDPOINT + "?state=evil",
            client_id="cid",
            redirect_uri=REDIRECT,
            scopes=SCOPES,
            state="mine",
        )


@pytest.mark.parametrize("prompt", ["none", "login", "consent", "select_account", "create"])
def test_build_accepts_known_prompts(prompt: str) -> None:
    url = build_authorization_url(
        ENDPOINT, client_id="cid", redirect_uri=REDIRECT, scopes=SCOPES, prompt=prompt
    )
    assert query_of(url)["prompt"] == prompt


@pytest.mark.parametrize(
    "kwargs",
    [
        {"prompt": "always"},
        {"prompt": ""},
        {"response_mode": "fragment"},
        {"max_age": -1},
    ],
)
def test_build_rejects_bad_options(kwargs: dict[str, Any]) -> None:
    with pytest.raises(MsalConfigurationError):
        build_authorization_url(
            ENDPOINT, client_id="cid", redirect_uri=REDIRECT, scopes=SCOPES, **kwargs
        )


# -- initiate_auth_code_flow ------------------------------------------------------------


def test_initiate_makes_a_complete_flow() -> None:
    flow = new_flow(prompt="login", claims='{"access_token":{}}', max_age=600)
    query = query_of(flow.auth_uri)
    assert query["state"] == flow.state
    assert query["nonce"] == nonce_claim(flow.nonce)
    assert query["code_challenge"] == s256_challenge(flow.code_verifier)
    assert query["code_challenge_method"] == "S256"
    assert query["redirect_uri"] == REDIRECT
    assert query["prompt"] == "login"
    assert query["max_age"] == "600"
    assert flow.scopes == tuple(SCOPES)
    assert flow.claims == '{"access_token":{}}'
    assert flow.max_age == 600
    assert flow.redirect_uri == REDIRECT


def test_initiate_uses_fresh_secrets_and_given_state() -> None:
    first, second = new_flow(), new_flow()
    assert first.state != second.state
    assert first.nonce != second.nonce
    assert first.code_verifier != second.code_verifier
    assert new_flow(state="my-state").state == "my-state"
    with pytest.raises(MsalConfigurationError):
        new_flow(state="")


def test_flow_repr_hides_secrets() -> None:
    flow = new_flow()
    text = repr(flow)
    assert flow.nonce not in text
    assert flow.code_verifier not in text
    assert flow.state in text


def test_flow_id_token_nonce_check_round_trip() -> None:
    flow = new_flow()
    sent = query_of(flow.auth_uri)["nonce"]
    claims = {"aud": "cid", "exp": 2e9, "nonce": sent}  # what the authority echoes
    check_id_token(claims, client_id="cid", nonce=flow.nonce, now=1e9)


# -- flow dicts -------------------------------------------------------------------------


def test_dict_round_trip_through_json() -> None:
    flow = new_flow(claims='{"x":1}', max_age=5)
    data = json.loads(json.dumps(flow.to_dict()))
    assert set(data) == {
        "auth_uri",
        "state",
        "redirect_uri",
        "scope",
        "nonce",
        "code_verifier",
        "claims_challenge",
        "max_age",
    }
    assert data["scope"] == SCOPES
    assert AuthCodeFlow.from_dict(data) == flow


def test_dict_without_optional_keys() -> None:
    flow = new_flow()
    data = flow.to_dict()
    assert "claims_challenge" not in data  # as in MSAL's dict
    assert "max_age" not in data
    assert AuthCodeFlow.from_dict(data) == flow


def test_loads_msal_flow_dict_literal() -> None:
    data = {
        "state": "FW_5n0lgSaCFd0yQJZj5rQ",
        "redirect_uri": "http://localhost:1234",
        "scope": ["openid", "profile", "offline_access", "User.Read"],
        "auth_uri": ENDPOINT + "?client_id=cid&state=FW_5n0lgSaCFd0yQJZj5rQ",
        "code_verifier": "JwBjDDyZvaXB.x7SutIlwHjmWN459-Nwo0OD9~k1zir",
        "nonce": "kxDQdWa_5woVlpP0fGLZZA",
        "claims_challenge": None,
    }
    flow = AuthCodeFlow.from_dict(data)
    assert flow.state == data["state"]
    assert flow.scopes == ("openid", "profile", "offline_access", "User.Read")
    assert flow.code_verifier == data["code_verifier"]
    assert flow.claims is None
    assert code_from_auth_response(flow, {"code": "c", "state": data["state"]}) == "c"


def test_loads_flow_made_by_msal() -> None:
    oidc = pytest.importorskip("msal.oauth2cli.oidc")
    client = oidc.Client({"authorization_endpoint": ENDPOINT}, "cid")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MSAL recommends form_post
        data = client.initiate_auth_code_flow(SCOPES, redirect_uri=REDIRECT, max_age=60)
    data["claims_challenge"] = None  # what msal.ClientApplication adds
    flow = AuthCodeFlow.from_dict(data)
    assert flow.state == data["state"]
    assert flow.max_age == 60
    sent = query_of(flow.auth_uri)["nonce"]
    assert sent == nonce_claim(flow.nonce)
    assert query_of(flow.auth_uri)["code_challenge"] == s256_challenge(flow.code_verifier)
    claims = {"aud": "cid", "exp": 2e9, "nonce": sent, "auth_time": 1e9}
    check_id_token(claims, client_id="cid", nonce=flow.nonce, now=1e9, max_age=flow.max_age)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("auth_uri", None),
        ("state", ""),
        ("redirect_uri", 5),
        ("nonce", None),
        ("code_verifier", None),
        ("scope", "User.Read"),
        ("scope", ["ok", 1]),
        ("claims_challenge", {"x": 1}),
        ("max_age", "60"),
        ("max_age", True),
    ],
)
def test_from_dict_rejects_missing_or_mistyped(key: str, value: Any) -> None:
    data = new_flow().to_dict()
    if value is None:
        del data[key]
    else:
        data[key] = value
    with pytest.raises(MsalConfigurationError, match=key.split("_")[0]):
        AuthCodeFlow.from_dict(data)


def test_from_dict_rejects_non_mapping() -> None:
    with pytest.raises(MsalConfigurationError):
        AuthCodeFlow.from_dict(["not", "a", "dict"])  # type: ignore[arg-type]


# -- code_from_auth_response ------------------------------------------------------------


def test_code_from_matching_response() -> None:
    flow = new_flow()
    assert code_from_auth_response(flow, {"code": "the-code", "state": flow.state}) == "the-code"


@pytest.mark.parametrize(
    "response",
    [
        {"code": "c"},
        {"code": "c", "state": "forged"},
        {"code": "c", "state": ""},
        {"code": "c", "state": "é-non-ascii"},
        {"code": "c", "state": ["list-value"]},
    ],
)
def test_state_mismatch(response: dict[str, Any]) -> None:
    with pytest.raises(MsalSignInError, match="state mismatch"):
        code_from_auth_response(new_flow(), response)


def test_state_checked_before_error_is_reported() -> None:
    response = {"error": "access_denied", "error_description": "forged", "state": "forged"}
    with pytest.raises(MsalSignInError, match="state mismatch"):
        code_from_auth_response(new_flow(), response)


def test_error_response_raises_service_error() -> None:
    flow = new_flow()
    response = {
        "error": "access_denied",
        "error_description": "AADSTS65004: User declined to consent.",
        "suberror": "consent_declined",
        "state": flow.state,
        "code": "ignored",
    }
    with pytest.raises(MsalServiceError) as caught:
        code_from_auth_response(flow, response)
    error = caught.value
    assert type(error) is MsalServiceError
    assert error.error == "access_denied"
    assert error.error_description == "AADSTS65004: User declined to consent."
    assert error.suberror == "consent_declined"


@pytest.mark.parametrize("code", ["login_required", "interaction_required", "consent_required"])
def test_error_response_needing_interaction(code: str) -> None:
    flow = new_flow(prompt="none")
    with pytest.raises(MsalUiRequiredError) as caught:
        code_from_auth_response(flow, {"error": code, "state": flow.state})
    assert caught.value.error == code


@pytest.mark.parametrize("extra", [{}, {"code": ""}, {"code": ["a"]}])
def test_response_without_code(extra: dict[str, Any]) -> None:
    flow = new_flow()
    with pytest.raises(MsalSignInError, match="no code"):
        code_from_auth_response(flow, {"state": flow.state, **extra})
