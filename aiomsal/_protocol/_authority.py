"""Authorities: parsing, OpenID metadata discovery and instance discovery (sans-I/O).

An authority URL names who issues the tokens. :func:`parse_authority` checks
it and sorts it into one of five kinds:

``aad``
    Microsoft Entra ID: ``https://login.microsoftonline.com/{tenant}`` and the
    national clouds, or any other host with a single tenant segment (such a
    host is validated by instance discovery at run time).
``b2c``
    Azure AD B2C: ``https://{name}.b2clogin.com/{tenant}/{policy}`` (also with
    a ``/tfp/`` prefix); on any other host, a ``/tfp/{tenant}/{policy}`` path
    or a ``/{tenant}/{policy}`` path with a policy named ``B2C_...``.
``ciam``
    Microsoft Entra External ID: ``https://{name}.ciamlogin.com[/{tenant}]``.
``adfs``
    AD FS: ``https://{host}/adfs``.
``oidc``
    Any OpenID Connect issuer, given as ``oidc_authority``.

Nothing here performs I/O: requests are built as :class:`HttpRequest` values
and answers parsed from :class:`HttpResponse` values.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import SplitResult, unquote, urlsplit

from .._errors import MsalConfigurationError, MsalServiceError
from ._error_response import decode_json_object, redirect_note, service_error_from_body
from ._http import HttpRequest, HttpResponse

__all__ = [
    "DEFAULT_AUTHORITY",
    "Authority",
    "AuthorityKind",
    "AuthorityMetadata",
    "build_metadata_request",
    "parse_authority",
    "parse_metadata_response",
]

AuthorityKind = Literal["aad", "b2c", "adfs", "ciam", "oidc"]

DEFAULT_AUTHORITY = "https://login.microsoftonline.com/common"

#: Tenants that stand for many directories rather than one.
MULTI_TENANTS = frozenset({"common", "organizations", "consumers"})

_B2C_HOST_SUFFIXES = (".b2clogin.com", ".b2clogin.cn", ".b2clogin.us", ".b2clogin.de")
_CIAM_HOST_SUFFIX = ".ciamlogin.com"
_DEFAULT_PORTS = {"https": 443, "http": 80}

# A tenant, B2C policy or AD FS segment: a GUID, a domain name or a plain name.
_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")
# Any RFC 3986 path segment (for OpenID Connect issuers).
_OIDC_SEGMENT = re.compile(r"(?:[A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})+")
_DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
#: The most of an authority URL that an error message quotes.
_SHOWN_LENGTH = 200
_AUTHORITY_FORMS = (
    "https://login.microsoftonline.com/{tenant}, "
    "https://{name}.b2clogin.com/{tenant}/{policy}, "
    "https://{name}.ciamlogin.com[/{tenant}] or https://{host}/adfs"
)


@dataclass(frozen=True, slots=True)
class Authority:
    """A checked, canonical authority. Build it with :func:`parse_authority`."""

    kind: AuthorityKind
    #: ``"https"``, or ``"http"`` for a loopback host only.
    scheme: str
    #: Lower-case host, with ``:port`` for a non-default port: the cache "environment".
    host: str
    #: aad/ciam: the tenant segment; b2c: the tenant domain; adfs and oidc: ``None``.
    tenant: str | None
    #: The canonical path after the host, without a trailing slash ("" for a bare oidc host).
    path: str

    @property
    def url(self) -> str:
        """The canonical authority URL."""
        return f"{self.scheme}://{self.host}{self.path}"

    @property
    def is_loopback(self) -> bool:
        """Whether the host is this machine (127.0.0.0/8, ::1 or localhost)."""
        return _is_loopback_host(_hostname(self.host))

    @property
    def metadata_url(self) -> str:
        """The OpenID Connect discovery document of this authority."""
        if self.kind in ("adfs", "oidc"):
            return f"{self.url}/.well-known/openid-configuration"
        return f"{self.url}/v2.0/.well-known/openid-configuration"

    @property
    def is_multi_tenant(self) -> bool:
        """Whether the tenant is ``common``, ``organizations`` or ``consumers``."""
        return self.kind in ("aad", "ciam") and self.tenant in MULTI_TENANTS

    def with_tenant(self, tenant: str) -> Authority:
        """Return this authority for another tenant (a per-request override).

        Only Entra ("aad") and External ID ("ciam") authorities have a tenant
        to replace; any other kind, or a malformed tenant, raises
        :class:`MsalConfigurationError`.
        """
        if self.kind not in ("aad", "ciam"):
            raise MsalConfigurationError(
                f"A tenant cannot be chosen per request for a {self.kind} authority ({self.url});"
                " only Microsoft Entra and External ID authorities have tenants"
            )
        if not isinstance(tenant, str) or not _is_segment(tenant) or tenant.lower() == "adfs":
            raise MsalConfigurationError(
                f"Invalid tenant {tenant!r}: a tenant is a GUID, a domain name,"
                " 'common', 'organizations' or 'consumers'"
            )
        tenant = _canonical_tenant(tenant)
        return replace(self, tenant=tenant, path=f"/{tenant}")


@dataclass(frozen=True, slots=True)
class AuthorityMetadata:
    """The endpoints read from an authority's OpenID Connect discovery document."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    device_authorization_endpoint: str | None
    jwks_uri: str | None
    end_session_endpoint: str | None


