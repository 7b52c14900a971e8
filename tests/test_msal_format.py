"""SerializableTokenCache in MSAL's unified cache format: schema, round trips, partitions."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import msal
import pytest

from aiomsal import (
    ConfidentialClientApplication,
    MsalConfigurationError,
    SerializableTokenCache,
)
from aiomsal._cache._entries import (
    AccessTokenEntry,
    AccessTokenKey,
    Identity,
    PartitionKey,
    RefreshTokenEntry,
)
from aiomsal._cache._msal_format import cached_token
from aiomsal._cache._partitions import app_partition, user_partition
from aiomsal._cache._store import CachedToken
from aiomsal._protocol._scopes import UserScopes, target_key
from aiomsal._result import Account
from aiomsal.testing import FakeAuthority
from tests.helpers import SECRET

NOW = 2_000_000_000
ENV = "login.microsoftonline.com"
CLIENT = "my-client"
TENANT = "contoso"
HOME = "uid-1.utid-1"
GRAPH_DEFAULT = ("https://graph.microsoft.com/.default",)
ENDPOINT = f"https://{ENV}/{TENANT}/oauth2/v2.0/token"
HASH = "AbC-assertion_hash"


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


ID_CLAIMS = {
    "aud": CLIENT, "iss": "https://issuer", "sub": "sub-1", "oid": "uid-1", "tid": "utid-1",
    "preferred_username": "alice@contoso.com",
}
ID_TOKEN = f"{b64({'alg': 'none'})}.{b64(ID_CLAIMS)}.sig"
ACCOUNT = Account(HOME, ENV, TENANT, "alice@contoso.com", "uid-1", "MSSTS")
IDENTITY = Identity(HOME, ACCOUNT, "utid-1", ID_TOKEN, ID_CLAIMS)


def access_token(
    secret: str,
    scopes: tuple[str, ...],
    *,
    home: str = "",
    assertion: str = "",
    identity: Identity | None = None,
    client: str = CLIENT,
    realm: str = TENANT,
    cached_at: int = NOW,
    lifetime: int = 3600,
    refresh_on: int | None = None,
) -> CachedToken:
    user = bool(home or assertion)
    target = UserScopes.of(scopes).target if user else target_key(scopes)
    key = AccessTokenKey(ENV, client, realm, home, assertion, target)
    entry = AccessTokenEntry(
        key, secret, scopes, "Bearer", cached_at, cached_at + lifetime, cached_at + lifetime,
        refresh_on,
    )
    return cached_token(entry, identity)


def refresh_token(
    secret: str, *, home: str = HOME, assertion: str = "", modified: int = NOW,
    family: str | None = None, target: str = "User.Read",
) -> RefreshTokenEntry:
    partition = PartitionKey(ENV, CLIENT, "" if assertion else home, assertion)
    return RefreshTokenEntry(partition, secret, target, modified, home, family)


def filled_cache() -> SerializableTokenCache:
    """An app token, a user's tokens and account, and an on-behalf-of token with its RT."""
    cache = SerializableTokenCache()
    cache._app.put(access_token("app-at", GRAPH_DEFAULT, refresh_on=NOW + 1800))
    cache._users.put(access_token("user-at", ("User.Read",), home=HOME, identity=IDENTITY))
    cache._users.put_refresh_token(refresh_token("user-rt", family="1"))
    cache._users.put_account(IDENTITY, ENV)
    obo_identity = Identity(HOME, ACCOUNT, "utid-1")
    cache._users.put(
        access_token("obo-at", ("Mail.Read",), assertion=HASH, identity=obo_identity)
    )
    cache._users.put_refresh_token(refresh_token("obo-rt", assertion=HASH, target="mail.read"))
    return cache


def document(cache: SerializableTokenCache) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(cache.serialize())
    return result


# -- the schema ---------------------------------------------------------------------------


