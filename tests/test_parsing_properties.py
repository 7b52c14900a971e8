"""Property-based tests: the parsers of authority answers and authority strings raise only
``MsalError`` subclasses, whatever they are given, and what they return is sane."""

from __future__ import annotations

import base64
import contextlib
import json
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiomsal import MsalConfigurationError, MsalError, MsalServiceError
from aiomsal._protocol._authority import (
    Authority,
    parse_authority,
    parse_metadata_response,
)
from aiomsal._protocol._device_flow import parse_device_code_response
from aiomsal._protocol._error_response import parse_error_response
from aiomsal._protocol._http import HttpResponse
from aiomsal._protocol._identity import check_id_token, decode_id_token, parse_client_info
from aiomsal._protocol._instance_discovery import parse_instance_discovery_response
from aiomsal._protocol._json import MAX_LIFETIME_SECONDS
from aiomsal._protocol._throttling import MAX_RETRY_AFTER, parse_retry_after
from aiomsal._protocol._token_response import parse_token_response

NOW = 1_800_000_000.0
# Derandomized: the same 200 examples on every run, so CI is deterministic (no flaky reds).
MODERATE = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# JSON values as an authority might send them, hostile numbers included.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["3600", "1e999", "-1", "0", "NaN", "Infinity", "9" * 400, ""]),
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
TOKEN_KEYS = [
    "access_token",
    "token_type",
    "expires_in",
    "ext_expires_in",
    "refresh_in",
    "scope",
    "refresh_token",
    "id_token",
    "client_info",
    "foci",
    "error",
    "error_description",
    "error_codes",
]
METADATA_KEYS = [
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "device_authorization_endpoint",
    "jwks_uri",
    "end_session_endpoint",
    "error",
]
DEVICE_KEYS = ["device_code", "user_code", "verification_uri", "expires_in", "interval", "error"]
url_values = st.one_of(
    json_values,
    st.sampled_from(
        [
            "https://kc.example/token",
            "http://127.0.0.1:1/token",
            "http://evil.example/t",
            "ftp://x/y",
            "https://[::1/x",
            "https://u:p@h/x",
            "javascript:alert(1)",
        ]
    ),
)


def objects(keys: list[str], values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(keys), values, max_size=len(keys))


def serialized(value: Any) -> bytes:
    try:
        return json.dumps(value).encode()
    except (ValueError, RecursionError):  # a 400-digit int beyond the str limit, say
        return b"{}"


bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(serialized),
    objects(TOKEN_KEYS, json_values).map(serialized),
    st.integers(1, 5000).map(lambda n: b"[" * n + b"]" * n),
)
statuses = st.sampled_from([200, 201, 204, 301, 302, 400, 401, 429, 500, 503])
headers = st.dictionaries(
    st.sampled_from(["retry-after", "content-type", "client-request-id", "location"]),
    st.text(max_size=40),
    max_size=4,
)


def responses(body: st.SearchStrategy[bytes] = bodies) -> st.SearchStrategy[HttpResponse]:
    return st.builds(HttpResponse, status=statuses, headers=headers, body=body)


ENTRA = parse_authority("https://login.microsoftonline.com/contoso")
ON_HOST = parse_authority("https://login.contoso.example/contoso")
OIDC = parse_authority(oidc_authority="https://kc.example/realms/a")
LOOPBACK = parse_authority("http://127.0.0.1:1/contoso")


@MODERATE
@given(responses(st.one_of(bodies, objects(TOKEN_KEYS, json_values).map(serialized))))
def test_token_answers_give_a_sane_token_or_an_msal_error(response: HttpResponse) -> None:
    try:
        token = parse_token_response(response, NOW)
    except MsalServiceError:
        return
    assert 200 <= response.status < 300
    assert isinstance(token.access_token, str) and token.access_token
    assert isinstance(token.token_type, str)
    assert 0 < token.expires_in <= MAX_LIFETIME_SECONDS
    for optional in (token.ext_expires_in, token.refresh_in):
        assert optional is None or 0 < optional <= MAX_LIFETIME_SECONDS


@MODERATE
@given(responses())
def test_error_answers_always_give_a_service_error(response: HttpResponse) -> None:
    error = parse_error_response(response, NOW)
    assert isinstance(error, MsalServiceError)
    assert isinstance(str(error), str)
    retry_after = getattr(error, "retry_after", None)
    assert retry_after is None or 0 <= retry_after <= MAX_RETRY_AFTER