def parse_authority(
    authority: str | None = None, *, oidc_authority: str | None = None
) -> Authority:
    """Check an authority URL and return its canonical :class:`Authority`.

    ``authority`` defaults to ``https://login.microsoftonline.com/common``;
    ``oidc_authority`` names a generic OpenID Connect issuer instead, and the
    two cannot be combined. Any malformed URL raises
    :class:`MsalConfigurationError`.
    """
    if oidc_authority is not None:
        if authority is not None:
            raise MsalConfigurationError("Give either authority or oidc_authority, not both")
        scheme, host, segments, shown = _split_url(oidc_authority, "oidc_authority")
        for segment in segments:
            if not _OIDC_SEGMENT.fullmatch(segment):
                raise MsalConfigurationError(
                    f"oidc_authority {shown!r} has an invalid path segment {segment!r}"
                )
        return Authority("oidc", scheme, host, None, "".join(f"/{s}" for s in segments))

    url = DEFAULT_AUTHORITY if authority is None else authority
    scheme, host, segments, shown = _split_url(url, "authority")
    for segment in segments:
        if not _is_segment(segment):
            raise MsalConfigurationError(
                f"authority {shown!r} has an invalid path segment {segment!r};"
                f" expected {_AUTHORITY_FORMS}"
            )
    hostname = _hostname(host)
    kind, tenant, path = _classify(shown, hostname, segments)
    return Authority(kind, scheme, host, tenant, path)


def _classify(
    url: str, hostname: str, segments: list[str]
) -> tuple[AuthorityKind, str | None, str]:
    """Sort a checked authority into its kind; return (kind, tenant, path)."""
    lowered = [s.lower() for s in segments]
    if hostname.endswith(_B2C_HOST_SUFFIXES):
        b2c = _b2c_shape(segments, lowered, require_policy_prefix=False)
        if b2c is None:
            raise MsalConfigurationError(
                f"B2C authority {url!r} must have the form"
                " https://{name}.b2clogin.com/{tenant}/{policy}"
                " (optionally with /tfp/ before the tenant)"
            )
        return b2c
    if hostname.endswith(_CIAM_HOST_SUFFIX):
        if not segments:
            name = hostname[: -len(_CIAM_HOST_SUFFIX)]
            if "." in name:
                raise MsalConfigurationError(
                    f"External ID authority {url!r} needs a tenant:"
                    " https://{name}.ciamlogin.com/{tenant}"
                )
            tenant = f"{name}.onmicrosoft.com"
            return "ciam", tenant, f"/{tenant}"
        if len(segments) == 1:
            tenant = _canonical_tenant(segments[0])
            return "ciam", tenant, f"/{tenant}"
        raise MsalConfigurationError(
            f"External ID authority {url!r} must have the form"
            " https://{name}.ciamlogin.com/{tenant}; remove"
            f" {'/' + '/'.join(segments[1:])!r}"
        )
    if lowered[:1] == ["adfs"]:
        if len(segments) > 1:
            raise MsalConfigurationError(
                f"AD FS authority {url!r} must have the form https://{{host}}/adfs; remove"
                f" {'/' + '/'.join(segments[1:])!r}"
            )
        return "adfs", None, "/adfs"
    b2c = _b2c_shape(segments, lowered, require_policy_prefix=True)
    if b2c is not None:
        return b2c
    if not segments:
        raise MsalConfigurationError(
            f"authority {url!r} has no tenant; expected {_AUTHORITY_FORMS}"
            " (use 'common', 'organizations', 'consumers', a tenant GUID or a domain)"
        )
    if len(segments) > 1:
        raise MsalConfigurationError(
            f"authority {url!r} must be the host followed by the tenant only, such as"
            f" https://{hostname}/{segments[0]}; remove {'/' + '/'.join(segments[1:])!r}"
        )
    tenant = _canonical_tenant(segments[0])
    return "aad", tenant, f"/{tenant}"