def test_a_document_equals_what_msal_writes_for_the_same_tokens() -> None:
    msal_cache = msal.SerializableTokenCache()
    msal_cache.add(
        {
            "client_id": CLIENT, "scope": list(GRAPH_DEFAULT), "token_endpoint": ENDPOINT,
            "environment": ENV, "grant_type": "client_credentials", "data": {},
            "response": {"access_token": "app-at", "expires_in": 3600, "refresh_in": 1800,
                         "token_type": "Bearer"},
        },
        now=NOW,
    )
    msal_cache.add(
        {
            "client_id": CLIENT, "scope": ["User.Read"], "token_endpoint": ENDPOINT,
            "environment": ENV, "data": {},
            "response": {"access_token": "user-at", "expires_in": 3600, "token_type": "Bearer",
                         "refresh_token": "user-rt", "id_token": ID_TOKEN, "foci": "1",
                         "client_info": b64({"uid": "uid-1", "utid": "utid-1"})},
        },
        now=NOW,
    )
    cache = SerializableTokenCache()
    cache._app.put(access_token("app-at", GRAPH_DEFAULT, refresh_on=NOW + 1800))
    cache._users.put(access_token("user-at", ("User.Read",), home=HOME, identity=IDENTITY))
    cache._users.put_refresh_token(refresh_token("user-rt", family="1"))
    cache._users.put_account(IDENTITY, ENV)

    ours, theirs = document(cache), json.loads(msal_cache.serialize())

    assert ours == theirs
    for section, entries in theirs.items():  # the same keys, fields in the same order
        for key, entry in entries.items():
            assert list(ours[section][key]) == list(entry)


def test_field_types_and_keys_follow_the_schema() -> None:
    state = filled_cache().serialize()
    doc = json.loads(state)

    assert state == json.dumps(doc, indent=4)
    assert list(doc) == ["AccessToken", "RefreshToken", "IdToken", "Account", "AppMetadata"]
    app = doc["AccessToken"][f"-{ENV}-accesstoken-{CLIENT}-{TENANT}-{GRAPH_DEFAULT[0]}"]
    assert app["home_account_id"] is None  # MSAL Python looks application tokens up by null
    assert app["credential_type"] == "AccessToken"
    for name in ("cached_at", "expires_on", "extended_expires_on", "refresh_on"):
        assert app[name] == str(int(app[name]))
    assert app["expires_on"] == str(NOW + 3600)
    user = doc["AccessToken"][f"{HOME}-{ENV}-accesstoken-{CLIENT}-{TENANT}-user.read"]
    assert user["target"] == "User.Read"
    assert "user_assertion_hash" not in user
    obo = doc["AccessToken"][f"{HOME}-{ENV}-accesstoken-{CLIENT}-{TENANT}-mail.read-{HASH}".lower()]
    assert obo["home_account_id"] == HOME
    assert obo["user_assertion_hash"] == HASH
    rt = doc["RefreshToken"][f"{HOME}-{ENV}-refreshtoken-{CLIENT}--user.read"]
    assert rt["last_modification_time"] == str(NOW)
    assert rt["family_id"] == "1"
    obo_rt = doc["RefreshToken"][f"{HOME}-{ENV}-refreshtoken-{CLIENT}--mail.read-{HASH}".lower()]
    assert obo_rt["user_assertion_hash"] == HASH
    assert doc["IdToken"] == {
        f"{HOME}-{ENV}-idtoken-{CLIENT}-{TENANT}-": {
            "credential_type": "IdToken", "secret": ID_TOKEN, "home_account_id": HOME,
            "environment": ENV, "realm": TENANT, "client_id": CLIENT,
        }
    }
    assert doc["Account"] == {
        f"{HOME}-{ENV}-{TENANT}": {
            "home_account_id": HOME, "environment": ENV, "realm": TENANT,
            "local_account_id": "uid-1", "username": "alice@contoso.com",
            "authority_type": "MSSTS",
        }
    }
    assert doc["AppMetadata"] == {
        f"appmetadata-{ENV}-{CLIENT}": {"client_id": CLIENT, "environment": ENV, "family_id": "1"}
    }


def test_an_empty_cache_is_an_empty_document() -> None:
    assert SerializableTokenCache().serialize() == "{}"


