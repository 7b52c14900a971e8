"""Malformed and hostile authority answers, end to end: a typed error, nothing cached.

Each case drives a real application against a loopback authority: FakeAuthority
(with its ``body`` and ``patch`` faults) for token answers with ID tokens and
client_info, and the scripted :class:`HostileAuthority` for what FakeAuthority
cannot say (metadata, instance discovery, device code answers, redirects,
bodies cut short or that never end). Every case must raise an ``MsalError`` of
the expected type within the call's bound, leave nothing in the cache, and let
the next good answer through (fetched, not a stale bad one).
"""

from __future__ import annotations

import base64
import gzip
import json
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest

from aiomsal import (
    ConfidentialClientApplication,
    MsalError,
    MsalServiceError,
    MsalSignInError,
    MsalThrottledError,
    MsalTransportError,
    MsalUiRequiredError,
    PublicClientApplication,
)
from aiomsal._protocol._json import MAX_BODY_BYTES
from aiomsal.testing import FakeAuthority, VirtualClock
from tests.helpers import SECRET, drive
from tests.hostile_authority import Answer, Endpoint, HostileAuthority, good_token

pytestmark = pytest.mark.anyio

CLIENT = "hostile-test-app"
SCOPES = ["api://backend/.default"]
ALICE = "alice@contoso.com"
START = 1_800_000_000.0
#: Real seconds within which every case must end (each attempt is bounded by `timeout=`).
BOUND = 10.0


@dataclass(frozen=True)
class Case:
    id: str
    #: (endpoint, answer, how many times); the transport retries a 5xx or a failure once.
    script: tuple[tuple[Endpoint, Answer, int], ...]
    error: type[MsalError] = MsalServiceError
    code: str | None = "invalid_response"
    #: Clock seconds to let pass before the good call (a throttled answer's time).
    settle: float = 0.0
    oidc: bool = False
    timeout: float = 5.0
    flow: str = "client"  # "client" (client credentials) or "device" (device code)
    throttled_max: float | None = None


def raw_token(expires_in: str = "3600", **fields: str) -> bytes:
    """A token body with raw JSON text for some values (Infinity, 1e999, ...)."""
    parts = {"access_token": '"at"', "token_type": '"Bearer"', "expires_in": expires_in, **fields}
    return (
        "{" + ",".join(f'"{k}":{v}' for k, v in parts.items() if v != "<absent>") + "}"
    ).encode()


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


def once(endpoint: Endpoint, answer: Answer, n: int = 1) -> tuple[tuple[Endpoint, Answer, int]]:
    return ((endpoint, answer, n),)


def token(raw: bytes, status: int = 200, **headers: str) -> tuple[tuple[Endpoint, Answer, int]]:
    return once("token", Answer(status=status, body=raw, headers=dict(headers)))


DEEP_ARRAY = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 5_000 + b"1" + b"}" * 5_000
JUST_TOO_DEEP = b'{"access_token":"at","expires_in":3600,"x":' + b"[" * 40 + b"]" * 40 + b"}"
HUGE = b'{"access_token":"at","expires_in":3600,"pad":"' + b"x" * (MAX_BODY_BYTES + 10) + b'"}'
DIGITS_400 = "9" * 400
#: 16 MiB of JSON once inflated: the transport stops reading after 1 MiB.
GZIP_BOMB = gzip.compress(b'{"access_token":"' + b"a" * (16 << 20) + b'","expires_in":3600}', 9)

BAD_NUMBERS = {
    "Infinity": "Infinity",
    "-Infinity": "-Infinity",
    "NaN": "NaN",
    "1e999": "1e999",
    "-1e999": "-1e999",
    "string-1e999": '"1e999"',
    "400-digits": DIGITS_400,
    "string-400-digits": f'"{DIGITS_400}"',
    "negative": "-1",
    "zero": "0",
    "string-zero": '"0"',
    "huge-1e15": "1000000000000000",
    "true": "true",
    "null": "null",
    "list": "[3600]",
    "object": '{"s":3600}',
    "text": '"soon"',
    "string-with-unit": '"3600s"',
    "string-fraction": '"3600.5"',
    "string-hex": '"0x10"',
}