def _b2c_shape(
    segments: list[str], lowered: list[str], *, require_policy_prefix: bool
) -> tuple[AuthorityKind, str, str] | None:
    """Match ``/tfp/{tenant}/{policy}`` or ``/{tenant}/{policy}``; None when it does not.

    Off the B2C hosts, the second form needs a policy named ``B2C_...``.
    """
    if len(segments) == 3 and lowered[0] == "tfp":
        tenant = segments[1]
    elif len(segments) == 2 and lowered[0] != "tfp":
        tenant = segments[0]
        if require_policy_prefix and not lowered[1].startswith("b2c_"):
            return None
    else:
        return None
    return "b2c", tenant, "/" + "/".join(segments)


def _split_url(url: object, name: str) -> tuple[str, str, list[str], str]:
    """Check the parts common to every authority; return (scheme, host, segments, shown).

    ``shown`` is what error messages may quote of ``url``: never user
    information (a URL with an ``@`` is refused without being quoted), never a
    query or fragment (where signatures travel), at most 200 characters.
    """
    if not isinstance(url, str):
        raise MsalConfigurationError(f"{name} must be a string, not {type(url).__name__}")
    if not url:
        raise MsalConfigurationError(f"{name} is empty")
    if "@" in url:
        raise MsalConfigurationError(
            f"{name} must not contain user information (an '@'); it is not shown here,"
            " as it may hold a password"
        )
    shown = url.split("?", 1)[0].split("#", 1)[0]
    if len(shown) > _SHOWN_LENGTH:
        shown = shown[:_SHOWN_LENGTH] + "..."
    if "?" in url or "#" in url:
        raise MsalConfigurationError(
            f"{name} {shown!r} must not have a query or a fragment (not shown here)"
        )
    if not url.isascii() or any(c.isspace() or not c.isprintable() for c in url):
        raise MsalConfigurationError(
            f"{name} {shown!r} contains whitespace, control or non-ASCII characters"
            " (use the punycode form of an internationalized host)"
        )
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # its words quote at most the host: no '@', no query here
        raise MsalConfigurationError(f"{name} {shown!r} is not a valid URL: {exc}") from None
    if not parts.scheme or not url.lower().startswith(f"{parts.scheme}://"):
        raise MsalConfigurationError(f"{name} {shown!r} must be an absolute https:// URL")
    host = _canonical_host(parts, shown, name)
    scheme = parts.scheme
    if scheme != "https" and not (scheme == "http" and _is_loopback_host(_hostname(host))):
        raise MsalConfigurationError(
            f"{name} {shown!r} must use https"
            + (" (http is accepted for loopback hosts only)" if scheme == "http" else "")
        )
    path = parts.path.rstrip("/")
    segments = path.split("/")[1:] if path else []
    if "" in segments:
        raise MsalConfigurationError(f"{name} {shown!r} has an empty path segment")
    for segment in segments:
        if _is_dot_segment(segment):
            raise MsalConfigurationError(
                f"{name} {shown!r} has an invalid path segment {segment!r}: a dot segment"
                " (or an encoded slash), which a server would resolve to another path"
            )
    return scheme, host, segments, shown


def _is_dot_segment(segment: str) -> bool:
    """``.`` or ``..``, raw or percent-encoded (once or twice), or hiding a slash."""
    once = unquote(segment)
    twice = unquote(once)
    return (
        once in (".", "..")
        or twice in (".", "..")
        or any(c in twice for c in "/\\")
        or not twice.isprintable()
    )


def _canonical_host(parts: SplitResult, url: str, name: str) -> str:
    """Return the lower-case host, with ``:port`` when the port is not the default."""
    hostname = parts.hostname
    if not hostname:
        raise MsalConfigurationError(f"{name} {url!r} has no host")
    if parts.netloc.startswith("["):
        try:
            ipaddress.IPv6Address(hostname)
        except ValueError:
            raise MsalConfigurationError(f"{name} {url!r} has an invalid IPv6 host") from None
        host = f"[{hostname}]"
    elif not all(_DNS_LABEL.fullmatch(label) for label in hostname.split(".")):
        raise MsalConfigurationError(f"{name} {url!r} has an invalid host {hostname!r}")
    else:
        host = hostname
    port_text = parts.netloc.rpartition("]")[2].rpartition(":")
    if port_text[1]:
        if not port_text[2].isdigit() or not 0 < int(port_text[2]) < 65536:
            raise MsalConfigurationError(f"{name} {url!r} has an invalid port")
        port = int(port_text[2])
        if port != _DEFAULT_PORTS.get(parts.scheme):
            host = f"{host}:{port}"
    return host


