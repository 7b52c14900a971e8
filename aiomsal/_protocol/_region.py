"""Regional token endpoints (Entra's ESTS-R) for client credentials (sans-I/O).

MSAL's rules: a region is a lower-case DNS label; the regional host of the
public cloud's hosts is ``{region}.login.microsoft.com``, of any other host
``{region}.{host}``. ``azure_region`` names the region, ``True`` asks for it
to be detected (here from ``REGION_NAME``, which Azure's hosting services
set), ``False`` opts out; without it, ``MSAL_FORCE_REGION`` may force one.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from .._errors import MsalConfigurationError

__all__ = ["choose_region", "regional_token_endpoint", "valid_region"]

_log = logging.getLogger("aiomsal")

_REGION = re.compile(r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")
#: Hosts whose regional form is ``{region}.login.microsoft.com``.
_PUBLIC_CLOUD_HOSTS = frozenset(
    {"login.microsoftonline.com", "login.microsoft.com", "login.windows.net", "sts.windows.net"}
)


def valid_region(region: object) -> bool:
    return isinstance(region, str) and _REGION.fullmatch(region) is not None


def _explicit(region: str, name: str) -> str:
    if not valid_region(region):
        raise MsalConfigurationError(
            f"invalid {name}={region!r}: a region is a lower-case DNS label such as 'westus2'"
        )
    return region


def choose_region(
    azure_region: str | bool | None, environ: Mapping[str, str], *, confidential: bool
) -> str | None:
    """The region token requests go to, or None for the global endpoint.

    An invalid ``azure_region`` or ``MSAL_FORCE_REGION`` raises
    :class:`MsalConfigurationError`; an invalid detected ``REGION_NAME`` is
    discarded with a warning. aiomsal does not ask IMDS for the region.
    """
    if azure_region is False:
        return None
    if azure_region is True:
        detected = environ.get("REGION_NAME", "")
        if not detected:
            _log.warning("azure_region=True, but REGION_NAME is not set: using the global endpoint")
            return None
        if not valid_region(detected):
            _log.warning("REGION_NAME %r is not a region name: using the global endpoint", detected)
            return None
        return detected
    if isinstance(azure_region, str):
        return _explicit(azure_region, "azure_region")
    if azure_region is not None:
        raise MsalConfigurationError("azure_region must be a region name, True, False or None")
    forced = environ.get("MSAL_FORCE_REGION")
    if confidential and forced is not None:
        return _explicit(forced, "MSAL_FORCE_REGION")
    return None


def regional_token_endpoint(token_endpoint: str, region: str) -> str | None:
    """``token_endpoint`` on its regional host, or None where regions do not apply (an IP)."""
    parts = urlsplit(token_endpoint)
    host = parts.hostname or ""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        return None
    regional = (
        f"{region}.login.microsoft.com" if host in _PUBLIC_CLOUD_HOSTS else f"{region}.{host}"
    )
    netloc = regional if parts.port is None else f"{regional}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))
