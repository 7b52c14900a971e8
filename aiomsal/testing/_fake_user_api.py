"""The user-facing part of :class:`FakeAuthority`'s API: users and what they do.

:class:`UserFlows` is a base class of :class:`FakeAuthority`; it registers
users and stands in for them where a real user would act in a browser
(approving a device code, declining consent, being asked for MFA).
"""

from __future__ import annotations

from collections.abc import Sequence

from .._concurrency._clock import Clock
from ._fake_users import FakeUser, Interaction, UserDirectory, default_interaction_code

__all__ = ["DEFAULT_USER_TENANT", "UserFlows"]

#: The home tenant of users added without one.
DEFAULT_USER_TENANT = "contoso"


class UserFlows:
    """Users of a fake authority, for the authorization code, device code, ROPC,
    refresh token and on-behalf-of grants."""

    _directory: UserDirectory
    _clock: Clock

    # --- users -------------------------------------------------------------------------

    def add_user(
        self,
        username: str,
        password: str | None = None,
        *,
        tenant: str = DEFAULT_USER_TENANT,
        guest_tenants: Sequence[str] = (),
    ) -> FakeUser:
        """Register (or re-register, replacing) a user whose home tenant is ``tenant``.

        Usernames match case-insensitively. Without a password, the user cannot
        use the password grant. Re-registering gives a new ``oid`` and revokes
        the refresh tokens of the former user. ``guest_tenants`` are further
        tenants the user may sign in to (``tid`` is then that tenant's GUID).
        """
        return self._directory.add_user(username, password, tenant, guest_tenants)

    def add_guest_tenant(self, username: str, tenant: str) -> FakeUser:
        """Invite a registered user into ``tenant`` as a guest; return the updated user."""
        return self._directory.add_guest_tenant(username, tenant)

    def user(self, username: str) -> FakeUser:
        """The registered user called ``username``; raises KeyError for an unknown one."""
        return self._directory.require(username)

    # --- what users do -------------------------------------------------------------------

    def approve_device_code(self, user_code: str, username: str) -> None:
        """``username`` signs in at ``/devicelogin`` with ``user_code``.

        Raises KeyError for an unknown user code or user, ValueError for a
        device code that expired or was already approved or declined.
        """
        self._directory.require(username)
        self._directory.device_codes.approve(user_code, username, self._clock.time())

    def decline_device_code(self, user_code: str) -> None:
        """The user refuses the sign-in of ``user_code`` (errors as :meth:`approve_device_code`)."""
        self._directory.device_codes.decline(user_code, self._clock.time())

    def pending_user_codes(self) -> list[str]:
        """The user codes of device codes still waiting for the user, oldest first."""
        return self._directory.device_codes.pending_user_codes(self._clock.time())

    def revoke_refresh_tokens(self, username: str) -> None:
        """Make every refresh token issued so far to ``username`` fail (AADSTS50173)."""
        self._directory.revoke(self._directory.require(username).username)

    def require_interaction(
        self,
        username: str,
        error: str = "interaction_required",
        *,
        suberror: str | None = None,
        claims: str | None = None,
        code: int | None = None,
    ) -> None:
        """Make the silent grants of ``username`` fail until :meth:`clear_interaction`.

        The refresh token, password and on-behalf-of grants answer 400 with
        ``error`` (and ``suberror`` and ``claims`` when given); ``code`` is the
        AADSTS code, by default 50076 for ``interaction_required`` (MFA), 65001
        for ``consent_required``, 50058 for ``login_required``. ``/authorize``
        still signs the user in, unless it was sent with ``prompt=none``.
        """
        interaction = Interaction(
            error=error,
            code=default_interaction_code(error) if code is None else code,
            suberror=suberror,
            claims=claims,
        )
        self._directory.require_interaction(username, interaction)

    def clear_interaction(self, username: str) -> None:
        """Undo :meth:`require_interaction` and :meth:`decline_authorization` for ``username``."""
        self._directory.clear_interaction(username)

    def decline_authorization(self, username: str) -> None:
        """Make ``/authorize`` for ``username`` redirect with ``error=access_denied``."""
        self._directory.decline_authorization(username)

    # --- timing --------------------------------------------------------------------------

    @property
    def device_code_interval(self) -> int:
        """The polling ``interval`` of new device codes, in seconds (default 5)."""
        return self._directory.device_codes.interval

    @device_code_interval.setter
    def device_code_interval(self, seconds: int) -> None:
        self._directory.device_codes.interval = seconds

    @property
    def device_code_lifetime(self) -> int:
        """The ``expires_in`` of new device codes, in seconds (default 900)."""
        return self._directory.device_codes.lifetime

    @device_code_lifetime.setter
    def device_code_lifetime(self, seconds: int) -> None:
        self._directory.device_codes.lifetime = seconds

    @property
    def authorization_code_lifetime(self) -> int:
        """Seconds an authorization code stays redeemable (default 600)."""
        return self._directory.authorization_code_lifetime

    @authorization_code_lifetime.setter
    def authorization_code_lifetime(self, seconds: int) -> None:
        self._directory.authorization_code_lifetime = seconds

    @property
    def refresh_token_lifetime(self) -> int:
        """Seconds a refresh token stays redeemable (default 90 days)."""
        return self._directory.refresh_token_lifetime

    @refresh_token_lifetime.setter
    def refresh_token_lifetime(self, seconds: int) -> None:
        self._directory.refresh_token_lifetime = seconds
