"""Scope rules of Microsoft Entra ID and of generic OpenID Connect authorities, as pure functions.

A request names the scopes of one resource. The reserved OpenID Connect
scopes are added by aiomsal where a flow needs them and may not be passed in.
Entra ID compares scopes without regard to case; any other authority
compares them exactly, as RFC 6749 section 3.3 says (``Admin`` and ``admin``
are two scopes and two cache entries there).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .._errors import MsalConfigurationError

__all__ = [
    "RESERVED_SCOPES",
    "UserScopes",
    "canonical_scope",
    "client_credentials_scopes",
    "granted_scopes",
    "normalize_scopes",
    "resource_of",
    "target_key",
    "user_scopes",
]

RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access"})
#: OpenID Connect scopes that name no resource (``email`` is not reserved but is no API's).
OIDC_SCOPES = RESERVED_SCOPES | {"email"}
DEFAULT_SUFFIX = "/.default"
GRAPH = "https://graph.microsoft.com"


def normalize_scopes(scopes: Iterable[str], *, case_sensitive: bool = False) -> tuple[str, ...]:
    """Check the shape of ``scopes`` and return them without duplicates, in order.

    Duplicates are found without regard to case unless ``case_sensitive``.

    Raises :class:`MsalConfigurationError` for a bare string (a common slip:
    it would be read one character at a time), an empty list, a non-string,
    blank or white-space-containing scope, or a reserved scope.
    """
    if isinstance(scopes, (str, bytes)):
        raise MsalConfigurationError(
            f"scopes must be a list of strings, not a single string: use [{scopes!r}]"
        )
    seen: dict[str, str] = {}
    for scope in scopes:
        if not isinstance(scope, str) or not scope or scope != scope.strip() or " " in scope:
            raise MsalConfigurationError(f"invalid scope {scope!r}: a non-empty string "
                                         "without white space is required")
        if scope.lower() in RESERVED_SCOPES:
            raise MsalConfigurationError(
                f"{scope!r} is a reserved scope: aiomsal adds openid, profile and "
                "offline_access itself where a flow needs them; leave them out"
            )
        seen.setdefault(scope if case_sensitive else scope.lower(), scope)
    if not seen:
        raise MsalConfigurationError("at least one scope is required")
    return tuple(seen.values())


def resource_of(scope: str) -> str | None:
    """The resource a URI-form scope belongs to, or None for a short scope.

    ``https://graph.microsoft.com/User.Read`` → ``https://graph.microsoft.com``;
    ``https://management.core.windows.net//.default`` → the v1 resource
    ``https://management.core.windows.net/`` (the double slash is part of it).
    """
    if "://" not in scope:
        return None
    head, _, _ = scope.rpartition("/")
    if not head or head.endswith(":/"):
        return scope
    return head


def client_credentials_scopes(
    scopes: Iterable[str], *, entra: bool, case_sensitive: bool = False
) -> tuple[str, ...]:
    """Validate the scopes of a client-credentials request.

    Entra ID issues application tokens for exactly one resource, asked for as
    ``{resource}/.default``; anything else is refused here, before a request,
    with the fix in the message. Other OpenID Connect authorities accept any
    non-reserved scopes; ``case_sensitive`` (generic OpenID Connect) keeps
    scopes that differ in case apart.
    """
    normalized = normalize_scopes(scopes, case_sensitive=case_sensitive)
    if not entra:
        return normalized
    if len(normalized) != 1 or not normalized[0].endswith(DEFAULT_SUFFIX):
        raise MsalConfigurationError(
            "client credentials need exactly one scope of the form '{resource}/.default' "
            f"(for example 'https://graph.microsoft.com/.default'), got {list(normalized)!r}"
        )
    return normalized


def target_key(scopes: Iterable[str], *, case_sensitive: bool = False) -> str:
    """The cache target of a set of scopes: sorted, space-joined, lower-cased for Entra ID.

    ``case_sensitive`` (generic OpenID Connect authorities) keeps their case. A
    single scope that is already in its target form is its own target (the same
    string object, so a cache key and the scopes it was asked with share it).
    """
    if case_sensitive:
        return " ".join(sorted(set(scopes)))
    lowered = {scope.lower(): scope for scope in scopes}
    if len(lowered) == 1:
        ((low, scope),) = lowered.items()
        return scope if scope == low else low
    return " ".join(sorted(lowered))


def canonical_scope(scope: str, *, case_sensitive: bool = False) -> str:
    """The canonical form of a scope, as the cache compares it.

    For Entra ID, lower-cased and in full: ``User.Read`` and
    ``https://graph.microsoft.com/User.Read`` are one scope to Entra ID, and
    so to the cache. With ``case_sensitive`` (any other authority), the scope
    itself.
    """
    if case_sensitive:
        return scope
    lowered = scope.lower()
    if "/" in lowered or lowered in OIDC_SCOPES:
        return lowered
    return f"{GRAPH}/{lowered}"


@dataclass(frozen=True, slots=True)
class UserScopes:
    """The scopes of a user-flow request: as given, and their canonical set and cache target."""

    requested: tuple[str, ...]
    canonical: frozenset[str]
    target: str

    @classmethod
    def of(cls, scopes: tuple[str, ...], *, case_sensitive: bool = False) -> UserScopes:
        canonical = frozenset(
            canonical_scope(scope, case_sensitive=case_sensitive) for scope in scopes
        )
        return cls(scopes, canonical, " ".join(sorted(canonical)))

    @property
    def with_reserved(self) -> tuple[str, ...]:
        """What a user-flow request sends: the scopes plus openid, profile, offline_access."""
        return (*self.requested, "openid", "profile", "offline_access")


def user_scopes(
    scopes: Iterable[str], *, entra: bool, case_sensitive: bool = False
) -> UserScopes:
    """Validate the scopes of a user flow (one resource per request on Entra ID).

    With ``case_sensitive`` (generic OpenID Connect authorities), scopes keep
    their case (RFC 6749 section 3.3).
    """
    normalized = normalize_scopes(scopes, case_sensitive=case_sensitive)
    result = UserScopes.of(normalized, case_sensitive=case_sensitive)
    if entra:
        resources = {resource_of(scope) for scope in result.canonical if scope not in OIDC_SCOPES}
        if len(resources) > 1:
            raise MsalConfigurationError(
                "a token is issued for one resource at a time; request the scopes of "
                f"{sorted(r or '?' for r in resources)} in separate calls"
            )
    return result


def granted_scopes(granted: Iterable[str] | None, requested: Iterable[str]) -> tuple[str, ...]:
    """The scopes a result reports: what the authority granted, reserved scopes left out."""
    # The requested strings where the authority granted the same (kept once, not per token).
    asked = tuple(requested)
    known = {scope: scope for scope in asked}
    scopes = [known.get(s, s) for s in (granted or asked) if s.lower() not in RESERVED_SCOPES]
    result = tuple(sorted(scopes or asked))
    return asked if result == asked else result
