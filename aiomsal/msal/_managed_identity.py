"""MSAL Python's ``ManagedIdentityClient`` and identity dicts, over aiomsal's typed client."""

from __future__ import annotations

from collections import UserDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._apps._managed_identity import ManagedIdentityClient as TypedManagedIdentityClient
from .._cache._token_cache import SerializableTokenCache
from .._concurrency._clock import Clock
from .._errors import MsalConfigurationError, MsalServiceError
from .._protocol._managed_identity._ids import UserAssignedManagedIdentity as TypedUserAssigned
from .._protocol._managed_identity._sources import SourceKind
from .._result import AuthenticationResult
from .._transport._aiohttp_transport import is_client_session
from ._base import FaceLifecycle
from ._dicts import error_dict

if TYPE_CHECKING:
    pass

__all__ = [
    "ManagedIdentity",
    "ManagedIdentityClient",
    "ManagedIdentityError",
    "SystemAssignedManagedIdentity",
    "UserAssignedManagedIdentity",
]

#: The lifetime (seconds) from which MSAL's result dicts carry ``refresh_in``.
_LONG_LIVED = 7200

#: MSAL's ``ManagedIdentityIdType`` of each kind of user-assigned id.
_MSAL_TYPES = {"client_id": "ClientId", "resource_id": "ResourceId", "object_id": "ObjectId"}
#: Service Fabric's error codes as MSAL maps them to OAuth errors (else ``invalid_request``).
_SERVICE_FABRIC_ERRORS = {
    "SecretHeaderNotFound": "unauthorized_client",
    "ManagedIdentityNotFound": "invalid_client",
    "ArgumentNullOrEmpty": "invalid_scope",
}


class ManagedIdentityError(MsalConfigurationError):
    """Raised for a managed identity MSAL refuses: a malformed identity or identity dict,
    or an environment whose source cannot serve it (a ``ValueError``, as in MSAL)."""


class ManagedIdentity(UserDict[str, Any]):
    """MSAL's managed identity configuration: ``{"ManagedIdentityIdType": ..., "Id": ...}``.

    Use :class:`SystemAssignedManagedIdentity` or
    :class:`UserAssignedManagedIdentity`; a plain dict of this shape (from a
    JSON configuration) works as well.
    """

    ID_TYPE = "ManagedIdentityIdType"
    ID = "Id"
    CLIENT_ID = "ClientId"
    RESOURCE_ID = "ResourceId"
    OBJECT_ID = "ObjectId"
    SYSTEM_ASSIGNED = "SystemAssigned"
    _USER_TYPES = (CLIENT_ID, RESOURCE_ID, OBJECT_ID)

    def __init__(self, identifier: str | None = None, id_type: str | None = None) -> None:
        super().__init__({self.ID_TYPE: id_type, self.ID: identifier})

    @classmethod
    def is_managed_identity(cls, unknown: object) -> bool:
        """Whether ``unknown`` is a managed identity or its dict."""
        return (
            isinstance(unknown, ManagedIdentity)
            or cls.is_system_assigned(unknown)
            or cls.is_user_assigned(unknown)
        )

    @classmethod
    def is_system_assigned(cls, unknown: object) -> bool:
        """Whether ``unknown`` names the system-assigned identity."""
        return isinstance(unknown, SystemAssignedManagedIdentity) or (
            isinstance(unknown, dict) and unknown.get(cls.ID_TYPE) == cls.SYSTEM_ASSIGNED
        )

    @classmethod
    def is_user_assigned(cls, unknown: object) -> bool:
        """Whether ``unknown`` names a user-assigned identity."""
        return isinstance(unknown, UserAssignedManagedIdentity) or (
            isinstance(unknown, dict)
            and unknown.get(cls.ID_TYPE) in cls._USER_TYPES
            and bool(unknown.get(cls.ID))
        )


class SystemAssignedManagedIdentity(ManagedIdentity):
    """The system-assigned identity: ``{"ManagedIdentityIdType": "SystemAssigned", "Id": None}``."""

    def __init__(self) -> None:
        super().__init__(id_type=self.SYSTEM_ASSIGNED)