# -- round trips --------------------------------------------------------------------------


def test_serialize_deserialize_serialize_is_the_same_document() -> None:
    state = filled_cache().serialize()
    copy_ = SerializableTokenCache()
    copy_.deserialize(state, now=NOW)
    assert copy_.serialize() == state
    assert len(copy_) == 3


def test_a_deserialized_cache_answers_the_lookups_of_each_kind() -> None:
    cache = SerializableTokenCache()
    cache.deserialize(filled_cache().serialize(), now=NOW)

    app = cache._app.get(AccessTokenKey(ENV, CLIENT, TENANT, "", "", target_key(GRAPH_DEFAULT)))
    assert app is not None and app.entry.secret == "app-at" and app.identity is None
    assert app.entry.refresh_on == NOW + 1800
    assert app.serve_until == NOW + 3600 - 300
    assert NOW < app.refresh_at < app.serve_until

    wanted = UserScopes.of(("user.read",))
    key = AccessTokenKey(ENV, CLIENT, TENANT, HOME, "", wanted.target)
    user = cache._users.find(key, wanted.canonical, NOW)
    assert user is not None and user.entry.secret == "user-at"
    assert user.identity is not None
    assert user.identity.account == ACCOUNT
    assert user.identity.id_token == ID_TOKEN
    assert user.identity.tenant_id == "utid-1"
    assert cache._users.accounts() == [ACCOUNT]
    rt = cache._users.refresh_token(key.partition)
    assert rt is not None and rt.secret == "user-rt" and rt.family_id == "1"

    obo_key = AccessTokenKey(ENV, CLIENT, TENANT, "", HASH, UserScopes.of(("Mail.Read",)).target)
    obo = cache._users.get(obo_key)
    assert obo is not None and obo.entry.secret == "obo-at"
    assert obo.identity is not None and obo.identity.home_account_id == HOME
    assert obo.identity.id_token is None
    obo_rt = cache._users.refresh_token(obo_key.partition)
    assert obo_rt is not None and obo_rt.secret == "obo-rt" and obo_rt.home_account_id == HOME


def test_a_document_msal_wrote_comes_back_unchanged() -> None:
    msal_cache = msal.SerializableTokenCache()
    msal_cache.add(
        {
            "client_id": CLIENT, "scope": ["User.Read", "openid", "profile", "offline_access"],
            "token_endpoint": ENDPOINT, "environment": ENV, "grant_type": "password",
            "data": {"username": "alice@contoso.com"},
            "response": {"access_token": "user-at", "expires_in": 3600, "refresh_in": 1800,
                         "refresh_token": "user-rt", "id_token": ID_TOKEN,
                         "client_info": b64({"uid": "uid-1", "utid": "utid-1"})},
        },
        now=NOW,
    )
    state = msal_cache.serialize()
    cache = SerializableTokenCache()
    cache.deserialize(state, now=NOW)

    assert json.loads(cache.serialize()) == json.loads(state)  # account_source included
    wanted = UserScopes.of(("User.Read",))  # the OpenID scopes do not hide the token
    token = cache._users.get(AccessTokenKey(ENV, CLIENT, TENANT, HOME, "", wanted.target))
    assert token is not None and token.entry.secret == "user-at"


def test_unknown_sections_fields_and_entries_survive_a_round_trip() -> None:
    doc = document(filled_cache())
    doc["FutureSection"] = {"k": {"anything": [1, 2]}}
    doc["Scalar"] = 7
    app_key = next(iter(doc["AccessToken"]))
    doc["AccessToken"][app_key]["future_field"] = {"x": 1}
    account_key = next(iter(doc["Account"]))
    doc["Account"][account_key]["account_source"] = "device_code"
    doc["AccessToken"]["not-an-object"] = "garbage"
    doc["AccessToken"]["no-secret"] = {"credential_type": "AccessToken", "environment": ENV}
    doc["AccessToken"]["fmi-token"] = dict(
        doc["AccessToken"][app_key], secret="fmi", ext_cache_key="abc"
    )
    doc["AccessToken"]["pop"] = dict(
        doc["AccessToken"][app_key], credential_type="AccessToken_With_AuthScheme"
    )
    doc["RefreshToken"]["broken"] = {"credential_type": "RefreshToken", "secret": 5}
    state = json.dumps(doc, indent=4)

    cache = SerializableTokenCache()
    cache.deserialize(state, now=NOW)

    assert json.loads(cache.serialize()) == doc
    assert len(cache) == 3  # only the usable tokens are served


