"""The users of :class:`FakeAuthority` and the state of their sign-ins.

:class:`UserDirectory` holds the registered users with their passwords and
guest tenants, what a test asked of them (interaction, declined consent), and
the grants issued to them: authorization codes and refresh tokens. Device codes
live in :class:`~aiomsal.testing._fake_device.DeviceCodeStore`, which the
directory owns too.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from ._fake_device import DeviceCodeStore
from ._fake_tokens import b64url

__all__ = [
    "AuthorizationCode",
    "FakeUser",
    "Interaction",
    "RefreshGrant",
    "UserDirectory",
    "default_interaction_code",
    "tenant_guid",
]

#: Tenant names that stand for "whichever tenant the user signs in to": the home tenant.
TENANT_AGNOSTIC = frozenset({"common", "organizations", "consumers"})

#: The AADSTS code used by :meth:`UserDirectory.require_interaction`, by OAuth error.
_INTERACTION_CODES = {
    "interaction_required": 50076,
    "consent_required": 65001,
    "login_required": 50058,
    "invalid_grant": 50173,
}


def tenant_guid(tenant: str) -> str:
    """The GUID (``tid``) of a tenant: the name itself when it is a GUID, else derived."""
    try:
        return str(uuid.UUID(tenant))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_DNS, tenant.lower()))


def default_interaction_code(error: str) -> int:
    """The AADSTS code that goes with an interaction ``error`` by default."""
    return _INTERACTION_CODES.get(error, 50076)


@dataclass(frozen=True, slots=True)
class FakeUser:
    """A user registered with :meth:`FakeAuthority.add_user`.

    ``oid`` is the same in the home tenant and in every guest tenant.
    """

    username: str
    oid: str
    home_tenant: str
    #: The GUID of ``home_tenant`` (the ``utid`` of ``client_info``).
    tenant_id: str
    guest_tenants: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The display name: the part of the username before ``@``, title-cased."""
        local = self.username.partition("@")[0]
        return " ".join(part.capitalize() for part in local.replace("_", ".").split(".") if part)

    def tenant_for(self, tenant: str) -> str | None:
        """The ``tid`` of a sign-in through ``tenant``, or None if the user is not in it.

        ``common``, ``organizations`` and ``consumers`` sign in to the home tenant.
        """
        if tenant.lower() in TENANT_AGNOSTIC:
            return self.tenant_id
        tid = tenant_guid(tenant)
        if tid == self.tenant_id or tid in (tenant_guid(t) for t in self.guest_tenants):
            return tid
        return None

    def subject(self, client_id: str) -> str:
        """The pairwise ``sub`` claim of this user for ``client_id`` (stable, opaque)."""
        return b64url(hashlib.sha256(f"aiomsal-fake:sub:{self.oid}:{client_id}".encode()).digest())


@dataclass(frozen=True, slots=True)
class Interaction:
    """What :meth:`FakeAuthority.require_interaction` makes silent grants answer."""

    error: str
    code: int
    suberror: str | None = None
    claims: str | None = None


@dataclass(slots=True)
class AuthorizationCode:
    """An authorization code issued by ``/authorize``, with what it is bound to."""

    username: str
    client_id: str
    redirect_uri: str
    scope: str
    #: The tenant segment of the ``/authorize`` URL, and the ``tid`` it resolved to.
    tenant: str
    tenant_id: str
    expires_at: float
    nonce: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str = "plain"
    redeemed: bool = False


@dataclass(slots=True)
class RefreshGrant:
    """A refresh token: whose it is, for which client, and whether it still works."""

    username: str
    client_id: str
    #: The user's revocation generation at issuance (see :meth:`UserDirectory.revoke`).
    generation: int
    expires_at: float
    redeemed: bool = False


