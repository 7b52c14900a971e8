"""The cache ``environment`` of an authority host, the same for all of its aliases."""

from __future__ import annotations

from functools import lru_cache

from .._protocol._instance_discovery import known_instance_metadata

__all__ = ["canonical_environment"]


@lru_cache(maxsize=256)
def canonical_environment(host: str) -> str:
    """The host name (no port, lower case), or its cloud's preferred alias when known.

    MSAL SDKs write the authority's host name as an entry's ``environment``
    and match entries across a cloud's aliases (``login.windows.net`` and
    ``login.microsoftonline.com`` are one cloud). Indexing every entry under
    its cloud's preferred alias makes that match a plain key lookup.
    """
    name = host.lower().strip()
    if name.startswith("["):
        name = name[1 : name.index("]")]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    known = known_instance_metadata(name)
    return known.preferred_network if known is not None else name
