"""MSAL's dicts from aiomsal's typed values: results, errors, and MSAL's own refusals."""

from __future__ import annotations

import platform
import sys
from typing import Any

from .._errors import MsalConfigurationError, MsalServiceError, MsalSignInError

__all__ = [
    "AUTH_SCHEME_UNSUPPORTED",
    "AuthResponseError",
    "BrokerUnavailableError",
    "broker_requested",
    "error_dict",
    "silent_error_dict",
    "unsupported",
]

#: What MSAL raises for ``auth_scheme=`` (Proof-of-Possession) without a broker.
AUTH_SCHEME_UNSUPPORTED = (
    "auth_scheme is currently only available from broker. "
    "You can enable broker by following these instructions. "
    "https://msal-python.readthedocs.io/en/latest/#publicclientapplication"
)

#: Sub-errors MSAL's silent calls report with an empty ``classification``.
_QUIET_SUBERRORS = frozenset(
    {
        "bad_token",
        "token_expired",
        "protection_policy_required",
        "client_mismatch",
        "device_authentication_failed",
    }
)


class AuthResponseError(MsalSignInError, ValueError):
    """Raised when an authorization response does not belong to its flow (a ``ValueError``,
    as MSAL raises, and an :class:`~aiomsal.MsalSignInError`)."""


class BrokerUnavailableError(MsalConfigurationError, ImportError):
    """Raised when a broker is asked for on this platform: MSAL raises ``ImportError`` when
    its broker runtime (pymsalruntime) is missing, and aiomsal has no broker."""


def broker_requested(
    *, windows: object, mac: object, linux: object, wsl: object, allow_broker: object
) -> bool:
    """Whether MSAL would use a broker on this platform for these ``enable_broker_on_*`` flags.

    A flag for another platform is ignored, as MSAL ignores it.
    """
    release = platform.uname().release.lower()
    on_wsl = sys.platform == "linux" and "microsoft" in release
    return bool(
        ((windows or allow_broker) and sys.platform == "win32")
        or (mac and sys.platform == "darwin" and platform.machine() == "arm64")
        or (linux and sys.platform == "linux")
        or (wsl and on_wsl)
    )


def error_dict(error: MsalServiceError) -> dict[str, Any]:
    """MSAL's error dict: the authority's error fields that were present."""
    data: dict[str, Any] = {"error": error.error}
    if error.error_description is not None:
        data["error_description"] = error.error_description
    if error.error_codes:
        data["error_codes"] = list(error.error_codes)
    optional = {
        "error_uri": error.error_uri,
        "suberror": error.suberror,
        "claims": error.claims,
        "timestamp": error.timestamp,
        "trace_id": error.trace_id,
        "correlation_id": error.correlation_id,
    }
    data.update((name, value) for name, value in optional.items() if value)
    return data


def silent_error_dict(error: MsalServiceError) -> dict[str, Any]:
    """What MSAL's ``acquire_token_silent_with_error`` returns: the error and its classification."""
    data = error_dict(error)
    if error.suberror:
        data["classification"] = "" if error.suberror in _QUIET_SUBERRORS else error.suberror
    return data


def unsupported(name: str) -> MsalConfigurationError:
    """The error for an MSAL parameter aiomsal does not implement (a ``ValueError``)."""
    return MsalConfigurationError(f"{name} is not supported by aiomsal")