def test_unknown_fields_of_a_replaced_token_are_not_carried_to_its_successor() -> None:
    doc = document(filled_cache())
    app_key = next(iter(doc["AccessToken"]))
    doc["AccessToken"][app_key]["future_field"] = 1
    cache = SerializableTokenCache()
    cache.deserialize(json.dumps(doc), now=NOW)
    cache._app.put(access_token("app-at-2", GRAPH_DEFAULT))

    written = document(cache)["AccessToken"][app_key]
    assert written["secret"] == "app-at-2"
    assert "future_field" not in written


def test_entries_of_other_sdks_are_read() -> None:
    """Numbers for timestamps, MSAL.NET's kid, msal-node's empty home, missing optional fields."""
    doc = {
        "AccessToken": {
            "net-app": {
                "credential_type": "AccessToken", "secret": "net-at", "home_account_id": "",
                "environment": "login.windows.net", "client_id": CLIENT, "realm": TENANT,
                "target": "https://graph.microsoft.com/.default", "cached_at": NOW,
                "expires_on": NOW + 3600, "kid": "key-1", "extra": True,
            },
        },
        "RefreshToken": {
            "net-rt": {
                "credential_type": "RefreshToken", "secret": "net-rt", "home_account_id": HOME,
                "environment": ENV, "client_id": CLIENT,
            },
        },
    }
    cache = SerializableTokenCache()
    cache.deserialize(json.dumps(doc), now=NOW)

    token = cache._app.get(AccessTokenKey(ENV, CLIENT, TENANT, "", "", target_key(GRAPH_DEFAULT)))
    assert token is not None
    assert token.entry.key_id == "key-1"
    assert token.entry.token_type == "Bearer"
    assert token.entry.extended_expires_on == NOW + 3600
    rt = cache._users.refresh_token(PartitionKey(ENV, CLIENT, HOME, ""))
    assert rt is not None and rt.secret == "net-rt" and rt.last_modification_time == 0
    written = document(cache)["AccessToken"]
    [entry] = written.values()
    assert entry["kid"] == "key-1" and "key_id" not in entry and entry["extra"] is True
    assert entry["environment"] == ENV  # canonical
    assert entry["home_account_id"] is None
    assert entry["expires_on"] == str(NOW + 3600)


def test_the_newest_of_several_refresh_tokens_is_used_and_the_others_kept() -> None:
    doc = document(filled_cache())
    [newest] = [
        v for v in doc["RefreshToken"].values() if "user_assertion_hash" not in v
    ]
    older = dict(newest, secret="older-rt", target="Mail.Read", last_modification_time="1")
    doc["RefreshToken"]["older"] = older
    cache = SerializableTokenCache()
    cache.deserialize(json.dumps(doc), now=NOW)

    rt = cache._users.refresh_token(PartitionKey(ENV, CLIENT, HOME, ""))
    assert rt is not None and rt.secret == "user-rt"
    assert document(cache)["RefreshToken"]["older"] == older


def test_expired_access_tokens_are_left_out() -> None:
    state = filled_cache().serialize()
    cache = SerializableTokenCache()
    cache.deserialize(state, now=NOW + 3600)
    assert len(cache) == 0
    doc = document(cache)
    assert "AccessToken" not in doc
    assert len(doc["RefreshToken"]) == 2


def test_deserialize_replaces_the_content() -> None:
    cache = filled_cache()
    cache.deserialize('{"AccessToken": {}}', now=NOW)
    assert len(cache) == 0
    assert cache._users.accounts() == []
    assert cache.serialize() == "{}"


# -- state and errors ---------------------------------------------------------------------


