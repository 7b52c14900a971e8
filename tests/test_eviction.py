"""Bounded memory: LRU-like eviction and the sweep of expired tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from aiomsal import ConfidentialClientApplication, MsalConfigurationError, PublicClientApplication
from aiomsal._cache._entries import (
    AccessTokenEntry,
    AccessTokenKey,
    PartitionKey,
    RefreshTokenEntry,
)
from aiomsal._cache._store import CachedToken, TokenStore
from aiomsal._cache._user_store import UserTokenStore
from aiomsal.testing import FakeAuthority, VirtualClock
from tests.helpers import SECRET

NOW = 1_800_000_000


def token(i: int, *, user: str = "", now: int = NOW, lifetime: int = 3600) -> CachedToken:
    key = AccessTokenKey(
        "login.microsoftonline.com", "app", "contoso", user, "", f"api://r{i}/.default"
    )
    entry = AccessTokenEntry(
        key=key,
        secret=f"secret-{i}",
        scopes=(f"api://r{i}/.default",),
        token_type="Bearer",
        cached_at=now,
        expires_on=now + lifetime,
        extended_expires_on=now + lifetime,
    )
    return CachedToken(entry, serve_until=now + lifetime - 300, refresh_at=now + lifetime // 2)


def test_a_bounded_store_keeps_at_most_its_limit() -> None:
    store = TokenStore(max_entries=100)
    for i in range(10_000):
        store.put(token(i))
    assert len(store) == 100


def test_recently_used_tokens_survive_eviction() -> None:
    store = TokenStore(max_entries=100)
    tokens = [token(i) for i in range(100)]
    for t in tokens:
        store.put(t)
    hot = tokens[:10]
    for _ in range(20):  # the hot tokens are hit between insertions, as a busy service would
        for t in hot:
            t.touched = True
        for i in range(100 + _ * 10, 110 + _ * 10):
            store.put(token(i))
    assert all(store.get(t.entry.key) is t for t in hot)
    assert len(store) == 100


def test_expired_tokens_are_swept_without_a_limit() -> None:
    store = TokenStore()
    for i in range(1_000):
        store.put(token(i, now=NOW - 7200))  # long expired
    for i in range(1_000, 2_000):
        store.put(token(i))
    assert len(store) == 1_000
    assert all(store.get(token(i).entry.key) is not None for i in range(1_000, 2_000))


def test_an_evicted_user_takes_its_refresh_token_along_in_a_bounded_cache() -> None:
    store = UserTokenStore(max_entries=10)
    for i in range(100):
        t = token(i, user=f"user{i}")
        store.put(t)
        store.put_refresh_token(
            RefreshTokenEntry(
                partition=t.entry.key.partition,
                secret=f"rt-{i}",
                target="x",
                last_modification_time=NOW,
                home_account_id=f"user{i}",
            )
        )
    assert len(store) == 10
    assert len(store.refresh_tokens()) <= 11
    partition = PartitionKey("login.microsoftonline.com", "app", "user99", "")
    assert store.refresh_token(partition) is not None


def test_an_unbounded_cache_keeps_refresh_tokens_of_expired_users() -> None:
    store = UserTokenStore()
    expired = token(0, user="user0", now=NOW - 7200)
    store.put(expired)
    store.put_refresh_token(
        RefreshTokenEntry(expired.entry.key.partition, "rt", "x", NOW, home_account_id="user0")
    )
    for i in range(1, 10):
        store.put(token(i, user=f"user{i}"))
    assert store.get(expired.entry.key) is None
    assert store.refresh_token(expired.entry.key.partition) is not None


def test_max_cache_entries_must_be_positive() -> None:
    with pytest.raises(MsalConfigurationError):
        PublicClientApplication("app", max_cache_entries=0)


@pytest.fixture
async def fake() -> AsyncIterator[FakeAuthority]:
    async with FakeAuthority(clock=VirtualClock()) as authority:
        authority.add_client("api", secret=SECRET)
        authority.add_client("spa", redirect_uris=["http://localhost"])
        yield authority


@pytest.mark.anyio
async def test_a_web_api_holds_a_bounded_number_of_obo_users(fake: FakeAuthority) -> None:
    clock = fake.clock
    assertions = []
    async with PublicClientApplication(
        "spa", authority=fake.authority("contoso"), clock=clock
    ) as spa:
        for i in range(60):
            fake.add_user(f"u{i}@contoso.com", password="pw")
            result = await spa.acquire_token_by_username_password(
                f"u{i}@contoso.com", "pw", ["api://api/access_as_user"]
            )
            assertions.append(result.access_token)
    async with ConfidentialClientApplication(
        "api",
        client_credential=SECRET,
        authority=fake.authority("contoso"),
        clock=clock,
        max_cache_entries=20,
    ) as api:
        hot = assertions[0]
        for assertion in assertions:
            await api.acquire_token_on_behalf_of(assertion, ["User.Read"])
            await api.acquire_token_on_behalf_of(hot, ["User.Read"])  # one user stays busy
        assert api.statistics().cached_tokens <= 20
        assert len(api._users.refresh_tokens()) <= 21
        before = len(fake.token_requests)
        assert (await api.acquire_token_on_behalf_of(hot, ["User.Read"])).token_source == "cache"
        assert len(fake.token_requests) == before
