"""Where a token comes from, as cache keys say it: an authority's ``environment`` and ``realm``.

Entra ID (and B2C, External ID, AD FS) entries are keyed as every MSAL SDK
keys them: the host name (its cloud's preferred alias when known, no port)
and the first path segment (the tenant). A generic OpenID Connect issuer has
no tenant segment and no aliases: two Keycloak realms, two Okta
authorization servers or two ports of one host are different issuers. Its
entries are keyed by the whole canonical issuer URL (scheme, host, port and
path), kept exactly as written (URL paths are case-sensitive), with an empty
realm. This module is the one place that decides both.
"""

from __future__ import annotations

from functools import lru_cache

from .._protocol._authority import Authority
from .._protocol._instance_discovery import known_instance_metadata

__all__ = [
    "cache_environment",
    "cache_realm",
    "canonical_environment",
    "is_issuer_environment",
]


def is_issuer_environment(environment: str) -> bool:
    """Whether an ``environment`` is a generic OpenID Connect issuer URL.

    Such entries compare scopes and keys exactly (RFC 6749 section 3.3);
    Entra's compare them without regard to case.
    """
    return "://" in environment


def cache_environment(authority: Authority) -> str:
    """The ``environment`` of the entries of ``authority``'s tokens."""
    if authority.kind == "oidc":
        return authority.url
    return canonical_environment(authority.host)


def cache_realm(authority: Authority) -> str:
    """The ``realm`` of the entries of ``authority``'s tokens (MSAL's: the tenant segment)."""
    if authority.kind == "oidc":
        return ""
    return authority.path.strip("/").split("/", 1)[0]


@lru_cache(maxsize=256)
def canonical_environment(host: str) -> str:
    """The host name (no port, lower case), or its cloud's preferred alias when known.

    MSAL SDKs write the authority's host name as an entry's ``environment``
    and match entries across a cloud's aliases (``login.windows.net`` and
    ``login.microsoftonline.com`` are one cloud). Indexing every entry under
    its cloud's preferred alias makes that match a plain key lookup. An issuer
    URL (a generic OpenID Connect environment) is returned as it is. Never
    raises: any string read from a cache document has a canonical form.
    """
    if is_issuer_environment(host):
        return host
    name = host.lower().strip()
    if name.startswith("["):
        end = name.find("]")
        name = name[1:end] if end > 0 else name
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    known = known_instance_metadata(name)
    return known.preferred_network if known is not None else name