CASES: list[Case] = []
CASES += [Case(f"token-expires_in-{n}", token(raw_token(v))) for n, v in BAD_NUMBERS.items()]
for name in ("ext_expires_in", "refresh_in"):
    CASES += [
        Case(f"token-{name}-{n}", token(raw_token(**{name: v})))
        for n, v in BAD_NUMBERS.items()
        if n not in ("null", "zero", "string-zero")  # absent, as zero: no refresh hint
    ][:10]
CASES += [
    Case("token-access_token-absent", token(raw_token(access_token="<absent>"))),
    Case("token-access_token-null", token(raw_token(access_token="null"))),
    Case("token-access_token-number", token(raw_token(access_token="12345"))),
    Case("token-access_token-empty", token(raw_token(access_token='""'))),
    Case("token-access_token-list", token(raw_token(access_token='["a"]'))),
    Case("token-access_token-object", token(raw_token(access_token='{"a":1}'))),
    Case("token-access_token-true", token(raw_token(access_token="true"))),
    Case("token-token_type-object", token(raw_token(token_type='{"t":"Bearer"}'))),
    Case("token-token_type-list", token(raw_token(token_type='["Bearer"]'))),
    Case("token-token_type-number", token(raw_token(token_type="5"))),
    Case("token-token_type-true", token(raw_token(token_type="true"))),
    Case("token-scope-number", token(raw_token(scope="5"))),
    Case("token-scope-list-of-numbers", token(raw_token(scope="[1, 2]"))),
    Case("token-refresh_token-object", token(raw_token(refresh_token='{"r":1}'))),
    Case("token-foci-list", token(raw_token(foci="[1]"))),
    Case("token-id_token-number", token(raw_token(id_token="7"))),
    Case("token-body-array", token(b"[]")),
    Case("token-body-string", token(b'"at"')),
    Case("token-body-number", token(b"3600")),
    Case("token-body-null", token(b"null")),
    Case("token-body-empty", token(b"")),
    Case("token-body-whitespace", token(b"   \r\n ")),
    Case("token-body-truncated-json", token(b'{"access_token":"at","expires_in":36')),
    Case("token-body-trailing-garbage", token(raw_token() + b" trailing")),
    Case("token-body-two-documents", token(raw_token() + raw_token())),
    Case("token-body-bom", token(b"\xef\xbb\xbf" + raw_token())),
    Case("token-body-utf16", token(raw_token().decode().encode("utf-16"))),
    Case("token-body-latin1", token(b'{"access_token":"\xe9t\xe9","expires_in":3600}')),
    Case("token-body-invalid-utf8", token(b'{"access_token":"\xff\xfe","expires_in":3600}')),
    Case("token-body-lone-surrogate", token(raw_token(access_token='"a\\ud800b"'))),
    Case("token-body-nul-bytes", token(b"\x00" * 64)),
    Case("token-body-single-quotes", token(b"{'access_token':'at','expires_in':3600}")),
    Case("token-body-deep-arrays", token(DEEP_ARRAY)),
    Case("token-body-deep-objects", token(DEEP_OBJECT)),
    Case("token-body-just-too-deep", token(JUST_TOO_DEEP)),
    Case("token-body-huge", token(HUGE)),
    Case(
        "token-body-gzip-bomb", once("token", Answer(200, GZIP_BOMB, {"Content-Encoding": "gzip"}))
    ),
    Case(
        "token-body-html-200",
        once("token", Answer(200, b"<html>ok</html>", {"Content-Type": "text/html"})),
    ),
    Case(
        "token-200-invalid_grant",
        token(body({"error": "invalid_grant"})),
        MsalUiRequiredError,
        "invalid_grant",
    ),
    Case(
        "token-200-invalid_grant-with-token",
        token(body({"error": "interaction_required", **good_token()})),
        MsalUiRequiredError,
        "interaction_required",
    ),
    Case(
        "token-200-invalid_client",
        token(body({"error": "invalid_client"})),
        MsalServiceError,
        "invalid_client",
    ),
    Case("token-200-error-number", token(body({"error": 5, **good_token()}))),
    Case(
        "token-200-error-object", token(body({"error": {"code": "Unauthorized"}, **good_token()}))
    ),
    Case("token-400-deep-body", token(DEEP_ARRAY, 400)),
    Case("token-400-huge-body", token(HUGE, 400)),
    Case("token-400-error-number", token(body({"error": 123}), 400)),
    Case(
        "token-400-error_codes-1e999",
        token(b'{"error":"invalid_scope","error_codes":[1e999]}', 400),
    ),
    Case(
        "token-400-error_codes-400-digits",
        token(b'{"error":"invalid_scope","error_codes":[' + DIGITS_400.encode() + b"]}", 400),
    ),
    Case("token-400-invalid-utf8", token(b'{"error":"\xff"}', 400)),
    Case("token-401-html", once("token", Answer(401, b"<html/>", {"Content-Type": "text/html"}))),
    Case(
        "token-400-huge-description",
        token(body({"error": "invalid_request", "error_description": "d" * 500_000}), 400),
        MsalServiceError,
        "invalid_request",
    ),
    Case(
        "token-429-year-9999",
        token(
            body({"error": "throttled"}), 429, **{"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"}
        ),
        MsalThrottledError,
        "throttled",
        settle=3601,
        throttled_max=3600,
    ),
    Case(
        "token-429-garbage-retry-after",
        token(body({"error": "throttled"}), 429, **{"Retry-After": "soon-ish"}),
        MsalThrottledError,
        "throttled",
        settle=6,
        throttled_max=5,
    ),
    Case(
        "token-503-garbage-retry-after",
        token(b"", 503, **{"Retry-After": "whenever"}),
        MsalThrottledError,
        None,
        settle=6,
        throttled_max=5,
    ),
    Case(
        "token-503-1e999-retry-after",
        token(b"", 503, **{"Retry-After": "1e999"}),
        MsalThrottledError,
        None,
        settle=6,
        throttled_max=5,
    ),
    Case(
        "token-503-400-digit-retry-after",
        token(b"", 503, **{"Retry-After": DIGITS_400}),
        MsalThrottledError,
        None,
        settle=3601,
        throttled_max=3600,
    ),
    Case(
        "token-503-huge-seconds",
        token(b"", 503, **{"Retry-After": "99999999999"}),
        MsalThrottledError,
        None,
        settle=3601,
        throttled_max=3600,
    ),
    Case("token-500-twice", once("token", Answer(500, b""), 2)),
    Case("token-302-elsewhere", token(b"", 302, Location="http://127.0.0.2:9/steal")),
    Case("token-307-elsewhere", token(b"", 307, Location="http://127.0.0.2:9/steal")),
    Case(
        "token-truncated-body",
        once("token", Answer(200, raw_token()[:10], mode="truncate"), 2),
        MsalTransportError,
        None,
    ),
    Case(
        "token-stalled-body",
        once("token", Answer(200, b'{"access', mode="stall"), 2),
        MsalTransportError,
        None,
        timeout=0.5,
    ),
]

