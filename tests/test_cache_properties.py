"""Property-based tests of cache documents and stored partitions (Hypothesis).

Whatever a document or a stored partition holds — MSAL-shaped entries with
hostile values (non-finite and huge numbers, wrong types, odd environments,
deep nesting), random JSON, random bytes — reading it raises nothing but
:class:`MsalConfigurationError`; a failed load leaves the cache exactly as it
was; and what was loaded serializes again. Plus the regressions of issue 9
(item 12: ``deserialize`` cleared the cache, then raised a raw error).
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiomsal import MsalConfigurationError, SerializableTokenCache
from aiomsal._cache._entries import AccessTokenKey, PartitionKey
from aiomsal._cache._partitions import (
    app_partition,
    parse_partition,
    partition_of,
    user_partition,
)

NOW = 1_800_000_000.0
SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# -- strategies ---------------------------------------------------------------------------

HOSTILE_NUMBERS = st.sampled_from([
    math.inf, -math.inf, math.nan, 10**400, -(10**400), 1e308, -1, 0, True, False,
    "Infinity", "NaN", "1e999", "9" * 400, "-5", "", " 12 ", "0x10", "1_000",
])
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20), HOSTILE_NUMBERS,
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
ENVIRONMENTS = st.sampled_from([
    "login.microsoftonline.com", "login.windows.net", "[", "[::1", "[::1]:443", "host:1:2",
    "https://kc.example/realms/a", "", "LOGIN.MICROSOFTONLINE.COM", "\x00", "a" * 300,
])
TIMES = st.one_of(st.integers(min_value=1_700_000_000, max_value=1_900_000_000).map(str),
                  HOSTILE_NUMBERS, SCALARS)
TEXT_OR_HOSTILE = st.one_of(st.text(max_size=12), SCALARS)


def entry(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """An entry whose fields may each be the right kind, hostile, or missing."""
    return st.fixed_dictionaries({}, optional=fields)


ACCESS = entry({
    "credential_type": st.sampled_from(["AccessToken", "accesstoken", "RefreshToken", 5]),
    "secret": TEXT_OR_HOSTILE, "home_account_id": st.one_of(st.none(), TEXT_OR_HOSTILE),
    "environment": st.one_of(ENVIRONMENTS, SCALARS), "client_id": TEXT_OR_HOSTILE,
    "target": st.one_of(st.sampled_from(["User.Read", "api://x/.default", "a b c"]), SCALARS),
    "realm": TEXT_OR_HOSTILE, "token_type": TEXT_OR_HOSTILE, "cached_at": TIMES,
    "expires_on": TIMES, "extended_expires_on": TIMES, "refresh_on": TIMES,
    "key_id": TEXT_OR_HOSTILE, "kid": TEXT_OR_HOSTILE,
    "user_assertion_hash": TEXT_OR_HOSTILE, "ext_cache_key": TEXT_OR_HOSTILE, "extra": JSON,
})
REFRESH = entry({
    "credential_type": st.sampled_from(["RefreshToken", "AccessToken"]),
    "secret": TEXT_OR_HOSTILE, "home_account_id": TEXT_OR_HOSTILE,
    "environment": st.one_of(ENVIRONMENTS, SCALARS), "client_id": TEXT_OR_HOSTILE,
    "target": TEXT_OR_HOSTILE, "last_modification_time": TIMES, "family_id": TEXT_OR_HOSTILE,
    "user_assertion_hash": TEXT_OR_HOSTILE, "extra": JSON,
})
ACCOUNT = entry({
    "home_account_id": TEXT_OR_HOSTILE, "environment": st.one_of(ENVIRONMENTS, SCALARS),
    "realm": TEXT_OR_HOSTILE, "local_account_id": TEXT_OR_HOSTILE,
    "username": TEXT_OR_HOSTILE, "authority_type": TEXT_OR_HOSTILE, "extra": JSON,
})
ID_TOKEN = entry({
    "credential_type": st.just("IdToken"), "home_account_id": TEXT_OR_HOSTILE,
    "environment": st.one_of(ENVIRONMENTS, SCALARS), "realm": TEXT_OR_HOSTILE,
    "client_id": TEXT_OR_HOSTILE,
    "secret": st.one_of(TEXT_OR_HOSTILE, st.just("eyJhbGciOiJub25lIn0.eyJ0aWQiOjV9.")),
})


def section(entries: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.dictionaries(st.text(max_size=10), st.one_of(entries, JSON), max_size=4), JSON
    )


DOCUMENTS = st.fixed_dictionaries({}, optional={
    "AccessToken": section(ACCESS), "RefreshToken": section(REFRESH),
    "Account": section(ACCOUNT), "IdToken": section(ID_TOKEN),
    "AppMetadata": section(st.dictionaries(st.text(max_size=8), JSON, max_size=3)),
    "Unknown": JSON,
})


def encoded(document: Any) -> str:
    return json.dumps(document)  # Infinity and NaN as JavaScript writes them


STATES = st.one_of(
    DOCUMENTS.map(encoded),
    JSON.map(encoded),
    st.text(max_size=50),
    st.integers(min_value=1, max_value=200).map(lambda depth: "[" * depth * 50),
    st.integers(min_value=1, max_value=60).map(lambda depth: '{"a":' * depth + "1" + "}" * depth),
)


def seeded() -> SerializableTokenCache:
    """A cache holding one token of each kind, as an MSAL SDK would have written them."""
    cache = SerializableTokenCache()
    cache.deserialize(json.dumps({
        "AccessToken": {"k": {
            "credential_type": "AccessToken", "secret": "app-token", "home_account_id": None,
            "environment": "login.microsoftonline.com", "client_id": "c", "realm": "t",
            "target": "api://x/.default", "cached_at": str(int(NOW)),
            "expires_on": str(int(NOW) + 3600), "extended_expires_on": str(int(NOW) + 3600),
        }},
        "RefreshToken": {"r": {
            "credential_type": "RefreshToken", "secret": "refresh", "home_account_id": "u.t",
            "environment": "login.microsoftonline.com", "client_id": "c", "target": "User.Read",
        }},
        "Account": {"a": {
            "home_account_id": "u.t", "environment": "login.microsoftonline.com",
            "realm": "t", "username": "alice", "authority_type": "MSSTS",
        }},
    }), now=NOW)
    return cache


# -- deserialize ------------------------------------------------------------------------------


@SETTINGS
@given(state=STATES)
def test_deserialize_loads_or_raises_a_configuration_error_and_changes_nothing(
    state: str,
) -> None:
    cache = seeded()
    before, held = cache.serialize(), len(cache)
    try:
        cache.deserialize(state, now=NOW)
    except MsalConfigurationError:
        assert cache.serialize() == before and len(cache) == held
        return
    written = cache.serialize()  # what was loaded serializes again
    again = SerializableTokenCache()
    again.deserialize(written, now=NOW)
    assert again.serialize() == written


@SETTINGS
@given(state=st.binary(max_size=64))
def test_deserialize_of_any_bytes_raises_only_a_configuration_error(state: bytes) -> None:
    cache = seeded()
    before = cache.serialize()
    try:
        cache.deserialize(state, now=NOW)
    except MsalConfigurationError:
        assert cache.serialize() == before
    else:
        cache.serialize()


# -- stored partitions ------------------------------------------------------------------------


PARTITION_BLOBS = st.one_of(
    DOCUMENTS.map(lambda d: encoded(d).encode()), st.binary(max_size=64),
    JSON.map(lambda d: encoded(d).encode()),
)


@SETTINGS
@given(blob=PARTITION_BLOBS)
def test_a_stored_partition_loads_without_raising_and_serializes_again(blob: bytes) -> None:
    cache = seeded()
    before = json.loads(cache.serialize())
    count = cache._load_partition(blob, now=NOW)
    assert count.taken >= 0 and count.skipped >= 0
    after = json.loads(cache.serialize())  # what was loaded serializes again
    if not _is_document(blob):
        assert count == (0, 1) and after == before  # a failed load changes nothing
    elif count.taken == 0:  # nothing taken: no token, account or refresh token changed
        for name in ("AccessToken", "RefreshToken", "Account", "IdToken"):
            assert after.get(name) == before.get(name)
    for token in [*cache._app, *cache._users.tokens()]:
        name = partition_of(token.entry.key)
        cache.dump_partition(name, now=NOW)
        cache.partition_expiry(name)


def _is_document(blob: bytes) -> bool:
    try:
        return isinstance(json.loads(blob), dict)
    except (ValueError, RecursionError):
        return False


@SETTINGS
@given(current=PARTITION_BLOBS, ours=PARTITION_BLOBS)
def test_merging_any_two_partition_blobs_never_raises(current: bytes, ours: bytes) -> None:
    merged = SerializableTokenCache.merge_partition_blobs(current, ours, now=NOW)
    if merged is not None:
        SerializableTokenCache()._load_partition(merged, now=NOW)


@SETTINGS
@given(name=st.text(max_size=40))
def test_a_partition_name_parses_or_raises_a_configuration_error(name: str) -> None:
    try:
        parsed = parse_partition(name)
    except MsalConfigurationError:
        return
    assert parsed.kind in ("app", "user", "obo") and all(isinstance(p, str) for p in parsed)


PARTS = st.text(min_size=1, max_size=30)


@SETTINGS
@given(client=PARTS, environment=PARTS, realm=st.text(max_size=20), target=PARTS, home=PARTS)
def test_partition_names_read_back_exactly_so_no_two_keys_share_one(
    client: str, environment: str, realm: str, target: str, home: str
) -> None:
    """Issuer URLs and scope URLs hold slashes: a name must still say which key it is."""
    key = AccessTokenKey(environment, client, realm, "", "", target)
    assert tuple(parse_partition(app_partition(key))) == ("app", client, environment, realm,
                                                          target)
    user = PartitionKey(environment, client, home, "")
    assert tuple(parse_partition(user_partition(user))) == ("user", client, environment, home,
                                                            "")


# -- issue 9, item 12: the regressions ----------------------------------------------------------


ODD_DOCUMENTS = [
    '{"AccessToken": {"k": {"secret": "s", "environment": "e", "client_id": "c", '
    '"target": "t", "expires_on": Infinity}}}',
    '{"AccessToken": {"k": {"secret": "s", "environment": "e", "client_id": "c", '
    '"target": "t", "expires_on": NaN}}}',
    '{"AccessToken": {"k": {"secret": "s", "environment": "[", "client_id": "c", '
    '"target": "t", "expires_on": "1900000000"}}}',
    '{"AccessToken": {"k": {"secret": "s", "environment": "e", "client_id": "c", '
    '"target": "t", "expires_on": "1900000000", "kid": null}}}',
    '{"AccessToken": {"k": {"secret": "s", "environment": "e", "client_id": "c", '
    '"target": "t", "expires_on": "' + "9" * 400 + '"}}}',
    '{"AppMetadata": {"appmetadata-e-c": [1]}, "RefreshToken": {"r": {"secret": "s", '
    '"environment": "e", "client_id": "c", "home_account_id": "h"}}}',
]


@pytest.mark.parametrize("state", ODD_DOCUMENTS)
def test_an_odd_document_loads_with_its_odd_entry_skipped_and_serializes_again(
    state: str,
) -> None:
    cache = SerializableTokenCache()
    cache.deserialize(state, now=NOW)
    written = cache.serialize()
    again = SerializableTokenCache()
    again.deserialize(written, now=NOW)
    assert again.serialize() == written


@pytest.mark.parametrize(
    "state", ["[" * 100_000, '{"a":' * 5000 + "1" + "}" * 5000, "[1, 2]", "{", "\ud800"]
)
def test_an_unreadable_document_raises_and_leaves_the_cache_as_it_was(state: str) -> None:
    cache = seeded()
    before = cache.serialize()
    with pytest.raises(MsalConfigurationError):
        cache.deserialize(state, now=NOW)
    assert cache.serialize() == before and len(cache) == 1
