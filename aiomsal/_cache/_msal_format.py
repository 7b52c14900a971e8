"""MSAL's unified token cache schema, entry by entry (sans-I/O).

Every MSAL SDK writes the same JSON document: sections ``AccessToken``,
``RefreshToken``, ``IdToken``, ``Account`` and ``AppMetadata``, each mapping
an entry's key to its fields. Keys are built here exactly as MSAL Python
builds them from the fields (lower-cased, ``-``-joined), so that MSAL finds
and overwrites aiomsal's entries rather than duplicating them. Timestamps are
decimal strings, as the schema says; numbers are accepted when reading.

Two additions, both ignored by MSAL Python and understood by MSAL.NET and
msal-node: on-behalf-of entries carry ``user_assertion_hash``, and their key
ends with that hash (as MSAL ends an extended key with ``ext_cache_key``),
so that two assertions of one user never share a key in one document.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from .._errors import MsalServiceError
from .._protocol._identity import decode_id_token
from .._protocol._refresh_policy import RefreshPolicy
from .._protocol._scopes import RESERVED_SCOPES, UserScopes, target_key
from .._result import Account
from ._entries import AccessTokenEntry, AccessTokenKey, Identity, PartitionKey, RefreshTokenEntry
from ._environment import canonical_environment, is_issuer_environment
from ._store import CachedToken

__all__ = [
    "ACCESS_TOKEN",
    "ACCOUNT",
    "APP_METADATA",
    "ID_TOKEN",
    "REFRESH_TOKEN",
    "SECTIONS",
    "Fields",
    "MAX_TIMESTAMP",
    "ParsedIdToken",
    "Unreadable",
    "access_token_fields",
    "account_fields",
    "app_metadata_fields",
    "apply_extras",
    "cached_token",
    "extra_fields",
    "id_token_fields",
    "number",
    "parse_access_token",
    "parse_account",
    "parse_id_token",
    "parse_refresh_token",
    "refresh_token_fields",
]

ACCESS_TOKEN = "AccessToken"
REFRESH_TOKEN = "RefreshToken"
ID_TOKEN = "IdToken"
ACCOUNT = "Account"
APP_METADATA = "AppMetadata"
#: The sections aiomsal reads, in the order it writes them.
SECTIONS = (ACCESS_TOKEN, REFRESH_TOKEN, ID_TOKEN, ACCOUNT, APP_METADATA)

Fields = dict[str, Any]

#: The fields each section's parser understands; any other field is kept as it was.
_KNOWN: dict[str, frozenset[str]] = {
    ACCESS_TOKEN: frozenset({
        "credential_type", "secret", "home_account_id", "environment", "client_id", "target",
        "realm", "token_type", "cached_at", "expires_on", "extended_expires_on", "refresh_on",
        "key_id", "user_assertion_hash",
    }),
    REFRESH_TOKEN: frozenset({
        "credential_type", "secret", "home_account_id", "environment", "client_id", "target",
        "last_modification_time", "family_id", "user_assertion_hash",
    }),
    ID_TOKEN: frozenset({
        "credential_type", "secret", "home_account_id", "environment", "realm", "client_id",
    }),
    ACCOUNT: frozenset({
        "home_account_id", "environment", "realm", "local_account_id", "username",
        "authority_type",
    }),
    APP_METADATA: frozenset({"client_id", "environment", "family_id"}),
}

_POLICY = RefreshPolicy()


class Unreadable(ValueError):
    """An entry aiomsal cannot use (malformed, or of a kind it does not serve)."""


def extra_fields(section: str, fields: Mapping[str, Any]) -> Fields | None:
    """The fields of an entry that aiomsal does not model (None when there are none)."""
    known = _KNOWN[section]
    if known.issuperset(fields):
        return None
    return {name: value for name, value in fields.items() if name not in known}


def apply_extras(fields: Fields, extras: Fields) -> None:
    """Add back the fields an entry was read with that aiomsal does not model."""
    if "kid" in extras and "key_id" in fields and fields["key_id"] == extras["kid"]:
        del fields["key_id"]  # MSAL.NET's name for it; write it back as it came
    fields.update(extras)


# -- keys (as MSAL Python's key makers build them from the fields) -----------------------


def _key(*parts: str | None) -> str:
    """MSAL's key, lower-cased; a generic OIDC issuer's keeps its case (paths and scopes do)."""
    key = "-".join(part or "" for part in parts)
    environment = parts[1] or ""
    return key if is_issuer_environment(environment) else key.lower()


def _at_key(fields: Fields) -> str:
    parts = [fields["home_account_id"], fields["environment"], "accesstoken",
             fields["client_id"], fields["realm"], fields["target"]]
    if fields.get("user_assertion_hash"):
        parts.append(fields["user_assertion_hash"])
    return _key(*parts)


# -- writing ------------------------------------------------------------------------------


def access_token_fields(token: CachedToken) -> tuple[str, Fields]:
    """The key and fields of an access token."""
    entry, key = token.entry, token.key
    obo = key.user_assertion_hash
    home = key.home_account_id or (token.identity.home_account_id if token.identity else "")
    fields: Fields = {
        "credential_type": ACCESS_TOKEN,
        "secret": entry.secret,
        # MSAL Python finds application tokens by a null home_account_id; an
        # on-behalf-of token is a user's and must never match that lookup.
        "home_account_id": home if home or obo else None,
        "environment": key.environment,
        "client_id": key.client_id,
        "target": " ".join(sorted(entry.scopes)),
        "realm": key.realm,
        "token_type": entry.token_type,
        "cached_at": str(entry.cached_at),
        "expires_on": str(entry.expires_on),
        "extended_expires_on": str(entry.extended_expires_on),
    }
    if entry.key_id:
        fields["key_id"] = entry.key_id
    if entry.refresh_on is not None:
        fields["refresh_on"] = str(entry.refresh_on)
    if obo:
        fields["user_assertion_hash"] = obo
    return _at_key(fields), fields


def refresh_token_fields(entry: RefreshTokenEntry) -> tuple[str, Fields]:
    partition = entry.partition
    fields: Fields = {
        "credential_type": REFRESH_TOKEN,
        "secret": entry.secret,
        "home_account_id": entry.home_account_id or partition.home_account_id,
        "environment": partition.environment,
        "client_id": partition.client_id,
        "target": entry.target,
        "last_modification_time": str(entry.last_modification_time),
    }
    if entry.family_id:
        fields["family_id"] = entry.family_id
    if partition.user_assertion_hash:
        fields["user_assertion_hash"] = partition.user_assertion_hash
    parts = [fields["home_account_id"], fields["environment"], "refreshtoken",
             fields["client_id"], "", fields["target"]]
    if partition.user_assertion_hash:
        parts.append(partition.user_assertion_hash)
    return _key(*parts), fields


def id_token_realm(identity: Identity) -> str:
    return identity.account.realm if identity.account else identity.tenant_id or ""


def id_token_fields(
    identity: Identity, environment: str, client_id: str
) -> tuple[str, Fields] | None:
    """The user's ID token as issued to ``client_id`` (None when it was issued to another)."""
    if not identity.id_token:
        return None
    audience = (identity.id_token_claims or {}).get("aud")
    if audience is not None and client_id != audience and client_id not in (
        audience if isinstance(audience, list) else ()
    ):
        return None
    realm = id_token_realm(identity)
    fields: Fields = {
        "credential_type": ID_TOKEN,
        "secret": identity.id_token,
        "home_account_id": identity.home_account_id,
        "environment": environment,
        "realm": realm,
        "client_id": client_id,
    }
    return _key(identity.home_account_id, environment, "idtoken", client_id, realm, ""), fields