class UserAssignedManagedIdentity(ManagedIdentity):
    """A user-assigned identity, named by exactly one of its client, resource or object id."""

    def __init__(
        self,
        *,
        client_id: str | None = None,
        resource_id: str | None = None,
        object_id: str | None = None,
    ) -> None:
        try:
            typed = TypedUserAssigned(
                client_id=client_id or None,
                resource_id=resource_id or None,
                object_id=object_id or None,
            )
        except MsalConfigurationError:
            raise ManagedIdentityError(
                "You shall specify one of the three parameters: client_id, resource_id, object_id"
            ) from None
        id_type = _MSAL_TYPES[typed.kind]
        value = {"client_id": client_id, "resource_id": resource_id, "object_id": object_id}[
            typed.kind
        ]
        super().__init__(identifier=value, id_type=id_type)


def _msal_error(source: SourceKind, error: MsalServiceError) -> dict[str, Any]:
    """MSAL's error dict for a refused request: its OAuth ``error`` per source."""
    data = error_dict(error)
    if error.status is None or error.status < 400 or error.error == "invalid_response":
        return data  # aiomsal's verdict on an answer it could not trust, not a refusal
    if source in ("app_service", "azure_ml"):
        data["error"] = "invalid_scope"
        if source == "app_service":
            data["error_description"] = f"{error.status}, {error.error_description}"
    elif source == "service_fabric":
        data["error"] = _SERVICE_FABRIC_ERRORS.get(error.error, "invalid_request")
    elif source == "azure_arc":
        data["error"] = "invalid_request"
    return data


class ManagedIdentityClient(FaceLifecycle):
    """MSAL's ``ManagedIdentityClient``: ``await acquire_token_for_client(resource=...)``.

    The parameters are MSAL's. ``http_client`` is required, as in MSAL, but
    aiomsal sends with its own aiohttp transport: an :class:`aiohttp.ClientSession`
    is used, anything else (a ``requests.Session``) is accepted and ignored, as
    ``http_cache`` is. ``clock`` is aiomsal's, keyword-only. The source is
    detected from ``os.environ`` when the client is made (MSAL detects it on
    each call); unlike MSAL, Cloud Shell (``MSI_ENDPOINT`` alone) is served too.
    Underneath is :class:`aiomsal.ManagedIdentityClient`: concurrent misses
    share one request, tokens in use are refreshed in the background.
    """

    application: TypedManagedIdentityClient

    def __init__(
        self,
        managed_identity: Mapping[str, Any],
        *,
        http_client: object,
        token_cache: SerializableTokenCache | None = None,
        http_cache: object = None,
        client_capabilities: list[str] | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not ManagedIdentity.is_managed_identity(managed_identity):
            raise ManagedIdentityError(f"Incorrect managed_identity: {managed_identity!r}")
        session = http_client if is_client_session(http_client) else None
        try:
            self.application = TypedManagedIdentityClient(
                managed_identity,
                http_session=session,
                clock=clock,
                token_cache=token_cache,
                client_capabilities=client_capabilities or (),
            )
        except MsalConfigurationError as exc:
            raise ManagedIdentityError(str(exc)) from None
        self.token_cache: SerializableTokenCache = self.application.token_cache

    def __repr__(self) -> str:
        return f"ManagedIdentityClient(source={self.application.source.kind!r})"

    async def acquire_token_for_client(
        self, *, resource: str, claims_challenge: str | None = None
    ) -> dict[str, Any]:
        """MSAL's result dict for ``resource``, or MSAL's error dict when the source refused.

        From the cache while the token is valid; ``claims_challenge`` fetches a
        new one.
        """
        try:
            result = await self.application.acquire_token_for_client(
                resource=resource, claims_challenge=claims_challenge
            )
        except MsalServiceError as error:
            return _msal_error(self.application.source.kind, error)
        return self._dict(result)

    def _dict(self, result: AuthenticationResult) -> dict[str, Any]:
        """MSAL's shape: a fresh token adds ``resource`` (and ``refresh_in`` if it lives 2 h
        or more); ``refresh_on`` is always there, as aiomsal plans a refresh for every token."""
        now = int(self.application._clock.time())
        data: dict[str, Any] = {
            "access_token": result.access_token,
            "token_type": result.token_type,
            "expires_in": max(0, result.expires_on - now),
        }
        if result.token_source == "identity_provider":
            data["resource"] = result.scopes[0] if result.scopes else None
            # MSAL reports a refresh for tokens of two hours or more; aiomsal's plan is the value.
            if result.refresh_on is not None and data["expires_in"] >= _LONG_LIVED:
                data["refresh_in"] = max(0, result.refresh_on - now)
        if result.refresh_on is not None:
            data["refresh_on"] = result.refresh_on
        data["token_source"] = result.token_source
        return data
