"""The device authorization grant, RFC 8628 (sans-I/O).

:func:`build_device_code_request` asks for a user code;
:func:`parse_device_code_response` reads the answer into a :class:`DeviceFlow`
to show the user; :func:`build_device_token_request` is then sent every
``interval`` seconds until the user has signed in. :func:`classify_poll_error`
tells the errors that mean "keep polling" from those that end the flow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .._errors import MsalConfigurationError, MsalServiceError
from ._error_response import (
    decode_json_object,
    invalid_response,
    parse_error_response,
    service_error_from_body,
)
from ._http import HttpRequest, HttpResponse
from ._json import json_seconds

__all__ = [
    "DEFAULT_INTERVAL",
    "DEVICE_CODE_GRANT",
    "DeviceFlow",
    "PollOutcome",
    "build_device_code_request",
    "build_device_token_request",
    "classify_poll_error",
    "next_interval",
    "parse_device_code_response",
]

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
#: Seconds between polls when the authority does not say (RFC 8628 §3.2).
DEFAULT_INTERVAL = 5.0
#: Seconds added to the interval on each ``slow_down`` (RFC 8628 §3.5).
SLOW_DOWN_STEP = 5.0
#: The longest life of a device code accepted from an authority (Entra's is 15 minutes).
MAX_DEVICE_CODE_SECONDS = 24 * 3600

PollOutcome = Literal["pending", "slow_down"]


@dataclass(frozen=True, slots=True)
class DeviceFlow:
    """A device code sign-in in progress; the device code never appears in the repr.

    ``expires_at`` is in epoch seconds of the clock given to the parser.
    ``scopes`` and ``claims`` are those of the request, kept for the token
    request and the cache (MSAL's flow dict has no place for them).
    """

    user_code: str
    verification_uri: str
    #: Instructions for the user, as the authority phrased them.
    message: str
    expires_at: float
    interval: float
    scopes: tuple[str, ...]
    device_code: str = field(repr=False)
    claims: str | None = None
    #: The lifetime the authority gave the device code, in seconds.
    expires_in: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """MSAL's device flow dict (JSON-serializable), plus ``scope`` and ``claims_challenge``.

        It holds the device code, a secret: keep it server-side.
        """
        data: dict[str, Any] = {
            "user_code": self.user_code,
            "device_code": self.device_code,
            "verification_uri": self.verification_uri,
            "expires_at": self.expires_at,
            # MSAL counts the interval with range(): keep it an int when it is one.
            "interval": int(self.interval) if float(self.interval).is_integer() else self.interval,
            "message": self.message,
            "scope": list(self.scopes),
            "claims_challenge": self.claims,
        }
        if self.expires_in is not None:
            data["expires_in"] = self.expires_in
        return data

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        scopes: Sequence[str] | None = None,
        claims: str | None = None,
    ) -> DeviceFlow:
        """Load a dict written by :meth:`to_dict` or by MSAL's ``initiate_device_flow``.

        MSAL's dict does not record the scopes: pass them as ``scopes`` (a
        ``scope`` key in ``data`` wins). A missing or mistyped key raises
        :class:`MsalConfigurationError`.
        """
        if not isinstance(data, Mapping):
            raise MsalConfigurationError("a device flow must be a mapping")
        scope = data.get("scope", scopes)
        if not isinstance(scope, (list, tuple)) or not all(isinstance(s, str) for s in scope):
            raise MsalConfigurationError(
                "the device flow's scopes are unknown: pass scopes= or a 'scope' list"
            )
        flow_claims = data.get("claims_challenge", claims)
        if flow_claims is not None and not isinstance(flow_claims, str):
            raise MsalConfigurationError("the device flow's 'claims_challenge' must be a string")
        expires_in = _seconds(data.get("expires_in"))
        interval = _number(data.get("interval", DEFAULT_INTERVAL))
        if interval is None or interval <= 0:
            raise MsalConfigurationError("the device flow's 'interval' must be a positive number")
        expires_at = _number(data.get("expires_at"))
        if expires_at is None:
            raise MsalConfigurationError("the device flow's 'expires_at' must be a number")
        user_code = _required_str(data, "user_code")
        # Entra's older name, found in dicts of responses that used it.
        verification_uri = _optional_str(data, "verification_uri") or _optional_str(
            data, "verification_url"
        )
        if verification_uri is None:
            raise MsalConfigurationError(
                "the device flow's 'verification_uri' must be a non-empty string"
            )
        return cls(
            user_code=user_code,
            verification_uri=verification_uri,
            message=_optional_str(data, "message") or _default_message(verification_uri, user_code),
            expires_at=expires_at,
            interval=interval,
            scopes=tuple(scope),
            device_code=_required_str(data, "device_code"),
            claims=flow_claims or None,
            expires_in=expires_in,
        )


def build_device_code_request(
    device_authorization_endpoint: str,
    *,
    client_id: str,
    scopes: Sequence[str],
    claims: str | None = None,
    client_auth: Mapping[str, str] | None = None,
) -> HttpRequest:
    """The request for a device code and user code (RFC 8628 §3.1)."""
    form = {"client_id": client_id, "scope": " ".join(scopes)}
    if claims:
        form["claims"] = claims
    if client_auth:
        form.update(client_auth)
    return HttpRequest("POST", device_authorization_endpoint, form=form)


def parse_device_code_response(
    response: HttpResponse,
    *,
    now: float,
    scopes: tuple[str, ...],
    claims: str | None = None,
) -> DeviceFlow:
    """The flow a device authorization answer starts, or the error it carries.

    Accepts Entra's older ``verification_url`` for ``verification_uri`` and
    numeric strings for the numbers; ``interval`` defaults to 5 seconds. A
    2xx answer with an ``error`` is that error; an ``expires_in`` that is not
    a positive number of seconds up to a day is ``invalid_response``; an
    ``interval`` that is not a positive number of seconds up to ``expires_in``
    is taken as the default.
    """
    if not 200 <= response.status < 300:
        raise parse_error_response(response, now)
    body = decode_json_object(response)
    if body is None:
        raise _invalid(response, "is not a JSON object")
    if body.get("error") is not None:
        raise service_error_from_body(
            body, response.status, correlation_id=response.headers.get("client-request-id")
        )
    device_code = _optional_str(body, "device_code")
    user_code = _optional_str(body, "user_code")
    uri = _optional_str(body, "verification_uri") or _optional_str(body, "verification_url")
    if device_code is None or user_code is None or uri is None:
        raise _invalid(response, "lacks a device_code, user_code or verification_uri")
    expires_in = json_seconds(body.get("expires_in"), maximum=MAX_DEVICE_CODE_SECONDS)
    if expires_in is None:
        raise _invalid(response, "lacks a positive expires_in of at most a day")
    # A missing or unusable interval (zero, negative, longer than the code lives) is 5 s.
    interval = json_seconds(body.get("interval"), maximum=expires_in)
    return DeviceFlow(
        user_code=user_code,
        verification_uri=uri,
        message=_optional_str(body, "message") or _default_message(uri, user_code),
        expires_at=now + expires_in,
        interval=float(interval) if interval is not None else DEFAULT_INTERVAL,
        scopes=scopes,
        device_code=device_code,
        claims=claims or None,
        expires_in=expires_in,
    )


def build_device_token_request(
    token_endpoint: str,
    flow: DeviceFlow,
    *,
    client_id: str,
    client_auth: Mapping[str, str] | None = None,
) -> HttpRequest:
    """One poll of the token endpoint (RFC 8628 §3.4).

    ``throttle`` is off: an ``authorization_pending`` answer must never be
    remembered, or the next poll would be answered without being sent.
    """
    form = {
        "grant_type": DEVICE_CODE_GRANT,
        "device_code": flow.device_code,
        "client_id": client_id,
        # As every user grant asks: the account's home ids (uid.utid).
        "client_info": "1",
    }
    if flow.claims:
        form["claims"] = flow.claims
    if client_auth:
        form.update(client_auth)
    # Resendable: until the user has signed in a poll changes nothing, and once the code
    # is spent a resend can only fail as the lost answer's absence would anyway.
    return HttpRequest("POST", token_endpoint, form=form, throttle=False)


def classify_poll_error(error: MsalServiceError) -> PollOutcome | None:
    """``"pending"`` or ``"slow_down"`` when polling goes on; ``None`` when the error ends it.

    ``expired_token``, ``authorization_declined``, ``bad_verification_code``,
    ``access_denied`` and every other error end the flow: re-raise them.
    """
    if error.error == "authorization_pending":
        return "pending"
    if error.error == "slow_down":
        return "slow_down"
    return None


def next_interval(interval: float, outcome: PollOutcome) -> float:
    """The wait before the next poll: 5 seconds longer after ``slow_down`` (RFC 8628 §3.5)."""
    return interval + SLOW_DOWN_STEP if outcome == "slow_down" else interval


def _default_message(uri: str, user_code: str) -> str:
    return f"To sign in, open {uri} in a web browser and enter the code {user_code}."


def _invalid(response: HttpResponse, problem: str) -> MsalServiceError:
    return invalid_response(response, f"the device authorization response {problem}")


def _seconds(value: object) -> int | None:
    """A whole number of seconds from a number or a numeric string (as some IdPs send)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (str, int, float)):
        try:
            return int(float(value))
        except (ValueError, OverflowError):  # not numeric, NaN or infinite
            return None
    return None


def _number(value: object) -> float | None:
    """A finite number as a float; None for anything else (NaN, infinities, 400 digits)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            return None
        return number if math.isfinite(number) else None
    return None


def _required_str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise MsalConfigurationError(f"the device flow's {key!r} must be a non-empty string")
    return value


def _optional_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) and value else None