def account_fields(account: Account, environment: str) -> tuple[str, Fields]:
    fields: Fields = {
        "home_account_id": account.home_account_id,
        "environment": environment,
        "realm": account.realm,
        "local_account_id": account.local_account_id,
        "username": account.username or "",  # the schema wants no null here
        "authority_type": account.authority_type,
    }
    return _key(account.home_account_id, environment, account.realm), fields


def app_metadata_fields(
    environment: str, client_id: str, family_id: str | None
) -> tuple[str, Fields]:
    fields: Fields = {"client_id": client_id, "environment": environment}
    if family_id:
        fields["family_id"] = family_id
    return f"appmetadata-{environment}-{client_id}", fields  # MSAL does not lower-case this one


# -- reading ------------------------------------------------------------------------------


#: The latest timestamp an entry may carry: the end of year 9999, as an int.
MAX_TIMESTAMP = 253_402_300_799


def number(value: object) -> int:
    """A timestamp: a decimal string (the schema) or a number (some writers).

    Raises :class:`Unreadable` for anything else, and for a time that is not
    finite, negative, or after year 9999 (``Infinity``, ``NaN``, 400 digits).
    """
    if isinstance(value, bool):
        raise Unreadable("a timestamp is not a boolean")
    result: int | None = None
    if isinstance(value, int):
        result = value
    elif isinstance(value, float):
        result = int(value) if math.isfinite(value) else None
    elif isinstance(value, str) and len(value) <= 32:
        try:
            result = int(value)
        except ValueError:
            try:
                parsed = float(value)
            except ValueError:
                parsed = math.nan
            result = int(parsed) if math.isfinite(parsed) else None
    if result is None:
        raise Unreadable("a timestamp is not a finite number")
    if not 0 <= result <= MAX_TIMESTAMP:
        raise Unreadable("a timestamp is out of range")
    return result