def test_has_state_changed_follows_changes_serialize_and_deserialize() -> None:
    cache = SerializableTokenCache()
    assert not cache.has_state_changed
    cache._app.put(access_token("app-at", GRAPH_DEFAULT))
    assert cache.has_state_changed
    state = cache.serialize()
    assert not cache.has_state_changed
    cache._users.put_account(IDENTITY, ENV)
    assert cache.has_state_changed
    cache.deserialize(state, now=NOW)
    assert not cache.has_state_changed


@pytest.mark.parametrize("state", ["not json", "[1, 2]", '"text"', "{", b"\xff\xfe"])
def test_malformed_state_is_refused_and_the_cache_left_as_it_was(state: str) -> None:
    cache = filled_cache()
    before = cache.serialize()
    with pytest.raises(MsalConfigurationError, match="not MSAL's token cache format") as error:
        cache.deserialize(state)
    assert isinstance(error.value, ValueError)  # as json's own errors are
    assert cache.serialize() == before


@pytest.mark.parametrize("state", ["", None])
def test_an_empty_state_is_an_empty_cache(state: str | None) -> None:
    cache = filled_cache()
    cache.deserialize(state)
    assert len(cache) == 0


@pytest.mark.anyio
async def test_an_application_serves_what_its_cache_deserialized_later() -> None:
    cache = SerializableTokenCache()
    async with FakeAuthority() as fake:
        fake.add_client(CLIENT, secret=SECRET)
        async with ConfidentialClientApplication(
            CLIENT, client_credential=SECRET, authority=fake.authority(TENANT), token_cache=cache,
        ) as app:
            first = await app.acquire_token_for_client(list(GRAPH_DEFAULT))
            state = cache.serialize()
            cache.deserialize("{}")
            cache.deserialize(state)
            again = await app.acquire_token_for_client(list(GRAPH_DEFAULT))
        assert again.access_token == first.access_token
        assert again.token_source == "cache"
        assert len(fake.token_requests) == 1


# -- partitions ---------------------------------------------------------------------------

APP_PARTITION = app_partition(
    AccessTokenKey(ENV, CLIENT, TENANT, "", "", target_key(GRAPH_DEFAULT))
)
NOBODY_PARTITION = app_partition(
    AccessTokenKey(ENV, CLIENT, "nobody", "", "", target_key(GRAPH_DEFAULT))
)
USER_PARTITION = user_partition(PartitionKey(ENV, CLIENT, HOME, ""))
OBO_PARTITION = user_partition(PartitionKey(ENV, CLIENT, "", HASH))


def secrets(blob: bytes | None) -> set[str]:
    assert blob is not None
    doc = json.loads(blob)
    return {
        entry["secret"] for section in ("AccessToken", "RefreshToken")
        for entry in doc.get(section, {}).values()
    }


def test_a_partition_dump_holds_only_that_partitions_entries() -> None:
    cache = filled_cache()
    cache._app.put(access_token("other-tenant", GRAPH_DEFAULT, realm="fabrikam"))
    cache._users.put(access_token("bob-at", ("User.Read",), home="bob.utid"))

    assert secrets(cache.dump_partition(APP_PARTITION, now=NOW)) == {"app-at"}
    user = cache.dump_partition(USER_PARTITION, now=NOW)
    assert secrets(user) == {"user-at", "user-rt"}
    assert user is not None
    user_doc = json.loads(user)
    assert set(user_doc) == {"AccessToken", "RefreshToken", "IdToken", "Account", "AppMetadata"}
    assert secrets(cache.dump_partition(OBO_PARTITION, now=NOW)) == {"obo-at", "obo-rt"}
    assert cache.dump_partition(NOBODY_PARTITION, now=NOW) is None
    with pytest.raises(MsalConfigurationError):
        cache.dump_partition("nonsense")


def test_a_partition_with_nothing_servable_dumps_to_none() -> None:
    cache = filled_cache()
    assert cache.dump_partition(APP_PARTITION, now=NOW + 3600) is None
    assert secrets(cache.dump_partition(USER_PARTITION, now=NOW + 3600)) == {"user-rt"}


