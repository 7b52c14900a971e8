"""Device codes of :class:`FakeAuthority`: the device authorization grant (RFC 8628).

A device code is created by ``POST /{tenant}/oauth2/v2.0/devicecode``, approved
or declined by the test (standing in for the user at ``/devicelogin``) with
:meth:`FakeAuthority.approve_device_code` / :meth:`~FakeAuthority.decline_device_code`,
and polled for at the token endpoint until it is redeemed, declined or expired.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from typing import Any, Literal

from ._fake_tokens import GrantError

__all__ = ["DeviceAuthorization", "DeviceCodeStore"]

_USER_CODE_LENGTH = 8
#: Polls closer together than the interval by less than this (seconds) are tolerated.
_POLL_SLACK = 0.05
#: How much a ``slow_down`` answer raises the interval the client must keep (RFC 8628).
_SLOW_DOWN_STEP = 5

DeviceStatus = Literal["pending", "approved", "declined", "redeemed"]


@dataclass(slots=True)
class DeviceAuthorization:
    """One device authorization request and how far the user got with it."""

    device_code: str
    user_code: str
    client_id: str
    #: The tenant segment of the ``/devicecode`` URL.
    tenant: str
    scope: str
    expires_at: float
    #: Seconds the client must wait between polls (raised by each ``slow_down``).
    interval: int
    last_poll: float | None = None
    status: DeviceStatus = "pending"
    #: Who approved it (casefolded username), once approved.
    username: str | None = None

    def response_body(self, base_url: str, now: float) -> dict[str, Any]:
        """The JSON answer of the ``/devicecode`` endpoint."""
        uri = f"{base_url}/devicelogin"
        return {
            "device_code": self.device_code,
            "user_code": self.user_code,
            "verification_uri": uri,
            "expires_in": round(self.expires_at - now),
            "interval": self.interval,
            "message": (
                f"To sign in, use a web browser to open the page {uri} and enter the code "
                f"{self.user_code} to authenticate."
            ),
        }


class DeviceCodeStore:
    """The device codes issued by one fake authority, by device code and user code."""

    def __init__(self) -> None:
        #: The ``interval`` of new device codes, in seconds.
        self.interval = 5
        #: The ``expires_in`` of new device codes, in seconds.
        self.lifetime = 900
        self._by_device_code: dict[str, DeviceAuthorization] = {}
        self._by_user_code: dict[str, DeviceAuthorization] = {}

    def create(self, client_id: str, tenant: str, scope: str, now: float) -> DeviceAuthorization:
        user_code = _new_user_code()
        while user_code in self._by_user_code:
            user_code = _new_user_code()
        authorization = DeviceAuthorization(
            device_code="1.fake-dc." + secrets.token_urlsafe(48),
            user_code=user_code,
            client_id=client_id,
            tenant=tenant,
            scope=scope,
            expires_at=now + self.lifetime,
            interval=self.interval,
        )
        self._by_device_code[authorization.device_code] = authorization
        self._by_user_code[user_code] = authorization
        return authorization

    def _for_user(self, user_code: str, now: float) -> DeviceAuthorization:
        authorization = self._by_user_code.get(user_code.strip().upper())
        if authorization is None:
            raise KeyError(f"no device code has the user code {user_code!r}")
        if authorization.status != "pending":
            raise ValueError(f"the device code {user_code!r} is already {authorization.status}")
        if now >= authorization.expires_at:
            raise ValueError(f"the device code {user_code!r} has expired")
        return authorization

    def approve(self, user_code: str, username: str, now: float) -> None:
        """The user signs in at ``/devicelogin`` with ``user_code``."""
        authorization = self._for_user(user_code, now)
        authorization.status = "approved"
        authorization.username = username.casefold()

    def decline(self, user_code: str, now: float) -> None:
        """The user refuses the sign-in at ``/devicelogin``."""
        self._for_user(user_code, now).status = "declined"

    def pending_user_codes(self, now: float) -> list[str]:
        """User codes still waiting for the user, oldest first."""
        return [
            code
            for code, authorization in self._by_user_code.items()
            if authorization.status == "pending" and now < authorization.expires_at
        ]

    def poll(self, device_code: str, client_id: str, now: float) -> DeviceAuthorization:
        """Answer one poll: return the approved authorization (now redeemed) or raise."""
        authorization = self._by_device_code.get(device_code)
        if authorization is None:
            raise GrantError(
                400,
                "bad_verification_code",
                70018,
                "The provided value for the input parameter 'device_code' is not valid.",
            )
        if authorization.client_id != client_id:
            raise GrantError(
                400,
                "invalid_grant",
                70000,
                "The provided grant is invalid: the device code was issued to another app.",
            )
        if authorization.status == "redeemed":
            raise GrantError(
                400,
                "invalid_grant",
                70000,
                "The provided grant is invalid: the device code was already redeemed.",
            )
        if now >= authorization.expires_at:
            raise GrantError(
                400,
                "expired_token",
                70019,
                "Verification code expired. Have the user start the sign-in again.",
            )
        previous, authorization.last_poll = authorization.last_poll, now
        if authorization.status == "declined":
            raise GrantError(
                400, "authorization_declined", 65004, "User declined to authorize the app."
            )
        if previous is not None and now - previous + _POLL_SLACK < authorization.interval:
            authorization.interval += _SLOW_DOWN_STEP
            raise GrantError(
                400,
                "slow_down",
                70016,
                "OAuth 2.0 device flow error: polling too fast. Add 5 seconds to the "
                "polling interval.",
            )
        if authorization.status == "pending":
            raise GrantError(
                400,
                "authorization_pending",
                70016,
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            )
        authorization.status = "redeemed"
        return authorization


def _new_user_code() -> str:
    return "".join(secrets.choice(string.ascii_uppercase) for _ in range(_USER_CODE_LENGTH))
