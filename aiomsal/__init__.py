"""aiomsal: the Microsoft Authentication Library rebuilt for asyncio.

Acquires and caches OAuth 2.0 / OpenID Connect tokens from Microsoft Entra ID
and other OpenID Connect authorities, for services that make thousands of
concurrent calls: concurrent cache misses share one request, hot tokens are
refreshed in the background, and a cache hit costs the same at one token as
at a million.
"""

from typing import TYPE_CHECKING, Any

from ._auth_code import AuthCodeFlow as AuthCodeFlow
from ._cache._storage import CacheStorage as CacheStorage
from ._cache._token_cache import SerializableTokenCache as SerializableTokenCache
from ._clock import Clock as Clock
from ._clock import SystemClock as SystemClock
from ._confidential import ConfidentialClientApplication as ConfidentialClientApplication
from ._credentials import ClientAssertion as ClientAssertion
from ._credentials import ClientCertificate as ClientCertificate
from ._credentials import ClientSecret as ClientSecret
from ._device_flow import DeviceFlow as DeviceFlow
from ._errors import MsalConfigurationError as MsalConfigurationError
from ._errors import MsalError as MsalError
from ._errors import MsalServiceError as MsalServiceError
from ._errors import MsalSignInError as MsalSignInError
from ._errors import MsalThrottledError as MsalThrottledError
from ._errors import MsalTransportError as MsalTransportError
from ._errors import MsalUiRequiredError as MsalUiRequiredError
from ._file_storage import FileCacheStorage as FileCacheStorage
from ._public import PublicClientApplication as PublicClientApplication
from ._result import Account as Account
from ._result import AuthenticationResult as AuthenticationResult
from ._statistics import CacheStatistics as CacheStatistics

__version__ = "0.1.0"

if TYPE_CHECKING:
    from ._redis_storage import RedisCacheStorage as RedisCacheStorage


def __getattr__(name: str) -> Any:
    """``RedisCacheStorage`` is imported on first use: redis is an optional extra."""
    if name == "RedisCacheStorage":
        from ._redis_storage import RedisCacheStorage

        return RedisCacheStorage
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
    "FileCacheStorage",
    "MsalConfigurationError",
    "MsalError",
    "MsalServiceError",
    "MsalSignInError",
    "MsalThrottledError",
    "MsalTransportError",
    "MsalUiRequiredError",
    "PublicClientApplication",
    "RedisCacheStorage",
    "SerializableTokenCache",
    "SystemClock",
    "__version__",
]
