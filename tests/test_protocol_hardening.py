"""Regression tests of the protocol layer's hardening (issue 9: items 2, 11, 18, 22-25)."""

from __future__ import annotations

import base64
import json

import jwt
import pytest

from aiomsal import (
    ConfidentialClientApplication,
    MsalConfigurationError,
    MsalServiceError,
    MsalThrottledError,
    MsalUiRequiredError,
)
from aiomsal._protocol._authority import parse_authority, parse_metadata_response
from aiomsal._protocol._claims import merge_claims
from aiomsal._protocol._device_flow import parse_device_code_response
from aiomsal._protocol._error_response import parse_error_response
from aiomsal._protocol._http import HttpResponse
from aiomsal._protocol._identity import decode_id_token, parse_client_info
from aiomsal._protocol._instance_discovery import parse_instance_discovery_response
from aiomsal._protocol._json import MAX_BODY_BYTES, MAX_DEPTH, JsonRejected, decode_json
from aiomsal._protocol._throttling import MAX_RETRY_AFTER, parse_retry_after
from aiomsal._protocol._token_response import parse_token_response
from aiomsal._transport._aiohttp_wire import _same_origin_location
from aiomsal.testing import FakeAuthority, VirtualClock, generate_certificate
from tests.hostile_authority import Answer, HostileAuthority

NOW = 1_800_000_000.0
DEEP = "[" * 50_000 + "]" * 50_000


def answer(body: bytes | str, status: int = 200, **headers: str) -> HttpResponse:
    raw = body.encode() if isinstance(body, str) else body
    return HttpResponse(status=status, headers=headers, body=raw)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# -- item 2: dot segments ------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/realms/tenant-a/%2e%2e/tenant-b",
        "/realms/tenant-a/%2E%2E/tenant-b",
        "/realms/tenant-a/%2E./tenant-b",
        "/realms/tenant-a/.%2e/tenant-b",
        "/realms/%2e/tenant-b",
        "/realms/tenant-a/%252e%252e/tenant-b",
        "/realms/tenant-a%2f..%2ftenant-b",
        "/realms/tenant-a%5C..",
        "/realms/tenant-a/../tenant-b",
        "/realms/./tenant-b",
    ],
)
def test_an_authority_with_dot_segments_is_refused(path: str) -> None:
    with pytest.raises(MsalConfigurationError, match="invalid path segment"):
        parse_authority(oidc_authority=f"https://kc.example{path}")
    with pytest.raises(MsalConfigurationError):
        parse_authority(f"https://login.microsoftonline.com{path}")


def test_plain_percent_encoding_is_still_accepted() -> None:
    assert parse_authority(oidc_authority="https://kc.example/realms/a%20b").path == "/realms/a%20b"


# -- item 22: no credential quoted -----------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://admin:hunter2-password@login.microsoftonline.com/contoso",
        "https://hunter2-password@login.microsoftonline.com/contoso",
        "https://admin:hunter2-password@kc.example/realms/a b",
        "https://login.microsoftonline.com/contoso?sig=hunter2-password",
        "https://login.microsoftonline.com/contoso#hunter2-password",
        "https://login.microsoftonline.com/con toso?sig=hunter2-password",
        "http://example.com/contoso?sig=hunter2-password",
        "https://user:hunter2-password/x@host/contoso",
    ],
)
def test_configuration_errors_never_quote_a_url_credential(url: str) -> None:
    for kwargs in ({"authority": url}, {"oidc_authority": url}):
        with pytest.raises(MsalConfigurationError) as caught:
            parse_authority(**kwargs)
        assert "hunter2" not in str(caught.value)
        assert "hunter2" not in repr(caught.value)
        assert caught.value.__cause__ is None


def test_user_information_is_refused_outright() -> None:
    with pytest.raises(MsalConfigurationError, match="user information"):
        parse_authority(oidc_authority="https://a:b@kc.example/realms/x")


# -- items 11 and 23: token answers ------------------------------------------------------------


@pytest.mark.parametrize(
    "expires_in",
    ["Infinity", "-Infinity", "NaN", "1e999", '"1e999"', "9" * 400, f'"{"9" * 400}"', "-5", "0"],
)
def test_a_bad_expires_in_is_invalid_response(expires_in: str) -> None:
    body = f'{{"access_token":"at","expires_in":{expires_in}}}'
    with pytest.raises(MsalServiceError) as caught:
        parse_token_response(answer(body))
    assert caught.value.error == "invalid_response"