@dataclass(slots=True)
class UserDirectory:
    """Users, passwords, test-imposed conditions and issued user grants."""

    users: dict[str, FakeUser] = field(default_factory=dict)
    passwords: dict[str, str | None] = field(default_factory=dict, repr=False)
    interactions: dict[str, Interaction] = field(default_factory=dict)
    declined: set[str] = field(default_factory=set)
    codes: dict[str, AuthorizationCode] = field(default_factory=dict, repr=False)
    refresh_tokens: dict[str, RefreshGrant] = field(default_factory=dict, repr=False)
    generations: dict[str, int] = field(default_factory=dict)
    device_codes: DeviceCodeStore = field(default_factory=DeviceCodeStore, repr=False)
    #: Seconds an authorization code stays redeemable.
    authorization_code_lifetime: int = 600
    #: Seconds a refresh token stays redeemable (Entra ID: 90 days of inactivity).
    refresh_token_lifetime: int = 90 * 24 * 3600

    # --- users -------------------------------------------------------------------------

    def add_user(
        self, username: str, password: str | None, tenant: str, guest_tenants: Sequence[str]
    ) -> FakeUser:
        if not username:
            raise ValueError("a user needs a username")
        key = username.casefold()
        if key in self.users:
            self.revoke(username)
        user = FakeUser(
            username=username,
            oid=str(uuid.uuid4()),
            home_tenant=tenant,
            tenant_id=tenant_guid(tenant),
            guest_tenants=tuple(dict.fromkeys(guest_tenants)),
        )
        self.users[key] = user
        self.passwords[key] = password
        return user

    def add_guest_tenant(self, username: str, tenant: str) -> FakeUser:
        user = self.require(username)
        if tenant in user.guest_tenants:
            return user
        user = replace(user, guest_tenants=(*user.guest_tenants, tenant))
        self.users[username.casefold()] = user
        return user

    def find(self, username: str) -> FakeUser | None:
        """The user called ``username`` (case-insensitive), or None."""
        return self.users.get(username.casefold())

    def require(self, username: str) -> FakeUser:
        """The user called ``username``; raises KeyError for an unknown one."""
        user = self.find(username)
        if user is None:
            raise KeyError(f"no user {username!r} is registered")
        return user

    def by_oid(self, oid: str) -> FakeUser | None:
        return next((u for u in self.users.values() if u.oid == oid), None)

    def password_matches(self, username: str, password: str) -> bool:
        expected = self.passwords.get(username.casefold())
        return expected is not None and secrets.compare_digest(expected.encode(), password.encode())

    # --- conditions ----------------------------------------------------------------------

    def require_interaction(self, username: str, interaction: Interaction) -> None:
        self.interactions[self.require(username).username.casefold()] = interaction

    def clear_interaction(self, username: str) -> None:
        key = self.require(username).username.casefold()
        self.interactions.pop(key, None)
        self.declined.discard(key)

    def interaction_for(self, user: FakeUser) -> Interaction | None:
        return self.interactions.get(user.username.casefold())

    def decline_authorization(self, username: str) -> None:
        self.declined.add(self.require(username).username.casefold())

    def has_declined(self, user: FakeUser) -> bool:
        return user.username.casefold() in self.declined

    # --- grants --------------------------------------------------------------------------

    def issue_code(self, code: AuthorizationCode) -> str:
        value = "1.fake-code." + secrets.token_urlsafe(32)
        self.codes[value] = code
        return value

    def issue_refresh_token(self, user: FakeUser, client_id: str, now: float) -> str:
        value = "1.fake-rt." + secrets.token_urlsafe(48)
        key = user.username.casefold()
        self.refresh_tokens[value] = RefreshGrant(
            username=key,
            client_id=client_id,
            generation=self.generations.get(key, 0),
            expires_at=now + self.refresh_token_lifetime,
        )
        return value

    def revoke(self, username: str) -> None:
        """Make every refresh token issued so far to ``username`` unusable."""
        key = username.casefold()
        self.generations[key] = self.generations.get(key, 0) + 1

    def is_revoked(self, grant: RefreshGrant) -> bool:
        return grant.generation != self.generations.get(grant.username, 0)