def test_each_application_token_has_a_partition_of_its_own() -> None:
    cache = SerializableTokenCache()
    one = access_token("one", GRAPH_DEFAULT)
    two = access_token("two", ("api://x/.default",))
    cache._app.put(one)
    cache._app.put(two)
    assert secrets(cache.dump_partition(app_partition(one.entry.key), now=NOW)) == {"one"}
    assert secrets(cache.dump_partition(app_partition(two.entry.key), now=NOW)) == {"two"}
    cache._app.remove(one.entry.key)
    assert cache.dump_partition(app_partition(one.entry.key), now=NOW) is None


def test_loading_a_partition_merges_without_removing_anything() -> None:
    source = filled_cache()
    blob = source.dump_partition(USER_PARTITION, now=NOW)
    assert blob is not None
    cache = SerializableTokenCache()
    cache._app.put(access_token("app-at", GRAPH_DEFAULT))

    assert cache.load_partition(blob, now=NOW) == 3  # access token, refresh token, account
    assert len(cache) == 2
    assert cache._users.accounts() == [ACCOUNT]
    assert cache.load_partition(blob, now=NOW) == 0  # nothing newer
    assert cache.load_partition(b"garbage", now=NOW) == 0
    assert cache.load_partition(blob, now=NOW + 3600) == 0


def test_loading_a_partition_keeps_the_newer_of_two_entries() -> None:
    cache = filled_cache()
    newer = SerializableTokenCache()
    newer._app.put(access_token("app-at-2", GRAPH_DEFAULT, cached_at=NOW + 10))
    blob = newer.dump_partition(APP_PARTITION, now=NOW)
    assert blob is not None
    app_key = AccessTokenKey(ENV, CLIENT, TENANT, "", "", target_key(GRAPH_DEFAULT))
    held = cache._app.get(app_key)
    assert held is not None

    assert cache.load_partition(blob, now=NOW) == 1
    token = cache._app.get(app_key)
    assert token is not None and token.entry.secret == "app-at-2"

    older = SerializableTokenCache()
    older._app.put(held)
    old_blob = older.dump_partition(APP_PARTITION, now=NOW)
    assert old_blob is not None
    assert cache.load_partition(old_blob, now=NOW) == 0
    assert cache._app.get(app_key) is token

    rotated = SerializableTokenCache()
    rotated._users.put_refresh_token(refresh_token("user-rt-2", modified=NOW + 5))
    rt_blob = rotated.dump_partition(USER_PARTITION, now=NOW)
    assert rt_blob is not None
    assert cache.load_partition(rt_blob, now=NOW) == 1
    rt = cache._users.refresh_token(PartitionKey(ENV, CLIENT, HOME, ""))
    assert rt is not None and rt.secret == "user-rt-2"


def test_partition_expiry_is_the_latest_access_token_expiry_unless_a_refresh_token_is_held(
) -> None:
    cache = filled_cache()
    later = access_token("later", ("api://x/.default",), lifetime=7200)
    cache._app.put(later)
    assert cache.partition_expiry(app_partition(later.entry.key)) == NOW + 7200
    assert cache.partition_expiry(APP_PARTITION) == NOW + 3600
    assert cache.partition_expiry(USER_PARTITION) is None
    assert cache.partition_expiry(OBO_PARTITION) is None
    assert cache.partition_expiry(NOBODY_PARTITION) is None


def blob_of(*tokens: CachedToken, refresh: RefreshTokenEntry | None = None) -> bytes:
    cache = SerializableTokenCache()
    for token in tokens:
        (cache._users if token.entry.key.home_account_id else cache._app).put(token)
    if refresh is not None:
        cache._users.put_refresh_token(refresh)
    return cache.serialize().encode()