@pytest.mark.parametrize("field", ["ext_expires_in", "refresh_in"])
@pytest.mark.parametrize("value", ["Infinity", "NaN", "1e999", "9" * 400, "-1"])
def test_a_bad_optional_lifetime_is_invalid_response(field: str, value: str) -> None:
    body = f'{{"access_token":"at","expires_in":3600,"{field}":{value}}}'
    with pytest.raises(MsalServiceError, match="invalid_response"):
        parse_token_response(answer(body))


@pytest.mark.parametrize("token_type", ['{"a":1}', "[1]", "5", "true"])
def test_a_token_type_that_is_not_a_string_is_refused(token_type: str) -> None:
    body = f'{{"access_token":"at","expires_in":3600,"token_type":{token_type}}}'
    with pytest.raises(MsalServiceError, match="token_type"):
        parse_token_response(answer(body))


def test_numeric_strings_and_floats_are_still_read() -> None:
    parsed = parse_token_response(
        answer('{"access_token":"at","expires_in":"3599","ext_expires_in":7200.0}')
    )
    assert (parsed.expires_in, parsed.ext_expires_in, parsed.token_type) == (3599, 7200, "Bearer")


def test_a_zero_optional_lifetime_is_no_hint_and_a_scope_list_is_read() -> None:
    parsed = parse_token_response(
        answer(
            '{"access_token":"at","expires_in":60,"ext_expires_in":0,"refresh_in":"0",'
            '"scope":["a","b"]}'
        )
    )
    assert (parsed.ext_expires_in, parsed.refresh_in, parsed.scope) == (None, None, ("a", "b"))


def test_http_200_with_an_error_is_that_error() -> None:
    with pytest.raises(MsalUiRequiredError) as caught:
        parse_token_response(answer('{"error":"invalid_grant","error_description":"AADSTS70000"}'))
    assert caught.value.error == "invalid_grant"
    with pytest.raises(MsalServiceError) as other:
        parse_token_response(
            answer('{"error":"invalid_client","access_token":"at","expires_in":1}')
        )
    assert other.value.error == "invalid_client"


@pytest.mark.parametrize(
    "parse",
    [
        lambda r: parse_token_response(r),
        lambda r: parse_device_code_response(r, now=NOW, scopes=("s",)),
        lambda r: parse_metadata_response(parse_authority(oidc_authority="https://kc.example"), r),
        lambda r: parse_instance_discovery_response(
            parse_authority("https://login.contoso.example/contoso"), r
        ),
    ],
    ids=["token", "device", "metadata", "discovery"],
)
@pytest.mark.parametrize("status", [200, 400])
def test_deep_nesting_is_invalid_response_never_a_recursion_error(
    parse: object, status: int
) -> None:
    with pytest.raises(MsalServiceError) as caught:
        parse(answer(DEEP, status))  # type: ignore[operator]
    assert caught.value.error == "invalid_response"


def test_an_error_body_with_huge_numbers_gives_an_msal_error() -> None:
    error = parse_error_response(answer('{"error":"x","error_codes":[' + "9" * 400 + "]}", 400))
    assert isinstance(error, MsalServiceError)


def test_id_tokens_and_client_info_with_deep_or_non_finite_payloads_are_refused() -> None:
    for payload in (b'{"exp":NaN}', b'{"exp":Infinity}', b'{"exp":1e999}', DEEP.encode()):
        with pytest.raises(MsalServiceError, match="invalid_response"):
            decode_id_token(f"{b64(b'{}')}.{b64(payload)}.sig")
        with pytest.raises(MsalServiceError, match="invalid_response"):
            parse_client_info(b64(payload))
    for claim in ("exp", "iat", "nbf"):
        payload = json.dumps({"exp": 1, claim: "NaN"}).encode()
        token = f"{b64(b'{}')}.{b64(payload)}.sig"
        with pytest.raises(MsalServiceError, match=claim):
            decode_id_token(token)