GOOD_META = {
    "issuer": "http://127.0.0.1:1/contoso/v2.0",
    "authorization_endpoint": "http://127.0.0.1:1/authorize",
    "token_endpoint": "http://127.0.0.1:1/token",
}


def meta(
    raw: bytes, status: int = 200, n: int = 1, **headers: str
) -> tuple[tuple[Endpoint, Answer, int]]:
    return once("metadata", Answer(status=status, body=raw, headers=dict(headers)), n)


def meta_with(**fields: Any) -> tuple[tuple[Endpoint, Answer, int]]:
    document = {**GOOD_META, **fields}
    return meta(body({k: v for k, v in document.items() if v is not ...}))


METADATA_CASES: list[Case] = [
    Case("metadata-not-json", meta(b"<html>")),
    Case("metadata-array", meta(b"[]")),
    Case("metadata-deep", meta(DEEP_ARRAY)),
    Case("metadata-deep-objects", meta(DEEP_OBJECT)),
    Case("metadata-huge", meta(HUGE)),
    Case("metadata-invalid-utf8", meta(b'{"issuer":"\xff"}')),
    Case("metadata-nan", meta(b'{"issuer":NaN}')),
    Case("metadata-no-token_endpoint", meta_with(token_endpoint=...)),
    Case("metadata-no-authorization_endpoint", meta_with(authorization_endpoint=...)),
    Case(
        "metadata-token_endpoint-http-remote", meta_with(token_endpoint="http://evil.example/token")
    ),
    Case("metadata-token_endpoint-ftp", meta_with(token_endpoint="ftp://127.0.0.1/token")),
    Case("metadata-token_endpoint-javascript", meta_with(token_endpoint="javascript:alert(1)")),
    Case("metadata-token_endpoint-number", meta_with(token_endpoint=5)),
    Case("metadata-token_endpoint-empty", meta_with(token_endpoint="")),
    Case("metadata-token_endpoint-userinfo", meta_with(token_endpoint="https://u:p@127.0.0.1/t")),
    Case("metadata-token_endpoint-bad-ipv6", meta_with(token_endpoint="https://[::1/token")),
    Case(
        "metadata-device-endpoint-http-remote",
        meta_with(device_authorization_endpoint="http://evil.example/d"),
    ),
    Case("metadata-jwks-number", meta_with(jwks_uri=7)),
    Case("metadata-no-issuer", meta_with(issuer=...)),
    Case("metadata-issuer-number", meta_with(issuer=42)),
    Case("metadata-issuer-http-remote", meta_with(issuer="http://evil.example/contoso")),
    Case("metadata-issuer-not-a-url", meta_with(issuer="contoso")),
    Case(
        "metadata-200-error",
        meta(body({"error": "invalid_tenant"})),
        MsalServiceError,
        "invalid_tenant",
    ),
    Case(
        "metadata-404-html", once("metadata", Answer(404, b"<x/>", {"Content-Type": "text/html"}))
    ),
    Case("metadata-500-twice", meta(b"", 500, 2)),
    Case("metadata-redirect-elsewhere", meta(b"", 302, Location="http://127.0.0.2:9/evil")),
    Case("metadata-redirect-to-https-elsewhere", meta(b"", 301, Location="https://evil.example/m")),
    Case(
        "metadata-redirect-loop",
        meta(b"", 302, 5, Location="/contoso/v2.0/.well-known/openid-configuration"),
    ),
    Case(
        "metadata-truncated",
        once("metadata", Answer(200, b'{"iss', mode="truncate"), 2),
        MsalTransportError,
        None,
    ),
    Case(
        "metadata-stalled",
        once("metadata", Answer(200, b"{", mode="stall"), 2),
        MsalTransportError,
        None,
        timeout=0.5,
    ),
    Case("oidc-metadata-not-json", meta(b"nope"), oidc=True),
    Case("oidc-metadata-deep", meta(DEEP_OBJECT), oidc=True),
    Case("oidc-metadata-issuer-http-remote", meta_with(issuer="http://evil.example/"), oidc=True),
    Case(
        "oidc-metadata-token-endpoint-ftp", meta_with(token_endpoint="ftp://127.0.0.1/t"), oidc=True
    ),
    Case(
        "oidc-metadata-redirect-elsewhere",
        meta(b"", 302, Location="http://127.0.0.2:9/x"),
        oidc=True,
    ),
]


