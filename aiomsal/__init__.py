"""aiomsal: the Microsoft Authentication Library rebuilt for asyncio.

Acquires and caches OAuth 2.0 / OpenID Connect tokens from Microsoft Entra ID
and other OpenID Connect authorities, for services that make thousands of
concurrent calls: concurrent cache misses share one request, hot tokens are
refreshed in the background, and a cache hit costs the same at one token as
at a million.
"""

from typing import TYPE_CHECKING, Any

from ._apps._confidential import ConfidentialClientApplication as ConfidentialClientApplication
from ._apps._public import PublicClientApplication as PublicClientApplication
from ._cache._storage import CacheStorage as CacheStorage
from ._cache._token_cache import SerializableTokenCache as SerializableTokenCache
from ._concurrency._clock import Clock as Clock
from ._concurrency._clock import SystemClock as SystemClock
from ._errors import MsalAssertionExpiredError as MsalAssertionExpiredError
from ._errors import MsalClaimsChallengeError as MsalClaimsChallengeError
from ._errors import MsalConfigurationError as MsalConfigurationError
from ._errors import MsalError as MsalError
from ._errors import MsalInsufficientScopeError as MsalInsufficientScopeError
from ._errors import MsalInvalidTokenError as MsalInvalidTokenError
from ._errors import MsalMissingTokenError as MsalMissingTokenError
from ._errors import MsalServiceError as MsalServiceError
from ._errors import MsalSignInError as MsalSignInError
from ._errors import MsalSigningKeysUnavailableError as MsalSigningKeysUnavailableError
from ._errors import MsalThrottledError as MsalThrottledError
from ._errors import MsalTokenValidationError as MsalTokenValidationError
from ._errors import MsalTransportError as MsalTransportError
from ._errors import MsalUiRequiredError as MsalUiRequiredError
from ._protocol._auth_code import AuthCodeFlow as AuthCodeFlow
from ._protocol._credentials import ClientAssertion as ClientAssertion
from ._protocol._credentials import ClientCertificate as ClientCertificate
from ._protocol._credentials import ClientSecret as ClientSecret
from ._protocol._device_flow import DeviceFlow as DeviceFlow
from ._result import Account as Account
from ._result import AuthenticationResult as AuthenticationResult
from ._statistics import CacheStatistics as CacheStatistics
from ._statistics import TenantStatistics as TenantStatistics

__version__ = "0.1.0"

if TYPE_CHECKING:
    from ._apps._managed_identity import ManagedIdentityClient as ManagedIdentityClient
    from ._apps._token_validator import TokenValidator as TokenValidator
    from ._apps._token_validator import TokenValidatorStatistics as TokenValidatorStatistics
    from ._apps._workload_identity import FederatedTokenFile as FederatedTokenFile
    from ._apps._workload_identity import (
        workload_identity_application as workload_identity_application,
    )
    from ._protocol._managed_identity._ids import (
        SystemAssignedManagedIdentity as SystemAssignedManagedIdentity,
    )
    from ._protocol._managed_identity._ids import (
        UserAssignedManagedIdentity as UserAssignedManagedIdentity,
    )
    from ._protocol._managed_identity._retry import ImdsRetryPolicy as ImdsRetryPolicy
    from ._protocol._token_validation import ValidatedToken as ValidatedToken
    from ._storage._file_storage import FileCacheStorage as FileCacheStorage
    from ._storage._redis_storage import RedisCacheStorage as RedisCacheStorage

#: Imported on first use, so that ``import aiomsal`` pays only for what every application
#: needs: redis is an optional extra; the file storage, token validation and managed and
#: workload identity are for some.
_LAZY = {
    "ManagedIdentityClient": "._apps._managed_identity",
    "FederatedTokenFile": "._apps._workload_identity",
    "workload_identity_application": "._apps._workload_identity",
    "SystemAssignedManagedIdentity": "._protocol._managed_identity._ids",
    "UserAssignedManagedIdentity": "._protocol._managed_identity._ids",
    "ImdsRetryPolicy": "._protocol._managed_identity._retry",
    "FileCacheStorage": "._storage._file_storage",
    "RedisCacheStorage": "._storage._redis_storage",
    "TokenValidator": "._apps._token_validator",
    "TokenValidatorStatistics": "._apps._token_validator",
    "ValidatedToken": "._protocol._token_validation",
}


def __getattr__(name: str) -> Any:
    """The names of ``_LAZY``, imported when first asked for."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aiomsal' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module, __name__), name)


__all__ = [
    "Account",
    "AuthCodeFlow",
    "AuthenticationResult",
    "CacheStatistics",
    "CacheStorage",
    "ClientAssertion",
    "ClientCertificate",
    "ClientSecret",
    "Clock",
    "ConfidentialClientApplication",
    "DeviceFlow",
    "FederatedTokenFile",
    "FileCacheStorage",
    "MsalAssertionExpiredError",
    "MsalClaimsChallengeError",
    "ImdsRetryPolicy",
    "ManagedIdentityClient",
    "MsalConfigurationError",
    "MsalError",
    "MsalInsufficientScopeError",
    "MsalInvalidTokenError",
    "MsalMissingTokenError",
    "MsalServiceError",
    "MsalSignInError",
    "MsalSigningKeysUnavailableError",
    "MsalThrottledError",
    "MsalTokenValidationError",
    "MsalTransportError",
    "MsalUiRequiredError",
    "PublicClientApplication",
    "RedisCacheStorage",
    "SerializableTokenCache",
    "SystemAssignedManagedIdentity",
    "SystemClock",
    "TenantStatistics",
    "TokenValidator",
    "TokenValidatorStatistics",
    "ValidatedToken",
    "UserAssignedManagedIdentity",
    "__version__",
    "workload_identity_application",
]