def test_the_decoder_limits() -> None:
    assert decode_json("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
    with pytest.raises(JsonRejected, match="deeper"):
        decode_json("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    with pytest.raises(JsonRejected, match="larger"):
        decode_json(b" " * (MAX_BODY_BYTES + 1))
    with pytest.raises(JsonRejected, match="surrogate"):
        decode_json('"\\ud800"')
    assert decode_json('"\\ud83d\\ude00"') == "\U0001f600"
    assert decode_json('"[{[{"') == "[{[{"  # brackets inside strings are not nesting


def test_a_device_code_answer_with_a_huge_interval_polls_at_the_default() -> None:
    body = '{"device_code":"d","user_code":"u","verification_uri":"https://x","expires_in":900,'
    flow = parse_device_code_response(answer(body + '"interval":1e300}'), now=NOW, scopes=("s",))
    assert flow.interval == 5.0


def test_a_hostile_claims_challenge_is_a_configuration_error() -> None:
    for challenge in (DEEP, '{"a":NaN}', '{"a":"\\ud800"}', b"{}", 5):
        with pytest.raises(MsalConfigurationError, match="claims_challenge"):
            merge_claims(challenge, ["cp1"])  # type: ignore[arg-type]


# -- item 24: throttling -------------------------------------------------------------------


def test_a_503_with_an_unreadable_retry_after_is_throttled_the_first_time() -> None:
    error = parse_error_response(answer("", 503, **{"retry-after": "later, maybe"}), NOW)
    assert isinstance(error, MsalThrottledError)
    assert error.retry_after == 5.0


@pytest.mark.parametrize("value", ["Fri, 31 Dec 9999 23:59:59 GMT", "99999999999", "1" + "0" * 90])
def test_retry_after_is_capped_from_the_first_answer_on(value: str) -> None:
    assert parse_retry_after(value, NOW) == MAX_RETRY_AFTER
    error = parse_error_response(answer("", 429, **{"retry-after": value}), NOW)
    assert isinstance(error, MsalThrottledError)
    assert error.retry_after == MAX_RETRY_AFTER


# -- item 25: redirects and metadata schemes --------------------------------------------------


def test_only_same_origin_redirects_are_followed() -> None:
    url = "https://login.example/contoso/v2.0/.well-known/openid-configuration"
    assert _same_origin_location(url, "/moved") == "https://login.example/moved"
    assert (
        _same_origin_location(url, "https://login.example:443/m") == "https://login.example:443/m"
    )
    for elsewhere in (
        "http://login.example/m",
        "https://login.example:8443/m",
        "https://evil.example/m",
        "//evil.example/m",
        "https://u:p@login.example/m",
        "https://[::1/m",
    ):
        assert _same_origin_location(url, elsewhere) is None, elsewhere


def test_metadata_with_an_issuer_or_endpoint_on_another_scheme_is_refused() -> None:
    authority = parse_authority(oidc_authority="https://kc.example/realms/a")
    good = {
        "issuer": "https://kc.example/realms/a",
        "authorization_endpoint": "https://kc.example/auth",
        "token_endpoint": "https://kc.example/token",
    }
    parse_metadata_response(authority, answer(json.dumps(good)))
    for key in ("issuer", "token_endpoint", "authorization_endpoint"):
        for value in ("http://kc.example/x", "ftp://kc.example/x", "kc.example"):
            bad = {**good, key: value}
            with pytest.raises(MsalServiceError, match=key):
                parse_metadata_response(authority, answer(json.dumps(bad)))


# -- item 18: one jti per request for a generic OIDC authority ----------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("oidc", [True, False], ids=["oidc", "entra"])
async def test_client_assertions_are_fresh_per_request_for_oidc_authorities(oidc: bool) -> None:
    clock = VirtualClock()
    certificate = generate_certificate()
    async with FakeAuthority(clock=clock) as fake:
        fake.add_client("svc", certificate=certificate)
        where = (
            {"oidc_authority": fake.authority("contoso")}
            if oidc
            else {"authority": fake.authority("contoso")}
        )
        credential: dict[str, object] = {
            "private_key": certificate.private_key_pem,
            "public_certificate": certificate.certificate_pem,
        }
        async with ConfidentialClientApplication(
            "svc",
            client_credential=credential,
            clock=clock,
            **where,  # type: ignore[arg-type]
        ) as app:
            for _ in range(3):
                await app.acquire_token_for_client(["api://x/.default"], force_refresh=True)
        jtis = [
            jwt.decode(r.form["client_assertion"], options={"verify_signature": False})["jti"]
            for r in fake.token_requests
        ]
    assert len(jtis) == 3
    assert len(set(jtis)) == (3 if oidc else 1)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [("whenever", 5.0), ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER)],
    ids=["unreadable", "year-9999"],
)
async def test_throttling_is_the_same_on_the_first_answer_and_on_its_replays(
    retry_after: str, expected: float
) -> None:
    clock = VirtualClock(NOW)
    async with HostileAuthority() as hostile:
        hostile.script("token", Answer(503, b"", {"Retry-After": retry_after}))
        async with ConfidentialClientApplication(
            "svc", client_credential="secret-value", authority=hostile.authority(), clock=clock
        ) as app:
            waits = []
            for _ in range(2):  # the answer, then its replay from memory
                with pytest.raises(MsalThrottledError) as caught:
                    await app.acquire_token_for_client(["api://x/.default"])
                waits.append(caught.value.retry_after)
            assert waits == [expected, expected]
            assert hostile.requests["token"] == 1
            await clock.advance(expected + 1)
            result = await app.acquire_token_for_client(["api://x/.default"])
            assert result.token_source == "identity_provider"
            assert hostile.requests["token"] == 2