def disco(
    raw: bytes, status: int = 200, n: int = 1, **headers: str
) -> tuple[tuple[Endpoint, Answer, int]]:
    return once("discovery", Answer(status=status, body=raw, headers=dict(headers)), n)


DISCOVERY_CASES: list[Case] = [
    Case("discovery-not-json", disco(b"<html>")),
    Case("discovery-metadata-not-list", disco(body({"metadata": {"a": 1}}))),
    Case("discovery-entry-not-object", disco(body({"metadata": [5]}))),
    Case(
        "discovery-entry-no-aliases",
        disco(body({"metadata": [{"preferred_network": "a", "preferred_cache": "a"}]})),
    ),
    Case(
        "discovery-alias-number",
        disco(
            body({"metadata": [{"preferred_network": "a", "preferred_cache": "a", "aliases": [5]}]})
        ),
    ),
    Case("discovery-deep", disco(DEEP_ARRAY)),
    Case("discovery-huge", disco(HUGE)),
    Case("discovery-invalid-utf8", disco(b'{"metadata":"\xff"}')),
    Case(
        "discovery-invalid_instance",
        disco(body({"error": "invalid_instance"}), 400),
        MsalServiceError,
        "invalid_instance",
    ),
    Case("discovery-500-twice", disco(b"", 500, 2)),
    Case("discovery-redirect-elsewhere", disco(b"", 302, Location="http://127.0.0.2:9/d")),
]


def device(raw: bytes, status: int = 200) -> tuple[tuple[Endpoint, Answer, int]]:
    return once("devicecode", Answer(status=status, body=raw))


