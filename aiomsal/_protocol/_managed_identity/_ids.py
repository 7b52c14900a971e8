"""Which managed identity a client asks for: the system-assigned one or a user-assigned one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypeAlias

from ..._errors import MsalConfigurationError

__all__ = [
    "ManagedIdentity",
    "SystemAssignedManagedIdentity",
    "UserAssignedManagedIdentity",
    "managed_identity_from",
]

#: How a user-assigned identity is named.
IdKind = Literal["client_id", "resource_id", "object_id"]

#: The cache's client id for the system-assigned identity (MSAL.NET's).
SYSTEM_ASSIGNED_CACHE_ID = "system_assigned_managed_identity"

_MSAL_TYPES: dict[str, IdKind] = {
    "ClientId": "client_id",
    "ResourceId": "resource_id",
    "ObjectId": "object_id",
}


@dataclass(frozen=True, slots=True)
class SystemAssignedManagedIdentity:
    """The identity Azure gives the resource (VM, App Service, ...) itself."""

    @property
    def cache_id(self) -> str:
        """The client id under which its tokens are cached."""
        return SYSTEM_ASSIGNED_CACHE_ID


@dataclass(frozen=True, slots=True, init=False)
class UserAssignedManagedIdentity:
    """A user-assigned identity, named by exactly one of its client, resource or object id."""

    kind: IdKind
    value: str

    def __init__(
        self,
        *,
        client_id: str | None = None,
        resource_id: str | None = None,
        object_id: str | None = None,
    ) -> None:
        given = [
            (kind, value)
            for kind, value in (
                ("client_id", client_id),
                ("resource_id", resource_id),
                ("object_id", object_id),
            )
            if value is not None
        ]
        if len(given) != 1:
            raise MsalConfigurationError(
                "UserAssignedManagedIdentity takes exactly one of client_id, resource_id "
                "and object_id"
            )
        kind, value = given[0]
        if not isinstance(value, str) or not value.strip():
            raise MsalConfigurationError(f"UserAssignedManagedIdentity: {kind} must be non-empty")
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "value", value.strip())

    @property
    def cache_id(self) -> str:
        """The client id under which its tokens are cached (the id it was named by)."""
        return self.value


ManagedIdentity: TypeAlias = SystemAssignedManagedIdentity | UserAssignedManagedIdentity


def managed_identity_from(value: object) -> ManagedIdentity:
    """An identity object, or MSAL Python's dict form ``{"ManagedIdentityIdType", "Id"}``."""
    if isinstance(value, (SystemAssignedManagedIdentity, UserAssignedManagedIdentity)):
        return value
    if isinstance(value, Mapping):
        id_type = value.get("ManagedIdentityIdType")
        if id_type == "SystemAssigned":
            return SystemAssignedManagedIdentity()
        kind = _MSAL_TYPES.get(id_type) if isinstance(id_type, str) else None
        ident = value.get("Id")
        if kind is not None and isinstance(ident, str):
            return UserAssignedManagedIdentity(**{kind: ident})
    raise MsalConfigurationError(
        "managed_identity must be SystemAssignedManagedIdentity(), "
        "UserAssignedManagedIdentity(client_id=... | resource_id=... | object_id=...) "
        'or MSAL\'s {"ManagedIdentityIdType": ..., "Id": ...}'
    )
