from __future__ import annotations

import json
from typing import Any

import pytest

from aiomsal._errors import (
    MsalConfigurationError,
    MsalServiceError,
    MsalThrottledError,
    MsalUiRequiredError,
)
from aiomsal._protocol._device_flow import (
    DEVICE_CODE_GRANT,
    DeviceFlow,
    build_device_code_request,
    build_device_token_request,
    classify_poll_error,
    next_interval,
    parse_device_code_response,
)
from aiomsal._protocol._http import HttpResponse

NOW = 1_700_000_000.0
SCOPES = ("User.Read",)
DEVICE_CODE = "DAQABAAEAAAD--secret-device-code"
ENTRA_BODY = {
    "user_code": "GQ7XPRJ9B",
    "device_code": DEVICE_CODE,
    "verification_uri": "https://microsoft.com/devicelogin",
    "expires_in": 900,
    "interval": 5,
    "message": "To sign in, use a web browser to open the page "
    "https://microsoft.com/devicelogin and enter the code GQ7XPRJ9B to authenticate.",
}


def response(body: Any, status: int = 200, **headers: str) -> HttpResponse:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return HttpResponse(status, {"content-type": "application/json", **headers}, raw)


def parse(body: Any, status: int = 200, **headers: str) -> DeviceFlow:
    return parse_device_code_response(
        response(body, status, **headers), now=NOW, scopes=SCOPES, claims=None
    )


# -- requests ---------------------------------------------------------------------------


def test_device_code_request() -> None:
    request = build_device_code_request(
        "https://login.microsoftonline.com/common/oauth2/v2.0/devicecode",
        client_id="cid",
        scopes=["User.Read", "openid", "profile", "offline_access"],
        claims='{"access_token":{}}',
        client_auth={"client_secret": "s3cr3t"},
    )
    assert request.method == "POST"
    assert request.url.endswith("/devicecode")
    assert request.form == {
        "client_id": "cid",
        "scope": "User.Read openid profile offline_access",
        "claims": '{"access_token":{}}',
        "client_secret": "s3cr3t",
    }
    assert "s3cr3t" not in repr(request)


def test_device_code_request_minimal() -> None:
    request = build_device_code_request("https://x/devicecode", client_id="cid", scopes=["a"])
    assert request.form == {"client_id": "cid", "scope": "a"}


def test_device_token_request_is_never_throttle_remembered() -> None:
    flow = parse(ENTRA_BODY)
    request = build_device_token_request("https://x/token", flow, client_id="cid")
    assert request.method == "POST"
    assert request.url == "https://x/token"
    assert request.throttle is False
    assert request.form == {
        "grant_type": DEVICE_CODE_GRANT,
        "device_code": DEVICE_CODE,
        "client_id": "cid",
        "client_info": "1",
    }
    assert DEVICE_CODE not in repr(request)


def test_device_token_request_with_claims_and_client_auth() -> None:
    flow = parse_device_code_response(
        response(ENTRA_BODY), now=NOW, scopes=SCOPES, claims='{"x":1}'
    )
    request = build_device_token_request(
        "https://x/token", flow, client_id="cid", client_auth={"client_assertion": "jwt"}
    )
    assert request.form is not None
    assert request.form["claims"] == '{"x":1}'
    assert request.form["client_assertion"] == "jwt"


# -- parse_device_code_response ---------------------------------------------------------


def test_parse_entra_response() -> None:
    flow = parse(ENTRA_BODY)
    assert flow.user_code == "GQ7XPRJ9B"
    assert flow.device_code == DEVICE_CODE
    assert flow.verification_uri == "https://microsoft.com/devicelogin"
    assert flow.message == ENTRA_BODY["message"]
    assert flow.expires_at == NOW + 900
    assert flow.expires_in == 900
    assert flow.interval == 5.0
    assert flow.scopes == SCOPES
    assert flow.claims is None


def test_device_code_not_in_repr() -> None:
    flow = parse(ENTRA_BODY)
    assert DEVICE_CODE not in repr(flow)
    assert "GQ7XPRJ9B" in repr(flow)


def test_parse_older_and_looser_responses() -> None:
    body = {
        "user_code": "U",
        "device_code": "D",
        "verification_url": "https://old.example/device",
        "expires_in": "600",
        "interval": "10",
    }
    flow = parse(body)
    assert flow.verification_uri == "https://old.example/device"
    assert flow.expires_at == NOW + 600
    assert flow.interval == 10.0
    assert "https://old.example/device" in flow.message
    assert "U" in flow.message


@pytest.mark.parametrize("interval", [None, 0, -3, "soon"])
def test_parse_defaults_interval_to_five(interval: Any) -> None:
    body = dict(ENTRA_BODY, interval=interval)
    if interval is None:
        del body["interval"]
    assert parse(body).interval == 5.0


