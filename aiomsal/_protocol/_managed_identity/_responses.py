"""Reading each managed identity source's answer: tokens, errors and Arc's challenge (sans-I/O).

Every success is normalised to a :class:`TokenResponse` with ``expires_in``:
sources send ``expires_in`` (a number or numeric string) or ``expires_on`` as
an epoch number, an epoch string or (legacy App Service, Azure ML) a date
string. Errors come flat (``error``/``error_description``), nested
(``{"error": {"code", "message"}}``: Service Fabric, Cloud Shell) or as
``statusCode``/``message`` (App Service).
"""

from __future__ import annotations

import datetime
import ntpath
import posixpath
from typing import Any

from ..._errors import MsalServiceError, MsalThrottledError
from .._error_response import DEFAULT_THROTTLE_SECONDS, decode_json_object, optional_str
from .._http import HttpResponse
from .._throttling import parse_retry_after
from .._token_response import TokenResponse
from ._ids import ManagedIdentity, UserAssignedManagedIdentity
from ._sources import SourceKind

__all__ = [
    "ARC_MAX_KEY_BYTES",
    "arc_key_path",
    "expires_in_from",
    "parse_managed_identity_response",
]

#: The largest Arc key file read (bytes), as every MSAL checks.
ARC_MAX_KEY_BYTES = 4096
#: The longest lifetime believed (seconds); managed identity tokens live about a day.
MAX_LIFETIME = 366 * 86_400
#: Numbers below this (2001-01-01) are a relative lifetime, larger ones an epoch (MSAL.NET's rule).
_EPOCH_THRESHOLD = 978_307_200
_DATE_FORMATS = ("%m/%d/%Y %H:%M:%S %z", "%m/%d/%Y %I:%M:%S %p %z")
#: Which fields an Arc answer may echo the user-assigned identity in, per kind.
_ECHO_FIELDS = {
    "client_id": ("client_id",),
    "object_id": ("object_id",),
    "resource_id": ("msi_res_id", "mi_res_id"),
}


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if number == number and abs(number) != float("inf") else None
    return None


def _date(value: str) -> float | None:
    text = value.strip()
    for fmt in _DATE_FORMATS:
        try:
            return datetime.datetime.strptime(text, fmt).timestamp()
        except ValueError:
            continue
    return None


def expires_in_from(body: dict[str, Any], now: float) -> int | None:
    """Seconds the token lives from ``now``, from ``expires_in`` or ``expires_on``."""
    expires_in = _number(body.get("expires_in"))
    if expires_in is not None:
        return int(expires_in)
    raw = body.get("expires_on")
    number = _number(raw)
    if number is not None:
        return int(number) if number < _EPOCH_THRESHOLD else int(number - now)
    if isinstance(raw, str):
        moment = _date(raw)
        if moment is not None:
            return int(moment - now)
    return None


def _error(
    source: SourceKind, response: HttpResponse, body: dict[str, Any] | None, now: float
) -> MsalServiceError:
    error = description = None
    if body is not None:
        nested = body.get("error")
        if isinstance(nested, dict):
            error = optional_str(nested.get("code"))
            description = optional_str(nested.get("message"))
        else:
            error = optional_str(nested) or optional_str(body.get("code"))
            description = optional_str(body.get("error_description")) or optional_str(
                body.get("message")
            )
    if error is None:
        error = "managed_identity_error"
    if description is None:
        description = f"the {source} managed identity endpoint answered HTTP {response.status}"
    retry_after = parse_retry_after(response.headers.get("retry-after"), now)
    if response.status == 429 or (response.status >= 500 and retry_after is not None):
        return MsalThrottledError(
            error,
            description,
            retry_after=retry_after if retry_after is not None else DEFAULT_THROTTLE_SECONDS,
            status=response.status,
        )
    return MsalServiceError(error, description, status=response.status)


def parse_managed_identity_response(
    source: SourceKind,
    response: HttpResponse,
    now: float,
    identity: ManagedIdentity,
) -> TokenResponse:
    """The token of a 2xx answer from ``source``, or raise the error it carries."""
    body = decode_json_object(response)
    if not 200 <= response.status < 300:
        raise _error(source, response, body, now)
    if body is None:
        raise MsalServiceError(
            "invalid_response",
            f"the {source} managed identity endpoint answered with a body that is not JSON",
            status=response.status,
        )
    token = body.get("access_token")
    expires_in = expires_in_from(body, now)
    if not isinstance(token, str) or not token or expires_in is None:
        raise MsalServiceError(
            "invalid_response",
            f"the {source} managed identity answer lacks an access_token or a readable expiry",
            status=response.status,
        )
    if expires_in <= 0 or expires_in > MAX_LIFETIME:
        raise MsalServiceError(
            "invalid_response",
            f"the {source} managed identity answer holds a token that has already expired "
            "or claims an implausible lifetime",
            status=response.status,
        )
    if source == "azure_arc" and isinstance(identity, UserAssignedManagedIdentity):
        _check_echo(body, identity)
    refresh_in = _number(body.get("refresh_in"))
    return TokenResponse(
        access_token=token,
        token_type=str(body.get("token_type") or "Bearer"),
        expires_in=expires_in,
        ext_expires_in=None,
        refresh_in=int(refresh_in) if refresh_in is not None and refresh_in > 0 else None,
        scope=None,
    )


def _check_echo(body: dict[str, Any], identity: UserAssignedManagedIdentity) -> None:
    """Fail closed unless Arc's answer names the user-assigned identity that was asked for."""
    wanted = identity.value.lower()
    for name in _ECHO_FIELDS[identity.kind]:
        echoed = body.get(name)
        if isinstance(echoed, str) and echoed.lower() == wanted:
            return
    raise MsalServiceError(
        "invalid_response",
        "the Azure Arc agent did not confirm the user-assigned identity that was requested "
        "(an agent without user-assigned support answers with the system-assigned identity)",
    )


def arc_key_path(response: HttpResponse, key_directory: str, *, windows: bool = False) -> str:
    """The key file Arc's 401 challenge names, after checking it lies where it must.

    The header is ``WWW-Authenticate: Basic realm=<path>``; the path must be a
    ``.key`` file directly in the agent's token directory. The file's size is
    for the caller to check (at most :data:`ARC_MAX_KEY_BYTES`) before reading.
    """
    header = response.headers.get("www-authenticate", "")
    scheme, sep, path = header.partition("=")
    if not sep or scheme.strip().lower() != "basic realm" or not path.strip():
        raise MsalServiceError(
            "invalid_response",
            "the Azure Arc challenge lacks a 'Basic realm=<key file>' WWW-Authenticate header",
            status=response.status,
        )
    flavour = ntpath if windows else posixpath
    normalized = flavour.normpath(path.strip())
    name = flavour.basename(normalized)
    directory = flavour.normcase(flavour.normpath(key_directory))
    if (
        flavour.normcase(flavour.dirname(normalized)) != directory
        or not name.endswith(".key")
        or len(name) <= len(".key")
    ):
        raise MsalServiceError(
            "invalid_response",
            "the Azure Arc challenge names a key file outside the agent's token directory "
            "or without the .key extension",
            status=response.status,
        )
    return str(flavour.join(key_directory, name))
