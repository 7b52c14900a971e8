"""Whole MSAL cache documents: written from the stores, read into them, merged (sans-I/O).

A document may hold what aiomsal does not model: sections of newer schemas,
fields of other SDKs, entries it cannot serve (a refresh token older than the
one it keeps, a token of an extended cache key). :class:`Leftovers` keeps
them, so that they are written back as they were read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any, NamedTuple

from .._result import Account
from ._entries import AccessTokenKey, Identity, PartitionKey, RefreshTokenEntry
from ._environment import canonical_environment
from ._msal_format import (
    ACCESS_TOKEN,
    ACCOUNT,
    APP_METADATA,
    ID_TOKEN,
    REFRESH_TOKEN,
    SECTIONS,
    Fields,
    ParsedIdToken,
    Unreadable,
    access_token_fields,
    account_fields,
    app_metadata_fields,
    apply_extras,
    cached_token,
    extra_fields,
    id_token_fields,
    parse_access_token,
    parse_account,
    parse_refresh_token,
    refresh_token_fields,
)
from ._msal_merge import Document
from ._partitions import parse_partition
from ._store import CachedToken, TokenStore
from ._user_store import UserTokenStore

__all__ = [
    "Leftovers",
    "LoadCount",
    "build_document",
    "load_document",
    "partition_document",
    "partition_expiry",
]



class Leftovers:
    """What a document held that the stores do not: written back by :func:`build_document`.

    Nothing is kept for an entry without unknown fields.
    """

    __slots__ = ("accounts", "entries", "fields", "sections")

    def __init__(self) -> None:
        #: Unknown top-level sections, as read.
        self.sections: dict[str, Any] = {}
        #: Entries of known sections that aiomsal does not use, as read (and AppMetadata).
        self.entries: dict[str, dict[str, Any]] = {}
        #: (section, key) -> (the entry's secret when read, its unknown fields).
        self.fields: dict[tuple[str, str], tuple[str | None, Fields]] = {}
        #: (home_account_id, environment) of the accounts read: once an account is
        #: signed out, the entries of it kept as read are not written back either.
        self.accounts: set[tuple[str, str]] = set()

    def clear(self) -> None:
        self.sections.clear()
        self.entries.clear()
        self.fields.clear()
        self.accounts.clear()

    def signed_out(self, entry: Any, users: UserTokenStore) -> bool:
        """Whether a kept entry belongs to an account that has been removed since."""
        if not self.accounts or not isinstance(entry, dict) or entry.get("user_assertion_hash"):
            return False
        home, environment = entry.get("home_account_id"), entry.get("environment")
        if not isinstance(home, str) or not isinstance(environment, str):
            return False
        owner = (home, canonical_environment(environment))
        return owner in self.accounts and users.account(home, (owner[1],)) is None

    def extras(self, section: str, key: str, secret: str | None) -> Fields | None:
        found = self.fields.get((section, key))
        if found is None:
            return None
        if found[0] is not None and found[0] != secret:
            del self.fields[(section, key)]  # the entry has been replaced since it was read
            return None
        return found[1]


# -- writing ------------------------------------------------------------------------------


class _Writer:
    """Collects entries into a document, with the unknown fields they were read with."""

    def __init__(self, leftovers: Leftovers) -> None:
        self.leftovers = leftovers
        self.sections: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
        self.apps: dict[tuple[str, str], str | None] = {}
        self.user_clients: dict[tuple[str, str], set[str]] = {}
        self._expiry: dict[str, int] = {}

    def _put(self, section: str, key: str, fields: Fields, secret: str | None) -> None:
        extras = self.leftovers.extras(section, key, secret) if self.leftovers.fields else None
        if extras:
            apply_extras(fields, extras)
        self.sections[section][key] = fields

    def _seen(self, environment: str, client_id: str, home: str, family_id: str | None) -> None:
        app = (environment, client_id)
        if family_id or app not in self.apps:
            self.apps[app] = family_id
        if home:
            self.user_clients.setdefault((home, environment), set()).add(client_id)

    def access_token(self, token: CachedToken) -> None:
        key, fields = access_token_fields(token)
        expires_on = token.expires_on
        if self._expiry.get(key, -1) >= expires_on:
            return  # two lookup keys, one MSAL key: the later token wins
        self._expiry[key] = expires_on
        self._put(ACCESS_TOKEN, key, fields, token.secret)
        lookup = token.key
        home = "" if lookup.user_assertion_hash else lookup.home_account_id
        self._seen(lookup.environment, lookup.client_id, home, None)

    def refresh_token(self, entry: RefreshTokenEntry) -> None:
        key, fields = refresh_token_fields(entry)
        self._put(REFRESH_TOKEN, key, fields, entry.secret)
        partition = entry.partition
        self._seen(
            partition.environment, partition.client_id, partition.home_account_id,
            entry.family_id,
        )

    def account(self, identity: Identity, environment: str) -> None:
        if identity.account is not None:
            key, fields = account_fields(identity.account, environment)
            self._put(ACCOUNT, key, fields, None)

    def id_token(self, identity: Identity, environment: str, client_id: str) -> None:
        written = id_token_fields(identity, environment, client_id)
        if written is not None:
            self._put(ID_TOKEN, written[0], written[1], identity.id_token)

    def document(self, *, unknown_sections: bool) -> Document:
        kept = self.leftovers.entries.get(APP_METADATA, {})
        metadata = self.sections[APP_METADATA]
        for (environment, client_id), family_id in self.apps.items():
            key, fields = app_metadata_fields(environment, client_id, family_id)
            base = metadata.get(key) or kept.get(key)
            metadata[key] = {**(base if isinstance(base, dict) else {}), **fields}
        document: Document = {name: entries for name, entries in self.sections.items() if entries}
        if unknown_sections:
            for name, value in self.leftovers.sections.items():
                document.setdefault(name, value)
        return document


def build_document(app: TokenStore, users: UserTokenStore, leftovers: Leftovers) -> Document:
    """The whole cache as one MSAL document."""
    writer = _Writer(leftovers)
    for section, entries in leftovers.entries.items():
        writer.sections[section].update(
            (key, entry) for key, entry in entries.items()
            if not leftovers.signed_out(entry, users)
        )
    for token in app:
        writer.access_token(token)
    for token in users.tokens():
        writer.access_token(token)
    for entry in users.refresh_tokens():
        writer.refresh_token(entry)
    for environment, identity in users.identities():
        writer.account(identity, environment)
        clients = writer.user_clients.get((identity.home_account_id, environment), ())
        for client_id in sorted(clients):
            writer.id_token(identity, environment, client_id)
    return writer.document(unknown_sections=True)


def _partition_contents(
    app: TokenStore, users: UserTokenStore, name: str
) -> tuple[list[CachedToken], RefreshTokenEntry | None, Identity | None, str, str]:
    parsed = parse_partition(name)
    environment, client_id = parsed.environment, parsed.client_id
    if parsed.kind == "app":
        key = AccessTokenKey(environment, client_id, parsed.owner, "", "", parsed.target)
        token = app.get(key)
        return ([] if token is None else [token]), None, None, environment, client_id
    home, assertion = (parsed.owner, "") if parsed.kind == "user" else ("", parsed.owner)
    partition = PartitionKey(environment, client_id, home, assertion)
    identity = users.account(home, (environment,)) if home else None
    return (
        users.partition_tokens(partition), users.refresh_token(partition), identity,
        environment, client_id,
    )


def partition_document(
    app: TokenStore, users: UserTokenStore, leftovers: Leftovers, name: str, now: float
) -> Document | None:
    """One partition's entries as an MSAL document; None when nothing in it can be used."""
    tokens, refresh, identity, environment, client_id = _partition_contents(app, users, name)
    live = [token for token in tokens if token.expires_on > now]
    if not live and refresh is None:
        return None
    writer = _Writer(leftovers)
    for token in live:
        writer.access_token(token)
    if refresh is not None:
        writer.refresh_token(refresh)
    if identity is not None:
        writer.account(identity, environment)
        writer.id_token(identity, environment, client_id)
    return writer.document(unknown_sections=False)