@MODERATE
@given(
    st.sampled_from([ENTRA, OIDC, LOOPBACK]),
    responses(st.one_of(bodies, objects(METADATA_KEYS, url_values).map(serialized))),
)
def test_metadata_answers_give_https_endpoints_or_an_msal_error(
    authority: Authority, response: HttpResponse
) -> None:
    try:
        metadata = parse_metadata_response(authority, response)
    except MsalServiceError:
        return
    for url in (metadata.issuer, metadata.token_endpoint, metadata.authorization_endpoint):
        assert url.startswith("https://") or (
            authority.is_loopback and url.startswith("http://127.0.0.1")
        )


@MODERATE
@given(
    responses(
        st.one_of(
            bodies,
            st.fixed_dictionaries(
                {},
                optional={
                    "metadata": st.one_of(
                        json_values,
                        st.lists(
                            objects(
                                ["preferred_network", "preferred_cache", "aliases"], json_values
                            ),
                            max_size=3,
                        ),
                    ),
                    "error": json_values,
                },
            ).map(serialized),
        )
    )
)
def test_instance_discovery_answers_give_aliases_or_an_msal_error(response: HttpResponse) -> None:
    try:
        instance = parse_instance_discovery_response(ON_HOST, response)
    except MsalServiceError:
        return
    assert all(isinstance(alias, str) for alias in instance.aliases)


@MODERATE
@given(responses(st.one_of(bodies, objects(DEVICE_KEYS, json_values).map(serialized))))
def test_device_code_answers_give_a_bounded_flow_or_an_msal_error(response: HttpResponse) -> None:
    try:
        flow = parse_device_code_response(response, now=NOW, scopes=("s",))
    except MsalServiceError:
        return
    assert math.isfinite(flow.interval) and 0 < flow.interval <= 24 * 3600
    assert NOW < flow.expires_at <= NOW + 24 * 3600


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


payloads = st.one_of(
    st.binary(max_size=200),
    json_values.map(serialized),
    objects(["aud", "exp", "iat", "nbf", "nonce", "sub", "iss", "uid", "utid"], json_values).map(
        serialized
    ),
)


@MODERATE
@given(st.one_of(st.text(max_size=200), payloads.map(lambda p: f"e30.{b64(p)}.c2ln")))
def test_id_tokens_give_claims_or_an_msal_error(raw: str) -> None:
    try:
        claims = decode_id_token(raw)
    except MsalServiceError:
        return
    assert isinstance(claims, dict)
    try:
        check_id_token(claims, client_id="app", nonce="n", now=NOW)
    except MsalError:
        return


@MODERATE
@given(st.one_of(st.text(max_size=200), payloads.map(b64)))
def test_client_info_gives_ids_or_an_msal_error(raw: str) -> None:
    try:
        info = parse_client_info(raw)
    except MsalServiceError:
        return
    assert info.uid and info.utid


authority_texts = st.one_of(
    st.text(max_size=80),
    st.builds(
        lambda scheme, host, path: f"{scheme}://{host}{path}",
        st.sampled_from(["https", "http", "ftp", "HTTPS", ""]),
        st.sampled_from(
            ["login.microsoftonline.com", "127.0.0.1:8443", "[::1]", "kc.example", "a@b", "x:99999"]
        ),
        st.text(alphabet="/.%2eEfF5cC@?#:;a-_~ ", max_size=30),
    ),
)


@MODERATE
@given(authority_texts, st.booleans())
def test_parse_authority_gives_an_authority_or_a_configuration_error(text: str, oidc: bool) -> None:
    try:
        authority = parse_authority(oidc_authority=text) if oidc else parse_authority(text)
    except MsalConfigurationError as exc:
        message = str(exc)
    else:
        message = ""
    if message:
        # A URL with user information is refused without being quoted.
        assert "@" not in message.replace("'@'", "")
        return
    assert authority.scheme in ("https", "http")
    assert "@" not in authority.url and "?" not in authority.url
    assert all(s not in ("", ".", "..") for s in authority.path.split("/")[1:])


@MODERATE
@given(st.text(max_size=60))
def test_a_tenant_override_gives_an_authority_or_a_configuration_error(tenant: str) -> None:
    with contextlib.suppress(MsalConfigurationError):
        assert ENTRA.with_tenant(tenant).tenant


@MODERATE
@given(st.one_of(st.none(), st.text(max_size=120)), st.floats(allow_nan=True))
def test_retry_after_is_none_or_bounded(value: str | None, now: float) -> None:
    seconds = parse_retry_after(value, now)
    assert seconds is None or 0 <= seconds <= MAX_RETRY_AFTER