def test_parse_error_status() -> None:
    body = {
        "error": "invalid_client",
        "error_description": "AADSTS7000218: client_assertion or client_secret required",
        "error_codes": [7000218],
    }
    with pytest.raises(MsalServiceError) as caught:
        parse(body, 401, **{"client-request-id": "corr"})
    assert caught.value.error == "invalid_client"
    assert caught.value.error_codes == (7000218,)
    assert caught.value.status == 401
    assert caught.value.correlation_id == "corr"


def test_parse_invalid_grant_is_ui_required() -> None:
    with pytest.raises(MsalUiRequiredError):
        parse({"error": "invalid_grant"}, 400)


def test_parse_throttled() -> None:
    with pytest.raises(MsalThrottledError) as caught:
        parse({"error": "too_many"}, 429, **{"retry-after": "30"})
    assert caught.value.retry_after == 30


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        [1, 2],
        {key: value for key, value in ENTRA_BODY.items() if key != "device_code"},
        {key: value for key, value in ENTRA_BODY.items() if key != "user_code"},
        {key: value for key, value in ENTRA_BODY.items() if key != "verification_uri"},
        {key: value for key, value in ENTRA_BODY.items() if key != "expires_in"},
        dict(ENTRA_BODY, expires_in=0),
        dict(ENTRA_BODY, expires_in="never"),
        dict(ENTRA_BODY, device_code=42),
    ],
)
def test_parse_invalid_response(body: Any) -> None:
    with pytest.raises(MsalServiceError) as caught:
        parse(body)
    assert caught.value.error == "invalid_response"
    assert DEVICE_CODE not in str(caught.value)


# -- flow dicts -------------------------------------------------------------------------


def test_dict_round_trip_through_json() -> None:
    flow = parse_device_code_response(
        response(ENTRA_BODY), now=NOW, scopes=SCOPES, claims='{"x":1}'
    )
    data = json.loads(json.dumps(flow.to_dict()))
    for key in ("user_code", "device_code", "verification_uri", "expires_in", "message"):
        assert data[key] == ENTRA_BODY[key]
    assert data["expires_at"] == NOW + 900
    assert data["interval"] == 5
    assert isinstance(data["interval"], int)  # MSAL counts it with range()
    assert DeviceFlow.from_dict(data) == flow


def test_dict_keeps_fractional_interval() -> None:
    flow = parse(ENTRA_BODY)
    slower = DeviceFlow.from_dict(dict(flow.to_dict(), interval=2.5))
    assert slower.interval == 2.5
    assert slower.to_dict()["interval"] == 2.5


def test_loads_msal_device_flow_dict() -> None:
    # What msal's initiate_device_flow returns: the raw response, with interval and
    # expires_in made ints, expires_at added, and a correlation id; no scopes.
    data = dict(
        ENTRA_BODY,
        interval=5,
        expires_in=900,
        expires_at=NOW + 900,
        _correlation_id="corr",
    )
    flow = DeviceFlow.from_dict(data, scopes=["User.Read"])
    assert flow == parse(ENTRA_BODY)
    with pytest.raises(MsalConfigurationError, match="scopes"):
        DeviceFlow.from_dict(data)


def test_loads_msal_dict_with_verification_url_and_claims() -> None:
    data = dict(ENTRA_BODY, expires_at=NOW + 900)
    data["verification_url"] = data.pop("verification_uri")
    del data["message"]
    flow = DeviceFlow.from_dict(data, scopes=SCOPES, claims='{"x":1}')
    assert flow.verification_uri == ENTRA_BODY["verification_uri"]
    assert flow.claims == '{"x":1}'
    assert "GQ7XPRJ9B" in flow.message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("device_code", None),
        ("user_code", ""),
        ("verification_uri", None),
        ("expires_at", None),
        ("expires_at", "soon"),
        ("interval", 0),
        ("interval", "5"),
        ("scope", "User.Read"),
        ("claims_challenge", 5),
    ],
)
def test_from_dict_rejects_missing_or_mistyped(key: str, value: Any) -> None:
    data = parse(ENTRA_BODY).to_dict()
    if value is None:
        del data[key]
    else:
        data[key] = value
    with pytest.raises(MsalConfigurationError):
        DeviceFlow.from_dict(data)


def test_from_dict_rejects_non_mapping() -> None:
    with pytest.raises(MsalConfigurationError):
        DeviceFlow.from_dict("flow", scopes=SCOPES)  # type: ignore[arg-type]


# -- polling ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        ("authorization_pending", "pending"),
        ("slow_down", "slow_down"),
        ("expired_token", None),
        ("authorization_declined", None),
        ("bad_verification_code", None),
        ("access_denied", None),
        ("invalid_grant", None),
    ],
)
def test_classify_poll_error(error: str, outcome: str | None) -> None:
    assert classify_poll_error(MsalServiceError(error, status=400)) == outcome


def test_next_interval() -> None:
    assert next_interval(5.0, "pending") == 5.0
    assert next_interval(5.0, "slow_down") == 10.0
    assert next_interval(next_interval(5.0, "slow_down"), "slow_down") == 15.0