def partition_expiry(app: TokenStore, users: UserTokenStore, name: str) -> float | None:
    """The latest expiry of the partition's access tokens; None with a refresh token."""
    tokens, refresh, _, _, _ = _partition_contents(app, users, name)
    if refresh is not None or not tokens:
        return None
    return float(max(token.expires_on for token in tokens))


# -- reading ------------------------------------------------------------------------------


#: What reading a malformed entry may raise: each is skipped and counted, never raised.
_MALFORMED = (Unreadable, ValueError, TypeError, KeyError, AttributeError, OverflowError,
              RecursionError)


class LoadCount(NamedTuple):
    """What a load did: entries taken, and malformed entries skipped."""

    taken: int
    skipped: int


def _entries(document: Mapping[str, Any], section: str) -> Iterable[tuple[str, Any]]:
    entries = document.get(section)
    return entries.items() if isinstance(entries, dict) else ()


class _Loader:
    """Puts a document's entries into the stores; an existing entry stays unless older."""

    def __init__(
        self,
        app: TokenStore,
        users: UserTokenStore,
        leftovers: Leftovers,
        now: float,
        keep_unusable: bool,
    ) -> None:
        self.app = app
        self.users = users
        self.leftovers = leftovers
        self.now = now
        self.keep = keep_unusable
        self.taken = 0
        self.skipped = 0
        #: (home, environment) -> the identity of the account, and ID tokens without one.
        self.identities: dict[tuple[str, str], Identity] = {}
        self.bare_id_tokens: dict[tuple[str, str], ParsedIdToken] = {}
        self.others: dict[tuple[str, str, str, bool], Identity] = {}

    def unusable(self, section: str, key: str, value: Any) -> None:
        if self.keep:
            self.leftovers.entries.setdefault(section, {})[key] = value

    def malformed(self, section: str, key: str, value: Any) -> None:
        """An entry that cannot be read: kept as read (deserialize) or dropped, and counted."""
        self.skipped += 1
        self.unusable(section, key, value)

    def remember(
        self,
        section: str,
        written: Callable[[], tuple[str, Any] | None],
        secret: str | None,
        fields: Fields,
    ) -> None:
        """Keep the unknown fields of an entry taken (``written()`` writes it back)."""
        extras = extra_fields(section, fields)
        key = written() if extras else None
        if extras and key is not None:
            self.leftovers.fields[(section, key[0])] = (secret, extras)

    def load(self, document: Mapping[str, Any]) -> LoadCount:
        self.skipped += sum(
            name in SECTIONS and not isinstance(value, dict) for name, value in document.items()
        )  # a section that is no object: kept as read (deserialize), but counted
        if self.keep:
            for name, value in document.items():
                if name not in SECTIONS or not isinstance(value, dict):
                    self.leftovers.sections[name] = value
        metadata = self.leftovers.entries.setdefault(APP_METADATA, {})
        for key, fields in _entries(document, APP_METADATA):
            if not isinstance(fields, dict):
                self.malformed(APP_METADATA, key, fields)
            elif self.keep or key not in metadata:
                metadata[key] = fields
        self.accounts(document)
        for key, fields in _entries(document, ACCESS_TOKEN):
            try:
                self.access_token(key, fields)
            except _MALFORMED:
                self.malformed(ACCESS_TOKEN, key, fields)
        self.refresh_tokens(_entries(document, REFRESH_TOKEN))
        return LoadCount(self.taken, self.skipped)

    def accounts(self, document: Mapping[str, Any]) -> None:
        id_tokens: dict[tuple[str, str], list[tuple[str, Fields, ParsedIdToken]]] = {}
        for key, fields in _entries(document, ID_TOKEN):
            try:
                parsed = ParsedIdToken(_mapping(fields))
            except _MALFORMED:
                self.malformed(ID_TOKEN, key, fields)
                continue
            id_tokens.setdefault((parsed.home_account_id, parsed.environment), []).append(
                (key, fields, parsed)
            )
        for key, fields in _entries(document, ACCOUNT):
            try:
                environment, account = parse_account(_mapping(fields))
            except _MALFORMED:
                self.malformed(ACCOUNT, key, fields)
                continue
            try:
                self.account(key, fields, environment, account, id_tokens)
            except _MALFORMED:
                self.malformed(ACCOUNT, key, fields)
        for slot, candidates in id_tokens.items():
            self.bare_id_tokens[slot] = candidates[0][2]
            for key, fields, _ in candidates:
                self.unusable(ID_TOKEN, key, fields)

    def account(
        self,
        key: str,
        fields: Fields,
        environment: str,
        account: Account,
        id_tokens: dict[tuple[str, str], list[tuple[str, Fields, ParsedIdToken]]],
    ) -> None:
        slot = (account.home_account_id, environment)
        if slot in self.identities:
            self.unusable(ACCOUNT, key, fields)  # another tenant of a known account
            return
        candidates = id_tokens.pop(slot, [])
        candidates.sort(key=lambda c: c[2].realm != account.realm)
        for other in candidates[1:]:
            self.unusable(ID_TOKEN, other[0], other[1])
        existing = self.users.account(account.home_account_id, (environment,))
        if existing is not None:
            self.identities[slot] = existing
            return
        id_token = candidates[0] if candidates else None
        claims = id_token[2].claims if id_token else None
        tenant = (claims or {}).get("tid")
        identity = Identity(
            home_account_id=account.home_account_id,
            account=account,
            tenant_id=tenant if isinstance(tenant, str) and tenant else account.realm or None,
            id_token=id_token[2].secret if id_token else None,
            id_token_claims=claims,
        )
        self.users.put_account(identity, environment)
        self.identities[slot] = identity
        if self.keep:
            self.leftovers.accounts.add(slot)
        self.taken += 1
        self.remember(ACCOUNT, partial(account_fields, account, environment), None, fields)
        if id_token is not None:
            written = id_token_fields(identity, environment, id_token[2].client_id)
            if written is None:
                self.unusable(ID_TOKEN, id_token[0], id_token[1])
            else:
                self.remember(
                    ID_TOKEN,
                    partial(id_token_fields, identity, environment, id_token[2].client_id),
                    identity.id_token,
                    id_token[1],
                )

    def identity(self, home: str, environment: str, realm: str, obo: bool) -> Identity:
        """Whose token: the account's identity, else one made of what the entries say."""
        found = self.identities.get((home, environment))
        if found is None and home:
            found = self.users.account(home, (environment,))
        if found is not None and not obo:
            return found
        slot = (home, environment, realm, obo)
        made = self.others.get(slot)
        if made is None:
            if obo:  # on-behalf-of tokens keep no ID token
                tenant = found.tenant_id if found else realm or None
                made = Identity(home, found.account if found else None, tenant)
            else:
                bare = self.bare_id_tokens.get((home, environment))
                tid = bare.claims.get("tid") if bare else None
                made = Identity(
                    home_account_id=home,
                    account=None,
                    tenant_id=tid if isinstance(tid, str) and tid else realm or None,
                    id_token=bare.secret if bare else None,
                    id_token_claims=bare.claims if bare else None,
                )
            self.others[slot] = made
        return made

    def access_token(self, key: str, fields: Any) -> None:
        entry = parse_access_token(_mapping(fields), self.now)
        if entry is None:
            return  # expired
        lookup = entry.key
        user = bool(lookup.home_account_id or lookup.user_assertion_hash)
        existing = (self.users if user else self.app).get(lookup)
        if existing is not None and existing.expires_on >= entry.expires_on:
            return
        identity = None
        if user:
            home = fields.get("home_account_id") or ""
            identity = self.identity(
                home if isinstance(home, str) else "", lookup.environment, lookup.realm,
                bool(lookup.user_assertion_hash),
            )
        token = cached_token(entry, identity)
        (self.users if user else self.app).put(token)
        self.taken += 1
        self.remember(ACCESS_TOKEN, partial(access_token_fields, token), entry.secret, fields)

    def refresh_tokens(self, entries: Iterable[tuple[str, Any]]) -> None:
        taken: dict[PartitionKey, tuple[str, Any]] = {}
        for key, fields in entries:
            try:
                entry = parse_refresh_token(_mapping(fields))
            except _MALFORMED:
                self.malformed(REFRESH_TOKEN, key, fields)
                continue
            existing = self.users.refresh_token(entry.partition)
            if existing is not None and existing.last_modification_time >= (
                entry.last_modification_time
            ):
                self.unusable(REFRESH_TOKEN, key, fields)  # an older one (MSAL keeps them)
                continue
            replaced = taken.pop(entry.partition, None)
            if replaced is not None:
                self.unusable(REFRESH_TOKEN, *replaced)
            self.users.put_refresh_token(entry)
            taken[entry.partition] = (key, fields)
            self.taken += 1
            self.remember(
                REFRESH_TOKEN, partial(refresh_token_fields, entry), entry.secret, fields
            )


def _mapping(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise Unreadable("an entry is not a JSON object")
    return value


def load_document(
    document: Mapping[str, Any],
    app: TokenStore,
    users: UserTokenStore,
    leftovers: Leftovers,
    *,
    now: float,
    keep_unusable: bool,
) -> LoadCount:
    """Put a document's entries into the stores; return how many were taken and skipped.

    Never raises: a malformed entry is skipped (and counted).

    An entry the stores already hold is replaced only by a newer one (a later
    ``expires_on`` or ``last_modification_time``). With ``keep_unusable``,
    what aiomsal cannot use is kept in ``leftovers`` to be written back.
    """
    return _Loader(app, users, leftovers, now, keep_unusable).load(document)
