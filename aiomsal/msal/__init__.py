"""MSAL Python's face over aiomsal: ``import aiomsal.msal as msal``, then add ``await``.

The classes and methods have MSAL Python's names, positional orders, keyword
names and defaults, and return MSAL's dicts: result dicts, error dicts with
``error``, ``error_description``, ``error_codes``, ``suberror``, ``claims``
and ``correlation_id``, and ``None`` where MSAL returns None (a silent call
that finds nothing or needs the user). Underneath is aiomsal's typed core, so
concurrent misses still share one request, tokens in use are refreshed in the
background and a cache hit costs the same at any cache size.

What MSAL raises, this face raises: ``ValueError`` for bad input (as
:class:`aiomsal.MsalConfigurationError`), and for an authorization response
that is not the flow's. What MSAL lets its HTTP library raise is
:class:`aiomsal.MsalTransportError` here. MSAL's broker and
Proof-of-Possession are unavailable, and fail as MSAL fails without them.
``ManagedIdentityClient`` (with MSAL's ``SystemAssignedManagedIdentity`` and
``UserAssignedManagedIdentity`` dicts) is MSAL's too, over
:class:`aiomsal.ManagedIdentityClient`. The README's migration guide lists every method and option.
"""

from .._cache._token_cache import SerializableTokenCache as SerializableTokenCache
from ._apps import ConfidentialClientApplication as ConfidentialClientApplication
from ._apps import PublicClientApplication as PublicClientApplication
from ._managed_identity import ManagedIdentity as ManagedIdentity
from ._managed_identity import ManagedIdentityClient as ManagedIdentityClient
from ._managed_identity import ManagedIdentityError as ManagedIdentityError
from ._managed_identity import SystemAssignedManagedIdentity as SystemAssignedManagedIdentity
from ._managed_identity import UserAssignedManagedIdentity as UserAssignedManagedIdentity

#: MSAL's in-memory cache class; aiomsal's cache serializes as well.
TokenCache = SerializableTokenCache


class Prompt:
    """The ``prompt`` values of OpenID Connect, as MSAL names them."""

    NONE = "none"
    LOGIN = "login"
    CONSENT = "consent"
    SELECT_ACCOUNT = "select_account"
    CREATE = "create"


__all__ = [
    "ConfidentialClientApplication",
    "ManagedIdentity",
    "ManagedIdentityClient",
    "ManagedIdentityError",
    "Prompt",
    "PublicClientApplication",
    "SerializableTokenCache",
    "SystemAssignedManagedIdentity",
    "TokenCache",
    "UserAssignedManagedIdentity",
]