def device_with(**raw_fields: str) -> tuple[tuple[Endpoint, Answer, int]]:
    fields = {
        "device_code": '"dc"',
        "user_code": '"UC"',
        "verification_uri": '"https://microsoft.com/devicelogin"',
        "expires_in": "900",
        **raw_fields,
    }
    text = "{" + ",".join(f'"{k}":{v}' for k, v in fields.items() if v != "<absent>") + "}"
    return device(text.encode())


DEVICE_CASES: list[Case] = [
    *(
        Case(f"device-expires_in-{n}", device_with(expires_in=v), flow="device")
        for n, v in BAD_NUMBERS.items()
        if n in ("Infinity", "NaN", "1e999", "400-digits", "negative", "zero", "huge-1e15", "text")
    ),
    Case("device-no-device_code", device_with(device_code="<absent>"), flow="device"),
    Case("device-user_code-number", device_with(user_code="5"), flow="device"),
    Case("device-not-json", device(b"<html>"), flow="device"),
    Case("device-deep", device(DEEP_OBJECT), flow="device"),
    Case(
        "device-200-error",
        device(body({"error": "invalid_client"})),
        MsalServiceError,
        "invalid_client",
        flow="device",
    ),
]

ALL_CASES = CASES + METADATA_CASES + DISCOVERY_CASES + DEVICE_CASES


def check_error(case: Case, error: BaseException) -> None:
    assert isinstance(error, case.error), f"{case.id}: {type(error).__name__}: {error}"
    if case.code is not None:
        assert isinstance(error, MsalServiceError)
        assert error.error == case.code, f"{case.id}: {error}"
    if case.throttled_max is not None:
        assert isinstance(error, MsalThrottledError)
        assert 0 < error.retry_after <= case.throttled_max
    if isinstance(error, MsalServiceError) and error.error_description:
        assert len(error.error_description) <= 2100


@pytest.mark.parametrize("case", ALL_CASES, ids=[c.id for c in ALL_CASES])
async def test_hostile_answer_is_a_typed_error_and_nothing_is_cached(case: Case) -> None:
    clock = VirtualClock(START)
    async with HostileAuthority() as hostile:
        for endpoint, answer, n in case.script:
            hostile.script(endpoint, answer, n)
        where = (
            {"oidc_authority": f"{hostile.base_url}/oidc"}
            if case.oidc
            else {"authority": hostile.authority("contoso")}
        )
        app: ConfidentialClientApplication | PublicClientApplication
        if case.flow == "device":
            app = PublicClientApplication(CLIENT, clock=clock, timeout=case.timeout, **where)  # type: ignore[arg-type]
        else:
            app = ConfidentialClientApplication(
                CLIENT,
                client_credential=SECRET,
                clock=clock,
                timeout=case.timeout,
                **where,  # type: ignore[arg-type]
            )
        async with app:

            async def call() -> object:
                if isinstance(app, PublicClientApplication):
                    return await app.initiate_device_flow(["User.Read"])
                return await app.acquire_token_for_client(SCOPES)

            with anyio.fail_after(BOUND):
                with pytest.raises(MsalError) as caught:
                    await drive(clock, call())
            check_error(case, caught.value)
            assert app.statistics().cached_tokens == 0
            # Nothing reached another origin: no token request left with a secret to it.
            assert all(form.get("client_secret") in (None, SECRET) for form in hostile.token_forms)

            hostile.clear()
            await clock.advance(case.settle)
            before = hostile.requests.copy()
            with anyio.fail_after(BOUND):
                good = await drive(clock, call())
            if case.flow == "device":
                assert hostile.requests["devicecode"] == before["devicecode"] + 1
            else:
                assert getattr(good, "token_source", None) == "identity_provider"
                assert getattr(good, "access_token", None) == "good-access-token"
                assert hostile.requests["token"] == before["token"] + 1
            failed_at = case.script[0][0]
            if failed_at in ("metadata", "discovery"):
                assert hostile.requests[failed_at] == before[failed_at] + 1


