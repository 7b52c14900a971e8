"""The public surface is exactly what aiomsal/__init__.py exports."""

from __future__ import annotations

import aiomsal
import aiomsal.testing


def test_the_public_api_is_pinned() -> None:
    assert aiomsal.__all__ == [
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
    assert all(hasattr(aiomsal, name) for name in aiomsal.__all__)


def test_every_error_is_an_msal_error() -> None:
    for name in aiomsal.__all__:
        value = getattr(aiomsal, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, aiomsal.MsalError)
    assert issubclass(aiomsal.MsalConfigurationError, ValueError)
    assert issubclass(aiomsal.MsalUiRequiredError, aiomsal.MsalServiceError)
    assert issubclass(aiomsal.MsalThrottledError, aiomsal.MsalServiceError)


def test_the_testing_helpers_are_public() -> None:
    assert sorted(aiomsal.testing.__all__) == aiomsal.testing.__all__
    assert {"FakeAuthority", "VirtualClock"} <= set(aiomsal.testing.__all__)


def test_the_azure_integration_is_pinned() -> None:
    import aiomsal.integrations.azure as azure

    assert azure.__all__ == [
        "AzureCliCredential",
        "CertificateCredential",
        "ChainedTokenCredential",
        "ClientAssertionCredential",
        "ClientSecretCredential",
        "CredentialUnavailableError",
        "DefaultAzureCredential",
        "EnvironmentCredential",
        "ManagedIdentityCredential",
        "OnBehalfOfCredential",
        "WorkloadIdentityCredential",
    ]
    from azure.core.exceptions import ClientAuthenticationError

    assert issubclass(azure.CredentialUnavailableError, ClientAuthenticationError)


def test_the_msal_face_is_pinned() -> None:
    import aiomsal.msal

    assert aiomsal.msal.__all__ == [
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
    assert all(hasattr(aiomsal.msal, name) for name in aiomsal.msal.__all__)
    assert issubclass(aiomsal.msal.ManagedIdentityError, ValueError)
    assert issubclass(aiomsal.msal.ManagedIdentityError, aiomsal.MsalConfigurationError)


def test_the_opentelemetry_integration_is_public() -> None:
    from aiomsal.integrations import opentelemetry

    assert opentelemetry.__all__ == ["Instrumentation", "instrument"]
