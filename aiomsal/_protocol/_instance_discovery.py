"""Entra instance discovery and the built-in table of cloud aliases (sans-I/O).

Microsoft Entra answers on several host names per cloud; a token issued by one
alias of a cloud is valid for every other alias of it. The hosts of the known
clouds are listed here, so that no request is needed for them. A host outside
this table is validated at run time by asking that host's own instance
discovery endpoint, which also names the aliases of the host.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from .._errors import MsalServiceError
from ._authority import Authority
from ._error_response import decode_json_object, redirect_note, service_error_from_body
from ._http import HttpRequest, HttpResponse

__all__ = [
    "InstanceMetadata",
    "KNOWN_AUTHORITY_HOSTS",
    "build_instance_discovery_request",
    "known_aliases",
    "known_instance_metadata",
    "parse_instance_discovery_response",
]

#: The API version of the instance discovery endpoint that returns ``metadata``.
INSTANCE_DISCOVERY_API_VERSION = "1.1"


@dataclass(frozen=True, slots=True)
class InstanceMetadata:
    """What Entra says about one cloud: how to reach it and what it is also called."""

    #: The alias to send requests to.
    preferred_network: str
    #: The alias under which tokens of this cloud are preferably cached.
    preferred_cache: str
    #: Every host name of this cloud (lower-case), the preferred ones included.
    aliases: frozenset[str]


def _cloud(preferred_network: str, preferred_cache: str, *others: str) -> InstanceMetadata:
    return InstanceMetadata(
        preferred_network, preferred_cache, frozenset({preferred_network, preferred_cache, *others})
    )


# The alias groups that Entra's own discovery endpoint reports for the public
# and national clouds, plus the sovereign-cloud hosts that MSAL knows.
_KNOWN_CLOUDS: tuple[InstanceMetadata, ...] = (
    _cloud(
        "login.microsoftonline.com", "login.windows.net", "login.microsoft.com", "sts.windows.net"
    ),
    _cloud(
        "login.partner.microsoftonline.cn",
        "login.partner.microsoftonline.cn",
        "login.chinacloudapi.cn",
    ),
    _cloud("login.microsoftonline.de", "login.microsoftonline.de"),
    _cloud("login.microsoftonline.us", "login.microsoftonline.us", "login.usgovcloudapi.net"),
    _cloud("login-us.microsoftonline.com", "login-us.microsoftonline.com"),
    _cloud("login.sovcloud-identity.fr", "login.sovcloud-identity.fr"),
    _cloud("login.sovcloud-identity.de", "login.sovcloud-identity.de"),
    _cloud("login.sovcloud-identity.sg", "login.sovcloud-identity.sg"),
)

_CLOUD_BY_HOST: Mapping[str, InstanceMetadata] = {
    alias: cloud for cloud in _KNOWN_CLOUDS for alias in cloud.aliases
}

#: Every Entra host that needs no instance discovery.
KNOWN_AUTHORITY_HOSTS: frozenset[str] = frozenset(_CLOUD_BY_HOST)


def known_instance_metadata(host: str) -> InstanceMetadata | None:
    """Return the built-in metadata of the cloud that ``host`` belongs to, if it is known."""
    return _CLOUD_BY_HOST.get(host.lower())


def known_aliases(host: str) -> frozenset[str]:
    """Return the built-in aliases of ``host`` (itself included); ``{host}`` when unknown."""
    cloud = known_instance_metadata(host)
    return cloud.aliases if cloud is not None else frozenset({host.lower()})


def build_instance_discovery_request(authority: Authority) -> HttpRequest | None:
    """Build the request that validates ``authority``'s host, or ``None`` when none is needed.

    Only Entra ("aad") authorities on hosts outside the built-in table are
    discovered. The request goes to the authority's own host, never to the
    public cloud: a host that is a genuine Entra instance serves this endpoint.
    """
    if authority.kind != "aad" or authority.host in KNOWN_AUTHORITY_HOSTS:
        return None
    query = urlencode(
        {
            "api-version": INSTANCE_DISCOVERY_API_VERSION,
            "authorization_endpoint": f"{authority.url}/oauth2/v2.0/authorize",
        },
        quote_via=quote,
        safe="",
    )
    return HttpRequest(
        "GET",
        f"{authority.scheme}://{authority.host}/common/discovery/instance?{query}",
        headers={"Accept": "application/json"},
    )


def parse_instance_discovery_response(
    authority: Authority, response: HttpResponse
) -> InstanceMetadata:
    """Read the aliases of ``authority``'s host from an instance discovery answer.

    Raises :class:`MsalServiceError`: ``invalid_instance`` when Entra does not
    know the host, the error of any other error answer, and
    ``invalid_response`` for an answer that is not instance metadata.
    """
    host = authority.host
    body = decode_json_object(response)
    if body is not None and isinstance(body.get("error"), str):
        error = service_error_from_body(body, response.status)
        if error.error == "invalid_instance":
            error = service_error_from_body(
                body,
                response.status,
                description=(
                    f"The authority host {host!r} is not a known Microsoft Entra instance"
                    f" ({error.error_description or 'no description'})."
                    " Check the authority URL."
                ),
            )
        raise error
    if not 200 <= response.status < 300 or body is None:
        raise MsalServiceError(
            "invalid_response",
            f"The instance discovery endpoint of {host!r} answered HTTP {response.status}"
            f" without a JSON object{redirect_note(response)}.",
            status=response.status,
        )
    entries = body.get("metadata", [])
    if not isinstance(entries, list):
        raise _invalid_discovery(host, "'metadata' is not a list", response.status)
    for entry in entries:
        metadata = _metadata_entry(entry, host, response.status)
        if host in metadata.aliases:
            return _confined(metadata, host)
    return InstanceMetadata(host, host, frozenset({host}))


def _confined(metadata: InstanceMetadata, host: str) -> InstanceMetadata:
    """Keep only what a host outside the built-in clouds may say about itself.

    The built-in clouds' alias groups are fixed, so a host that needed
    discovery cannot be one of their aliases: an answer that names one (to
    share the public cloud's cache entries, or to send requests there) loses
    that alias, and a preferred host outside what is left falls back to
    ``host`` itself.
    """
    aliases = frozenset(a for a in metadata.aliases if a not in KNOWN_AUTHORITY_HOSTS) | {host}
    network = metadata.preferred_network if metadata.preferred_network in aliases else host
    cache = metadata.preferred_cache if metadata.preferred_cache in aliases else host
    return InstanceMetadata(network, cache, aliases)


def _metadata_entry(entry: object, host: str, status: int) -> InstanceMetadata:
    if not isinstance(entry, dict):
        raise _invalid_discovery(host, "a 'metadata' entry is not an object", status)
    network = entry.get("preferred_network")
    cache = entry.get("preferred_cache")
    aliases = entry.get("aliases")
    if not (
        isinstance(network, str)
        and network
        and isinstance(cache, str)
        and cache
        and isinstance(aliases, list)
        and all(isinstance(alias, str) and alias for alias in aliases)
    ):
        raise _invalid_discovery(
            host, "a 'metadata' entry lacks preferred_network, preferred_cache or aliases", status
        )
    return InstanceMetadata(network.lower(), cache.lower(), frozenset(a.lower() for a in aliases))


def _invalid_discovery(host: str, problem: str, status: int) -> MsalServiceError:
    return MsalServiceError(
        "invalid_response",
        f"The instance discovery answer of {host!r} is malformed: {problem}.",
        status=status,
    )
