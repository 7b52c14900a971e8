"""Azure SDK credentials backed by aiomsal (``pip install 'aiomsal[azure]'``).

Drop-in replacements for azure-identity's ``aio`` credentials, same names,
parameters and environment variables, so a service switches by changing one
import: every credential implements azure-core's ``AsyncTokenCredential`` and
``AsyncSupportsTokenInfo``. Credentials of the same configuration share one
aiomsal application in the process: concurrent callers of any number of SDK
clients send one token request per key, tokens in use are refreshed in the
background, and a warm ``get_token`` costs a few microseconds.
"""

from __future__ import annotations

from ._azure_chain import AzureCliCredential as AzureCliCredential
from ._azure_chain import ChainedTokenCredential as ChainedTokenCredential
from ._azure_chain import DefaultAzureCredential as DefaultAzureCredential
from ._azure_chain import ManagedIdentityCredential as ManagedIdentityCredential
from ._azure_common import CredentialUnavailableError as CredentialUnavailableError
from ._azure_credentials import CertificateCredential as CertificateCredential
from ._azure_credentials import ClientAssertionCredential as ClientAssertionCredential
from ._azure_credentials import ClientSecretCredential as ClientSecretCredential
from ._azure_credentials import EnvironmentCredential as EnvironmentCredential
from ._azure_credentials import OnBehalfOfCredential as OnBehalfOfCredential
from ._azure_credentials import WorkloadIdentityCredential as WorkloadIdentityCredential

__all__ = [
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
