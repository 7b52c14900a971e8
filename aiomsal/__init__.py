"""aiomsal: the Microsoft Authentication Library rebuilt for asyncio.

Acquires and caches OAuth 2.0 / OpenID Connect tokens from Microsoft Entra ID
and other OpenID Connect authorities, for services that make thousands of
concurrent calls: concurrent cache misses share one request, hot tokens are
refreshed in the background, and a cache hit costs the same at one token as
at a million.
"""

from typing import TYPE_CHECKING, Any

from ._apps._confidential import ConfidentialClientApplication as ConfidentialClientApplication
from ._apps._managed_identity import ManagedIdentityClient as ManagedIdentityClient
from ._apps._public import PublicClientApplication as PublicClientApplication
from ._apps._token_validator import TokenValidator as TokenValidator
from ._apps._token_validator import TokenValidatorStatistics as TokenValidatorStatistics
from ._apps._workload_identity import FederatedTokenFile as FederatedTokenFile
from ._apps._workload_identity import (
    workload_identity_application as workload_identity_application,
)
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
from ._protocol._managed_identity._ids import (
    SystemAssignedManagedIdentity as SystemAssignedManagedIdentity,
)
from ._protocol._managed_identity._ids import (
    UserAssignedManagedIdentity as UserAssignedManagedIdentity,
)
from ._protocol._managed_identity._retry import ImdsRetryPolicy as ImdsRetryPolicy
from ._protocol._token_validation import ValidatedToken as ValidatedToken
from ._result import Account as Account
from ._result import AuthenticationResult as AuthenticationResult
from ._statistics import CacheStatistics as CacheStatistics
from ._statistics import TenantStatistics as TenantStatistics

__version__ = "0.1.0"

if TYPE_CHECKING:
    from ._storage._file_storage import FileCacheStorage as FileCacheStorage
    from ._storage._redis_storage import RedisCacheStorage as RedisCacheStorage


def __getattr__(name: str) -> Any:
    """The storages are imported on first use: redis is an optional extra, and
    ``import aiomsal`` should not pay for either."""
    if name == "RedisCacheStorage":
        from ._storage._redis_storage import RedisCacheStorage

        return RedisCacheStorage
    if name == "FileCacheStorage":
        from ._storage._file_storage import FileCacheStorage

        return FileCacheStorage
    raise AttributeError(f"module 'aiomsal' has no attribute {name!r}")

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