def _text(fields: Mapping[str, Any], name: str, default: str | None = None) -> str:
    value = fields.get(name)
    if isinstance(value, str):
        return value
    if value is None and default is not None:
        return default
    raise Unreadable(f"{name} is not a string")


def _optional_text(fields: Mapping[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    raise Unreadable(f"{name} is not a string")


def _kind(fields: Mapping[str, Any], expected: str) -> None:
    kind = fields.get("credential_type", expected)
    if not isinstance(kind, str) or kind.lower() != expected.lower():
        raise Unreadable(f"credential_type {kind!r} is not {expected}")


@lru_cache(maxsize=4096)
def _targets(target: str, user: bool, exact: bool) -> tuple[tuple[str, ...], str]:
    """(scopes, lookup target) of an entry's target; one shared tuple per distinct target.

    A user's token is looked up without the OpenID Connect scopes that other
    SDKs keep in its target (``User.Read openid profile``). ``exact``: the
    scopes of a generic OIDC issuer, compared with their case.
    """
    scopes = tuple(target.split())
    if not user:
        return scopes, target_key(scopes, case_sensitive=exact)
    resource = tuple(s for s in scopes if s.lower() not in RESERVED_SCOPES)
    return scopes, UserScopes.of(resource or scopes, case_sensitive=exact).target


def parse_access_token(fields: Mapping[str, Any], now: float) -> AccessTokenEntry | None:
    """The entry, or None when it has expired; raises :class:`Unreadable`."""
    _kind(fields, ACCESS_TOKEN)
    if fields.get("ext_cache_key"):
        raise Unreadable("a token of an extended cache key (fmi_path) matches no aiomsal request")
    secret = _text(fields, "secret")
    environment = _text(fields, "environment")
    client_id = _text(fields, "client_id")
    if not secret or not environment or not client_id:
        raise Unreadable("an access token needs a secret, an environment and a client id")
    realm = _text(fields, "realm", "")
    target = _text(fields, "target")
    expires_on = number(fields.get("expires_on"))
    if expires_on <= now:
        return None
    cached_at = number(fields["cached_at"]) if "cached_at" in fields else min(int(now), expires_on)
    extended = fields.get("extended_expires_on")
    refresh_on = fields.get("refresh_on")
    home = _optional_text(fields, "home_account_id") or ""
    obo = _optional_text(fields, "user_assertion_hash") or ""
    environment = canonical_environment(environment)
    scopes, lookup = _targets(target, bool(home or obo), is_issuer_environment(environment))
    if not scopes:
        raise Unreadable("an access token needs a target")
    key = AccessTokenKey(environment, client_id, realm, "" if obo else home, obo, lookup)
    return AccessTokenEntry(
        key=key,
        secret=secret,
        scopes=scopes,
        token_type=_text(fields, "token_type", "Bearer") or "Bearer",
        cached_at=cached_at,
        expires_on=expires_on,
        extended_expires_on=expires_on if extended is None else number(extended),
        refresh_on=None if refresh_on in (None, "") else number(refresh_on),
        key_id=_optional_text(fields, "key_id") or _optional_text(fields, "kid"),
    )


def cached_token(entry: AccessTokenEntry, identity: Identity | None) -> CachedToken:
    """A cache record for an entry read from a document, timed by the default policy.

    An entry with a ``refresh_on`` (another process's, or an earlier run's,
    planned refresh) is refreshed then or a little later, never earlier: in a
    fleet sharing a storage, the process that fetched a token renews it first
    and the others adopt the new token from the storage (one request per key
    per lifetime for the fleet).
    """
    if entry.refresh_on is None or not entry.cached_at < entry.refresh_on < entry.expires_on:
        refresh_at = _POLICY.refresh_at(entry.cached_at, entry.expires_on, None)
    else:
        refresh_at = _POLICY.adopted_refresh_at(
            entry.cached_at, entry.expires_on, entry.refresh_on
        )
    return CachedToken(
        entry,
        serve_until=_POLICY.serve_until(entry.cached_at, entry.expires_on),
        refresh_at=refresh_at,
        identity=identity,
    )


def parse_refresh_token(fields: Mapping[str, Any]) -> RefreshTokenEntry:
    _kind(fields, REFRESH_TOKEN)
    secret = _text(fields, "secret")
    environment = _text(fields, "environment")
    client_id = _text(fields, "client_id")
    home = _optional_text(fields, "home_account_id") or ""
    obo = _optional_text(fields, "user_assertion_hash") or ""
    if not secret or not environment or not client_id or not (home or obo):
        raise Unreadable("a refresh token needs a secret, an environment, a client and an owner")
    modified = fields.get("last_modification_time")
    return RefreshTokenEntry(
        partition=PartitionKey(canonical_environment(environment), client_id,
                               "" if obo else home, obo),
        secret=secret,
        target=_text(fields, "target", ""),
        last_modification_time=0 if modified in (None, "") else number(modified),
        home_account_id=home,
        family_id=_optional_text(fields, "family_id"),
    )


def parse_account(fields: Mapping[str, Any]) -> tuple[str, Account]:
    """(canonical environment, account)."""
    home = _text(fields, "home_account_id")
    environment = _text(fields, "environment")
    authority_type = _text(fields, "authority_type", "MSSTS") or "MSSTS"
    if not home or not environment:
        raise Unreadable("an account needs a home_account_id and an environment")
    environment = canonical_environment(environment)
    return environment, Account(
        home_account_id=home,
        environment=environment,
        realm=_text(fields, "realm", ""),
        username=_optional_text(fields, "username"),
        local_account_id=_optional_text(fields, "local_account_id"),
        authority_type=authority_type,
    )


class ParsedIdToken:
    __slots__ = ("claims", "client_id", "environment", "home_account_id", "realm", "secret")

    def __init__(self, fields: Mapping[str, Any]) -> None:
        _kind(fields, ID_TOKEN)
        self.secret = _text(fields, "secret")
        self.home_account_id = _text(fields, "home_account_id")
        self.environment = canonical_environment(_text(fields, "environment"))
        self.realm = _text(fields, "realm", "")
        self.client_id = _text(fields, "client_id", "")
        try:
            self.claims: dict[str, Any] = decode_id_token(self.secret)
        except MsalServiceError as error:
            raise Unreadable("the ID token is not a JWT") from error


def parse_id_token(fields: Mapping[str, Any]) -> ParsedIdToken:
    return ParsedIdToken(fields)
