"""Whether an incoming user assertion (on-behalf-of) is still within its lifetime.

A web API acting on behalf of a user must stop when the user's token has
expired: the ``exp`` claim of the assertion is read (without verification:
the authority verifies it; this only refuses what it would refuse, and
before a cached token or a refresh token could stand in for it), with a
small allowance for clock skew. An assertion whose ``exp`` cannot be read
(an opaque token, a malformed one) is left for the authority to judge.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from datetime import datetime, timezone

from .._errors import MsalAssertionExpiredError

__all__ = ["ASSERTION_CLOCK_SKEW", "assertion_expiry", "check_assertion_lifetime"]

#: Seconds an assertion is still accepted after its ``exp`` (clocks disagree a little).
ASSERTION_CLOCK_SKEW = 300.0
#: Longer payloads are not decoded (no token needs that much; it is left to the authority).
_MAX_PAYLOAD_CHARS = 65_536


def assertion_expiry(assertion: str) -> float | None:
    """The ``exp`` of a JWT, read without verifying it; None when it cannot be read."""
    parts = assertion.split(".", 3)
    if len(parts) != 3 or len(parts[1]) > _MAX_PAYLOAD_CHARS:
        return None
    segment = parts[1]
    try:
        payload = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error, RecursionError, UnicodeDecodeError):
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    try:
        value = float(exp)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def check_assertion_lifetime(
    expires_at: float | None, now: float, *, skew: float = ASSERTION_CLOCK_SKEW
) -> None:
    """Raise :class:`MsalAssertionExpiredError` when ``expires_at`` (plus ``skew``) has passed."""
    if expires_at is not None and now > expires_at + skew:
        when = datetime.fromtimestamp(expires_at, timezone.utc).isoformat(timespec="seconds")
        raise MsalAssertionExpiredError(
            "invalid_grant",
            f"the incoming user assertion expired at {when} (exp, read without verification, "
            f"plus {skew:g}s of clock skew): ask the caller for a new token; no cached token "
            "or refresh token is used for an expired assertion",
        )