def test_merging_blobs_keeps_the_newer_entry_per_key_and_drops_expired_ones() -> None:
    merge = SerializableTokenCache.merge_partition_blobs
    old = blob_of(access_token("old", GRAPH_DEFAULT), access_token("x-old", ("api://x/.default",)))
    new = blob_of(access_token("new", GRAPH_DEFAULT, cached_at=NOW + 100))

    for current, ours in ((old, new), (new, old)):
        merged = merge(current, ours, now=NOW)
        assert secrets(merged) == {"new", "x-old"}
    assert secrets(merge(old, old, now=NOW)) == {"old", "x-old"}
    assert secrets(merge(None, new, now=NOW)) == {"new"}
    assert secrets(merge(b"not json", new, now=NOW)) == {"new"}
    assert secrets(merge(new, None, now=NOW)) == {"new"}
    assert merge(None, None, now=NOW) is None
    assert merge(old, None, now=NOW + 3600) is None  # only expired tokens: delete it

    rt_old = blob_of(refresh=refresh_token("rt-old", modified=NOW))
    rt_new = blob_of(refresh=refresh_token("rt-new", modified=NOW + 1))
    assert secrets(merge(rt_new, rt_old, now=NOW)) == {"rt-new"}
    kept = merge(rt_old, new, now=NOW + 3700)  # the refresh token outlives the access token
    assert secrets(kept) == {"rt-old"}


def test_merging_keeps_unknown_sections_and_prefers_ours_on_a_tie() -> None:
    ours_doc = json.loads(blob_of(access_token("ours", GRAPH_DEFAULT)))
    theirs_doc = copy.deepcopy(ours_doc)
    [key] = theirs_doc["AccessToken"]
    theirs_doc["AccessToken"][key]["secret"] = "theirs"
    theirs_doc["Future"] = {"a": 1}
    merged = SerializableTokenCache.merge_partition_blobs(
        json.dumps(theirs_doc).encode(), json.dumps(ours_doc).encode(), now=NOW
    )
    assert merged is not None
    result = json.loads(merged)
    assert result["AccessToken"][key]["secret"] == "ours"
    assert result["Future"] == {"a": 1}


def test_entries_kept_as_read_leave_with_their_signed_out_account() -> None:
    doc = document(filled_cache())
    [user_rt] = [v for v in doc["RefreshToken"].values() if "user_assertion_hash" not in v]
    doc["RefreshToken"]["older"] = dict(user_rt, secret="older-rt", last_modification_time="1")
    [account] = doc["Account"].values()
    doc["Account"]["guest"] = dict(account, realm="fabrikam")
    cache = SerializableTokenCache()
    cache.deserialize(json.dumps(doc), now=NOW)
    assert "older" in document(cache)["RefreshToken"]

    cache._users.remove_account(HOME, {ENV})

    written = document(cache)
    assert "Account" not in written and "IdToken" not in written
    assert {e["secret"] for e in written["RefreshToken"].values()} == {"obo-rt"}


def test_a_malformed_known_section_is_kept_until_there_is_something_to_write() -> None:
    cache = SerializableTokenCache()
    cache.deserialize('{"AccessToken": [1], "IdToken": "x"}', now=NOW)
    assert json.loads(cache.serialize()) == {"AccessToken": [1], "IdToken": "x"}
    cache._app.put(access_token("app-at", GRAPH_DEFAULT))
    written = document(cache)
    assert [e["secret"] for e in written["AccessToken"].values()] == ["app-at"]
    assert written["IdToken"] == "x"


@pytest.mark.parametrize(
    "doc",
    [
        {},
        {"A": {}, "B": [], "C": None, "D": "text"},
        {"A": {"k": {}}, "B": {"k": []}, "C": {"k": "plain"}},
        {
            "AccessToken": {
                'k-é\n"': {"a": "ü\u2028", "b": 1, "c": 1.5, "d": True, "e": None},
                "nested": {"n": {"x": [1, {"y": 2}]}, "m": [], "o": {}},
            },
            "Future": {"a": [1, 2, {"b": {}}]},
        },
    ],
)
def test_documents_are_written_exactly_as_json_dumps_with_indent_4(doc: dict[str, Any]) -> None:
    from aiomsal._cache._msal_merge import dump_document

    assert dump_document(doc) == json.dumps(doc, indent=4)
