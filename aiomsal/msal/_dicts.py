"""MSAL's dicts from aiomsal's typed values: results, errors, and MSAL's own refusals."""

from __future__ import annotations

from typing import Any

from .._errors import MsalConfigurationError, MsalServiceError, MsalSignInError

__all__ = [
    "AUTH_SCHEME_UNSUPPORTED",
    "AuthResponseError",
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