async def test_a_cross_origin_redirect_sends_no_secret_to_the_other_origin() -> None:
    """The metadata GET is redirected to another server whose metadata names its own
    token endpoint: aiomsal follows no such redirect, so that server sees nothing."""
    clock = VirtualClock(START)
    async with HostileAuthority() as good, HostileAuthority() as evil:
        good.script(
            "metadata",
            Answer(
                302,
                headers={
                    "Location": f"{evil.base_url}/contoso/v2.0/.well-known/openid-configuration"
                },
            ),
        )
        async with ConfidentialClientApplication(
            CLIENT, client_credential=SECRET, authority=good.authority(), clock=clock
        ) as app:
            with pytest.raises(MsalServiceError) as caught:
                await app.acquire_token_for_client(SCOPES)
        assert caught.value.error == "invalid_response"
        assert "redirect" in str(caught.value)
        assert evil.requests == {}
        assert evil.token_forms == []


async def test_an_https_metadata_redirect_to_http_is_not_followed() -> None:
    """https -> http on the same host and port is another origin: refused, nothing sent."""
    clock = VirtualClock(START)
    async with HostileAuthority(tls=True) as hostile, HostileAuthority() as plain:
        insecure = hostile.base_url.replace("https://", "http://")
        hostile.script("metadata", Answer(302, headers={"Location": f"{insecure}/x"}))
        hostile.script("metadata", Answer(302, headers={"Location": f"{plain.base_url}/x"}))
        assert hostile.client_ssl is not None
        async with ConfidentialClientApplication(
            CLIENT,
            client_credential=SECRET,
            authority=hostile.authority(),
            clock=clock,
            verify=hostile.client_ssl,
        ) as app:
            for _ in range(2):
                with pytest.raises(MsalServiceError, match="redirect") as caught:
                    await app.acquire_token_for_client(SCOPES)
                assert caught.value.error == "invalid_response"
            assert hostile.requests["metadata"] == 2
            assert hostile.requests["token"] == 0
            assert plain.requests == {}
            result = await app.acquire_token_for_client(SCOPES)  # the next good answer
            assert result.access_token == "good-access-token"


async def test_a_same_origin_metadata_redirect_is_followed() -> None:
    clock = VirtualClock(START)
    async with HostileAuthority() as hostile:
        hostile.script(
            "metadata",
            Answer(301, headers={"Location": "/moved/v2.0/.well-known/openid-configuration"}),
        )
        async with ConfidentialClientApplication(
            CLIENT, client_credential=SECRET, authority=hostile.authority(), clock=clock
        ) as app:
            result = await app.acquire_token_for_client(SCOPES)
        assert result.access_token == "good-access-token"
        assert hostile.requests["metadata"] == 2
        assert hostile.requests["token"] == 1


# -- ID tokens and client_info, through a user flow of FakeAuthority ------------------------


NONE_HEADER = b'{"alg":"none"}'


def jwt_with(payload: bytes) -> str:
    """An unsigned JWT with exactly ``payload`` (aiomsal reads ID tokens from TLS unverified)."""
    return f"{b64json(NONE_HEADER)}.{b64json(payload)}.c2ln"


def claims(**raw: str) -> bytes:
    fields = {
        "aud": f'"{CLIENT}"',
        "iss": '"https://login.example/contoso/v2.0"',
        "sub": '"alice-sub"',
        "exp": str(int(START) + 3600),
        "iat": str(int(START)),
        **raw,
    }
    return (
        "{" + ",".join(f'"{k}":{v}' for k, v in fields.items() if v != "<absent>") + "}"
    ).encode()


