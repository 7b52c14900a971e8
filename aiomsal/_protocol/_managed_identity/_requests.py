"""The token request of each managed identity source (sans-I/O).

Api-versions, headers and the names of the user-assigned identity's parameter
differ per source; a user-assigned identity that a source cannot honour is a
configuration error, never a silent request for the system-assigned token.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from urllib.parse import urlencode, urlsplit, urlunsplit

from ..._errors import MsalConfigurationError
from .._http import HttpRequest
from ._ids import IdKind, ManagedIdentity, UserAssignedManagedIdentity
from ._sources import ManagedIdentitySource, SourceKind

__all__ = ["API_VERSIONS", "build_arc_retry", "build_token_request", "resource_from_scope"]

API_VERSIONS: dict[SourceKind, str] = {
    "imds": "2018-02-01",
    "app_service": "2019-08-01",
    "azure_arc": "2020-06-01",
    "service_fabric": "2019-07-01-preview",
    "azure_ml": "2017-09-01",
}

#: The wire name of each kind of user-assigned id, per source (absent: not honoured).
_ID_PARAMETERS: dict[SourceKind, dict[IdKind, str]] = {
    "imds": {"client_id": "client_id", "object_id": "object_id", "resource_id": "msi_res_id"},
    "app_service": {"client_id": "client_id", "object_id": "object_id", "resource_id": "mi_res_id"},
    "azure_arc": {"client_id": "client_id", "object_id": "object_id", "resource_id": "msi_res_id"},
    "azure_ml": {"client_id": "clientid"},
    "service_fabric": {},
    "cloud_shell": {},
}

_DEFAULT_SUFFIX = "/.default"


def resource_from_scope(value: str) -> str:
    """A resource, also given as a ``{resource}/.default`` scope (the suffix is stripped)."""
    if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value.strip()):
        raise MsalConfigurationError(
            "resource must be one resource identifier such as 'https://vault.azure.net'"
        )
    resource = value.strip()
    if resource.endswith(_DEFAULT_SUFFIX):
        resource = resource[: -len(_DEFAULT_SUFFIX)]
    if not resource:
        raise MsalConfigurationError("resource must not be empty")
    return resource


def identity_parameters(source: SourceKind, identity: ManagedIdentity) -> dict[str, str]:
    """The query parameter naming ``identity`` for ``source`` (none for system-assigned)."""
    if not isinstance(identity, UserAssignedManagedIdentity):
        return {}
    name = _ID_PARAMETERS[source].get(identity.kind)
    if name is None:
        raise MsalConfigurationError(
            f"the {source} managed identity source cannot select a user-assigned identity "
            f"by {identity.kind}; configure the identity on the resource, or use "
            "SystemAssignedManagedIdentity()"
        )
    return {name: identity.value}


def build_token_request(
    source: ManagedIdentitySource,
    identity: ManagedIdentity,
    resource: str,
    *,
    claims: str | None = None,
    client_capabilities: Sequence[str] = (),
    cached_token: str | None = None,
) -> HttpRequest:
    """The first token request to ``source`` for ``resource``.

    For Service Fabric, ``client_capabilities`` go as ``xms_cc`` and a claims
    challenge names the revoked ``cached_token`` by its SHA-256, as MSAL does.
    """
    kind = source.kind
    chosen = identity_parameters(kind, identity)
    if kind == "cloud_shell":
        return HttpRequest(
            "POST",
            source.endpoint,
            headers={"Metadata": "true"},
            form={"resource": resource},
            throttle=True,
        )
    query: dict[str, str] = {"api-version": API_VERSIONS[kind], "resource": resource}
    headers: dict[str, str] = {}
    if kind in ("imds", "azure_arc"):
        headers["Metadata"] = "true"
    elif kind == "app_service":
        headers["X-IDENTITY-HEADER"] = source.secret or ""
        headers["Metadata"] = "true"  # harmless for App Service, needed by Azure Automation
    elif kind == "service_fabric":
        headers["Secret"] = source.secret or ""
        if client_capabilities:
            query["xms_cc"] = ",".join(client_capabilities)
        if claims is not None and cached_token:
            query["token_sha256_to_refresh"] = hashlib.sha256(cached_token.encode()).hexdigest()
    elif kind == "azure_ml":
        headers["secret"] = source.secret or ""
        if not chosen and source.default_client_id:
            chosen = {"clientid": source.default_client_id}
    query.update(chosen)
    return HttpRequest("GET", _with_query(source.endpoint, query), headers=headers, throttle=True)


def build_arc_retry(first: HttpRequest, key: str) -> HttpRequest:
    """Arc's second request: the first one with ``Authorization: Basic <key file content>``."""
    headers = dict(first.headers)
    headers["Authorization"] = f"Basic {key}"
    return HttpRequest(first.method, first.url, headers=headers, throttle=first.throttle)


def _with_query(endpoint: str, query: dict[str, str]) -> str:
    parts = urlsplit(endpoint)
    existing = parts.query
    encoded = urlencode(query)
    combined = f"{existing}&{encoded}" if existing else encoded
    return urlunsplit((parts.scheme, parts.netloc, parts.path, combined, ""))