def _hostname(host: str) -> str:
    """Strip the port and IPv6 brackets from a canonical host."""
    if host.startswith("["):
        return host[1 : host.index("]")]
    return host.partition(":")[0]


def _is_loopback_host(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _is_segment(segment: str) -> bool:
    return bool(_SEGMENT.fullmatch(segment)) and segment not in (".", "..")


def _canonical_tenant(tenant: str) -> str:
    """Lower-case the multi-tenant names; keep any other tenant as given."""
    lowered = tenant.lower()
    return lowered if lowered in MULTI_TENANTS else tenant


# --- OpenID Connect metadata (tenant discovery) -------------------------------------------


def build_metadata_request(authority: Authority) -> HttpRequest:
    """Build the GET of ``authority``'s OpenID Connect discovery document."""
    return HttpRequest("GET", authority.metadata_url, headers={"Accept": "application/json"})


def parse_metadata_response(authority: Authority, response: HttpResponse) -> AuthorityMetadata:
    """Read the endpoints of ``authority`` from its discovery document.

    Raises :class:`MsalServiceError` with the authority's own error (such as
    ``invalid_tenant`` for an unknown tenant) for an error answer, and
    ``invalid_response`` for a document that is not JSON, lacks the
    authorization or token endpoint, or names an issuer or endpoint that is
    not https (plain http only when the authority and the endpoint are both
    loopback). A redirect is not followed to another origin: its 3xx answer is
    ``invalid_response`` too.
    """
    body = decode_json_object(response)
    if body is not None and isinstance(body.get("error"), str):
        raise service_error_from_body(body, response.status)
    if not 200 <= response.status < 300:
        raise MsalServiceError(
            "invalid_response",
            f"The metadata of authority {authority.url} could not be read:"
            f" {authority.metadata_url} answered HTTP {response.status}"
            + ("" if body is not None else " without a JSON object")
            + redirect_note(response),
            status=response.status,
        )
    if body is None:
        raise _invalid_metadata(authority, "the document is not a JSON object", response.status)
    issuer = _endpoint(authority, body, "issuer", response.status)
    if issuer is None:
        raise _invalid_metadata(authority, "it has no issuer", response.status)
    endpoints = {
        key: _endpoint(authority, body, key, response.status)
        for key in (
            "authorization_endpoint",
            "token_endpoint",
            "device_authorization_endpoint",
            "jwks_uri",
            "end_session_endpoint",
        )
    }
    authorization_endpoint = endpoints["authorization_endpoint"]
    token_endpoint = endpoints["token_endpoint"]
    if authorization_endpoint is None or token_endpoint is None:
        raise _invalid_metadata(
            authority, "it lacks the authorization_endpoint or token_endpoint", response.status
        )
    device_endpoint = endpoints["device_authorization_endpoint"]
    if device_endpoint is None and authority.kind == "aad":
        device_endpoint = _derived_device_endpoint(token_endpoint)
    return AuthorityMetadata(
        issuer=issuer,
        authorization_endpoint=authorization_endpoint,
        token_endpoint=token_endpoint,
        device_authorization_endpoint=device_endpoint,
        jwks_uri=endpoints["jwks_uri"],
        end_session_endpoint=endpoints["end_session_endpoint"],
    )


def _endpoint(authority: Authority, body: dict[str, Any], key: str, status: int) -> str | None:
    """Return the endpoint ``key`` of a discovery document, checked; None when absent."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise _invalid_metadata(authority, f"{key} is not a URL", status)
    try:
        parts = urlsplit(value)
        hostname = parts.hostname
    except ValueError:
        raise _invalid_metadata(authority, f"{key} is not a URL", status) from None
    if not hostname or "@" in parts.netloc or parts.fragment:
        raise _invalid_metadata(authority, f"{key} is not a valid URL", status)
    if parts.scheme == "https" or (
        parts.scheme == "http" and authority.is_loopback and _is_loopback_host(hostname)
    ):
        return value
    raise _invalid_metadata(
        authority, f"{key} uses the scheme {parts.scheme[:20]!r}, not https", status
    )


def _derived_device_endpoint(token_endpoint: str) -> str | None:
    """Entra serves device codes beside its token endpoint: ``.../token`` → ``.../devicecode``."""
    parts = urlsplit(token_endpoint)
    if not parts.path.endswith("/token"):
        return None
    return parts._replace(path=parts.path[: -len("token")] + "devicecode").geturl()


def _invalid_metadata(authority: Authority, problem: str, status: int) -> MsalServiceError:
    return MsalServiceError(
        "invalid_response",
        f"The metadata of authority {authority.url} at {authority.metadata_url}"
        f" is unusable: {problem}",
        status=status,
    )