def b64json(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class UserCase:
    id: str
    patch: dict[str, Any] = field(default_factory=dict)
    error: type[MsalError] = MsalServiceError
    code: str | None = "invalid_response"


USER_CASES: list[UserCase] = [
    UserCase("id_token-garbage", {"id_token": "garbage"}),
    UserCase("id_token-two-segments", {"id_token": "a.b"}),
    UserCase("id_token-payload-not-base64-json", {"id_token": "a.!!!!.c"}),
    UserCase("id_token-payload-array", {"id_token": jwt_with(b"[1,2]")}),
    UserCase("id_token-payload-invalid-utf8", {"id_token": jwt_with(b'{"sub":"\xff"}')}),
    UserCase("id_token-payload-deep", {"id_token": jwt_with(DEEP_OBJECT)}),
    UserCase("id_token-payload-non-ascii-segment", {"id_token": "a.\u00e9\u00e9.c"}),
    UserCase("id_token-exp-Infinity", {"id_token": jwt_with(claims(exp="Infinity"))}),
    UserCase("id_token-exp-NaN", {"id_token": jwt_with(claims(exp="NaN"))}),
    UserCase("id_token-exp-1e999", {"id_token": jwt_with(claims(exp="1e999"))}),
    UserCase("id_token-exp-400-digits", {"id_token": jwt_with(claims(exp=DIGITS_400))}),
    UserCase("id_token-exp-string", {"id_token": jwt_with(claims(exp='"NaN"'))}),
    UserCase("id_token-exp-true", {"id_token": jwt_with(claims(exp="true"))}),
    UserCase("id_token-iat-string", {"id_token": jwt_with(claims(iat='"yesterday"'))}),
    UserCase("id_token-nbf-NaN", {"id_token": jwt_with(claims(nbf="NaN"))}),
    UserCase("id_token-nbf-object", {"id_token": jwt_with(claims(nbf='{"t":1}'))}),
    UserCase(
        "id_token-exp-absent", {"id_token": jwt_with(claims(exp="<absent>"))}, MsalSignInError, None
    ),
    UserCase(
        "id_token-expired",
        {"id_token": jwt_with(claims(exp=str(int(START) - 86400)))},
        MsalSignInError,
        None,
    ),
    UserCase(
        "id_token-other-audience",
        {"id_token": jwt_with(claims(aud='"someone-else"'))},
        MsalSignInError,
        None,
    ),
    UserCase("id_token-number", {"id_token": 12}),
    UserCase("client_info-garbage", {"client_info": "!!not base64!!"}),
    UserCase("client_info-array", {"client_info": b64json(b"[]")}),
    UserCase("client_info-uid-number", {"client_info": b64json(b'{"uid":5,"utid":"t"}')}),
    UserCase("client_info-no-utid", {"client_info": b64json(b'{"uid":"u"}')}),
    UserCase("client_info-deep", {"client_info": b64json(DEEP_OBJECT)}),
    UserCase("client_info-invalid-utf8", {"client_info": b64json(b'{"uid":"\xff","utid":"t"}')}),
    UserCase("client_info-nan", {"client_info": b64json(b'{"uid":NaN,"utid":"t"}')}),
    UserCase("client_info-object", {"client_info": {"uid": "u", "utid": "t"}}),
    UserCase(
        "user-200-invalid_grant", {"error": "invalid_grant"}, MsalUiRequiredError, "invalid_grant"
    ),
    UserCase("user-expires_in-Infinity", {"expires_in": float("inf")}),
    UserCase("user-expires_in-negative", {"expires_in": -3600}),
    UserCase("user-refresh_token-list", {"refresh_token": ["r"]}),
]


@pytest.mark.parametrize("case", USER_CASES, ids=[c.id for c in USER_CASES])
async def test_bad_id_token_or_client_info_is_a_typed_error_and_nothing_is_cached(
    case: UserCase,
) -> None:
    clock = VirtualClock(START)
    async with FakeAuthority(clock=clock) as fake:
        fake.add_client(CLIENT)
        fake.add_user(ALICE, password="alice-pw", tenant="contoso")
        async with PublicClientApplication(
            CLIENT, authority=fake.authority("contoso"), clock=clock
        ) as app:
            fake.fail_next(fault="patch", patch=case.patch)
            with anyio.fail_after(BOUND), pytest.raises(MsalError) as caught:
                await app.acquire_token_by_username_password(ALICE, "alice-pw", ["User.Read"])
            error = caught.value
            assert isinstance(error, case.error), f"{type(error).__name__}: {error}"
            if case.code is not None:
                assert isinstance(error, MsalServiceError) and error.error == case.code
            assert app.statistics().cached_tokens == 0
            assert await app.get_accounts() == []
            sent = len(fake.token_requests)
            good = await app.acquire_token_by_username_password(ALICE, "alice-pw", ["User.Read"])
            assert good.token_source == "identity_provider"
            assert len(fake.token_requests) == sent + 1
            assert [a.username for a in await app.get_accounts()] == [ALICE]


def test_the_table_is_large_enough() -> None:
    assert len(ALL_CASES) + len(USER_CASES) >= 100
    ids = [c.id for c in ALL_CASES] + [c.id for c in USER_CASES]
    assert len(ids) == len(set(ids))
