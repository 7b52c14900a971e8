"""Where a managed identity token comes from, detected from the environment (sans-I/O).

The precedence is MSAL Python's and azure-identity's: Service Fabric, App
Service (also Functions, Automation, Container Apps), Azure Machine Learning,
Azure Arc, Cloud Shell, and the VM/VMSS Instance Metadata Service (IMDS) by
default. A variable counts when it is set and non-empty.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from ..._errors import MsalConfigurationError

__all__ = [
    "ARC_DEFAULT_ENDPOINT",
    "IMDS_DEFAULT_HOST",
    "ManagedIdentitySource",
    "SourceKind",
    "detect_source",
    "normalize_thumbprint",
]

SourceKind = Literal[
    "service_fabric", "app_service", "azure_ml", "azure_arc", "cloud_shell", "imds"
]

#: The IMDS base URL on Azure VMs (link-local); ``AZURE_POD_IDENTITY_AUTHORITY_HOST`` overrides it.
IMDS_DEFAULT_HOST = "http://169.254.169.254"
IMDS_TOKEN_PATH = "/metadata/identity/oauth2/token"
#: The Arc agent's endpoint when only its ``himds`` binary marks the machine.
ARC_DEFAULT_ENDPOINT = "http://localhost:40342/metadata/identity/oauth2/token"

_THUMBPRINT = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True, slots=True)
class ManagedIdentitySource:
    """One detected source: its kind, token endpoint and the secret it is called with.

    ``secret`` is the ``IDENTITY_HEADER``/``MSI_SECRET`` value, never shown.
    ``thumbprint`` (Service Fabric) is the pinned server certificate's SHA-1.
    """

    kind: SourceKind
    endpoint: str
    secret: str | None = field(default=None, repr=False)
    thumbprint: str | None = None
    #: Azure ML's ``DEFAULT_IDENTITY_CLIENT_ID``, sent for the system-assigned identity.
    default_client_id: str | None = None


def _get(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name)
    return value if isinstance(value, str) and value.strip() else None


def detect_source(
    environ: Mapping[str, str],
    *,
    endpoint: str | None = None,
    arc_agent_present: bool = False,
) -> ManagedIdentitySource:
    """The source the environment selects; ``endpoint`` overrides its token endpoint.

    ``arc_agent_present`` tells whether the Arc agent's ``himds`` binary exists
    (the caller checks the file system). Raises :class:`MsalConfigurationError`
    for a malformed endpoint or thumbprint.
    """
    identity_endpoint = _get(environ, "IDENTITY_ENDPOINT")
    identity_header = _get(environ, "IDENTITY_HEADER")
    msi_endpoint = _get(environ, "MSI_ENDPOINT")
    source: ManagedIdentitySource
    if identity_endpoint and identity_header:
        thumbprint = _get(environ, "IDENTITY_SERVER_THUMBPRINT")
        if thumbprint:
            source = ManagedIdentitySource(
                "service_fabric",
                identity_endpoint,
                identity_header,
                normalize_thumbprint(thumbprint),
            )
        else:
            source = ManagedIdentitySource("app_service", identity_endpoint, identity_header)
    elif msi_endpoint and _get(environ, "MSI_SECRET"):
        source = ManagedIdentitySource(
            "azure_ml",
            msi_endpoint,
            _get(environ, "MSI_SECRET"),
            default_client_id=_get(environ, "DEFAULT_IDENTITY_CLIENT_ID"),
        )
    elif identity_endpoint and _get(environ, "IMDS_ENDPOINT"):
        source = ManagedIdentitySource("azure_arc", identity_endpoint)
    elif arc_agent_present:
        source = ManagedIdentitySource("azure_arc", ARC_DEFAULT_ENDPOINT)
    elif msi_endpoint:
        source = ManagedIdentitySource("cloud_shell", msi_endpoint)
    else:
        host = _get(environ, "AZURE_POD_IDENTITY_AUTHORITY_HOST") or IMDS_DEFAULT_HOST
        source = ManagedIdentitySource("imds", host.strip().rstrip("/") + IMDS_TOKEN_PATH)
    if endpoint is not None:
        source = ManagedIdentitySource(
            source.kind, endpoint, source.secret, source.thumbprint, source.default_client_id
        )
    _check_endpoint(source)
    return source


def normalize_thumbprint(value: str) -> str:
    """A SHA-1 thumbprint as 40 lower-case hex digits (spaces and colons removed)."""
    cleaned = re.sub(r"[\s:]", "", value).lower()
    if not _THUMBPRINT.fullmatch(cleaned):
        raise MsalConfigurationError(
            "IDENTITY_SERVER_THUMBPRINT must be a SHA-1 thumbprint (40 hex digits)"
        )
    return cleaned


def _check_endpoint(source: ManagedIdentitySource) -> None:
    try:
        parts = urlsplit(source.endpoint.strip())
        host = parts.hostname
    except ValueError:
        host = None
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise MsalConfigurationError(
            f"the {source.kind} managed identity endpoint is not an http(s) URL"
        )
    if parts.username or parts.password:
        raise MsalConfigurationError("a managed identity endpoint must not carry credentials")
    if source.kind == "service_fabric" and parts.scheme != "https":
        raise MsalConfigurationError(
            "the Service Fabric managed identity endpoint must be https (its certificate is pinned)"
        )
