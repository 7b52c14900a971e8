"""aiomsal and the real MSAL Python read each other's token caches.

Both talk HTTPS to a FakeAuthority. MSAL is synchronous, so it runs in a worker
thread (``anyio.to_thread``) while the fake answers on this event loop; MSAL
builds its authority (an HTTP request) in its constructor, so that runs in
the thread as well.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import anyio.to_thread
import msal
import pytest
import requests

from aiomsal import (
    ConfidentialClientApplication,
    PublicClientApplication,
    SerializableTokenCache,
)
from aiomsal.testing import FakeAuthority
from tests.helpers import SECRET, NoUserRealm

pytestmark = pytest.mark.anyio

DAEMON = "nightly-daemon"
DESKTOP = "desktop-tool"
API = "orders-api"
ALICE = "alice@contoso.com"
PASSWORD = "alice-pw"
GRAPH_DEFAULT = ["https://graph.microsoft.com/.default"]
USER_READ = ["User.Read"]
GRAPH_READ = ["https://graph.microsoft.com/User.Read"]

T = TypeVar("T")


@pytest.fixture
async def fake() -> AsyncIterator[FakeAuthority]:
    async with FakeAuthority(tls=True) as authority:
        authority.add_client(DAEMON, secret=SECRET)
        authority.add_client(API, secret=SECRET)
        authority.add_client(DESKTOP, redirect_uris=["http://localhost"])
        authority.add_user(ALICE, password=PASSWORD, tenant="contoso")
        yield authority


@pytest.fixture
def http(fake: FakeAuthority) -> requests.Session:
    """What MSAL sends with: trusts the fake's CA, ignores REQUESTS_CA_BUNDLE and proxies."""
    session = requests.Session()
    session.trust_env = False
    assert fake.ca_file is not None
    session.verify = fake.ca_file
    session.mount("https://127.0.0.1/common/userrealm/", NoUserRealm())
    return session


async def in_thread(call: Callable[[], T]) -> T:
    return await anyio.to_thread.run_sync(call)


async def msal_app(
    kind: type[Any], client_id: str, fake: FakeAuthority, http: requests.Session,
    cache: msal.SerializableTokenCache, **kwargs: Any,
) -> Any:
    return await in_thread(
        lambda: kind(
            client_id,
            authority=fake.authority("contoso"),
            token_cache=cache,
            http_client=http,
            instance_discovery=False,
            **kwargs,
        )
    )


def aiomsal_daemon(
    fake: FakeAuthority, cache: SerializableTokenCache
) -> ConfidentialClientApplication:
    return ConfidentialClientApplication(
        DAEMON, client_credential=SECRET, authority=fake.authority("contoso"),
        verify=fake.ssl_context(), token_cache=cache,
    )


def aiomsal_desktop(fake: FakeAuthority, cache: SerializableTokenCache) -> PublicClientApplication:
    return PublicClientApplication(
        DESKTOP, authority=fake.authority("contoso"), verify=fake.ssl_context(), token_cache=cache
    )


def grants(fake: FakeAuthority) -> list[str]:
    return [record.grant_type for record in fake.token_requests]


# -- aiomsal writes, MSAL reads -----------------------------------------------------------


async def test_msal_serves_an_application_token_aiomsal_cached(
    fake: FakeAuthority, http: requests.Session
) -> None:
    cache = SerializableTokenCache()
    async with aiomsal_daemon(fake, cache) as app:
        ours = await app.acquire_token_for_client(GRAPH_DEFAULT)
    msal_cache = msal.SerializableTokenCache()
    msal_cache.deserialize(cache.serialize())
    daemon = await msal_app(
        msal.ConfidentialClientApplication, DAEMON, fake, http, msal_cache,
        client_credential=SECRET,
    )
    sent = len(fake.token_requests)

    theirs = await in_thread(lambda: daemon.acquire_token_for_client(GRAPH_DEFAULT))

    assert theirs["access_token"] == ours.access_token
    assert theirs["token_source"] == "cache"
    assert len(fake.token_requests) == sent


async def test_msal_finds_an_account_aiomsal_signed_in_and_redeems_its_refresh_token(
    fake: FakeAuthority, http: requests.Session
) -> None:
    cache = SerializableTokenCache()
    async with aiomsal_desktop(fake, cache) as app:
        ours = await app.acquire_token_by_username_password(ALICE, PASSWORD, USER_READ)
    msal_cache = msal.SerializableTokenCache()
    msal_cache.deserialize(cache.serialize())
    desktop = await msal_app(msal.PublicClientApplication, DESKTOP, fake, http, msal_cache)
    sent = len(fake.token_requests)

    [account] = await in_thread(desktop.get_accounts)
    assert account["username"] == ALICE
    assert ours.account is not None
    assert account["home_account_id"] == ours.account.home_account_id
    cached = await in_thread(lambda: desktop.acquire_token_silent(USER_READ, account))
    assert cached["access_token"] == ours.access_token
    assert cached["token_source"] == "cache"
    assert len(fake.token_requests) == sent

    renewed = await in_thread(
        lambda: desktop.acquire_token_silent(USER_READ, account, force_refresh=True)
    )
    assert "access_token" in renewed, renewed
    assert renewed["access_token"] != ours.access_token
    assert renewed["token_source"] == "identity_provider"
    assert grants(fake)[sent:] == ["refresh_token"]


# -- MSAL writes, aiomsal reads -----------------------------------------------------------


@pytest.mark.filterwarnings("ignore:This API has been deprecated:DeprecationWarning")
async def test_aiomsal_serves_msal_tokens_and_redeems_its_refresh_token(
    fake: FakeAuthority, http: requests.Session
) -> None:
    msal_cache = msal.SerializableTokenCache()
    daemon = await msal_app(
        msal.ConfidentialClientApplication, DAEMON, fake, http, msal_cache,
        client_credential=SECRET,
    )
    desktop = await msal_app(msal.PublicClientApplication, DESKTOP, fake, http, msal_cache)
    app_token = await in_thread(lambda: daemon.acquire_token_for_client(GRAPH_DEFAULT))
    user_token = await in_thread(
        lambda: desktop.acquire_token_by_username_password(ALICE, PASSWORD, scopes=USER_READ)
    )
    assert "access_token" in app_token and "access_token" in user_token, (app_token, user_token)
    cache = SerializableTokenCache()
    cache.deserialize(msal_cache.serialize())
    sent = len(fake.token_requests)

    async with aiomsal_daemon(fake, cache) as app:
        hit = await app.acquire_token_for_client(GRAPH_DEFAULT)
    assert hit.access_token == app_token["access_token"]
    assert hit.token_source == "cache"

    async with aiomsal_desktop(fake, cache) as public:
        [account] = await public.get_accounts()
        assert account.username == ALICE
        assert account.home_account_id == user_token["id_token_claims"]["oid"] + "." + (
            user_token["id_token_claims"]["tid"]
        )
        silent = await public.acquire_token_silent(USER_READ, account)
        assert silent is not None
        assert silent.access_token == user_token["access_token"]
        assert silent.token_source == "cache"
        assert silent.account == account
        assert len(fake.token_requests) == sent

        renewed = await public.acquire_token_silent(USER_READ, account, force_refresh=True)
    assert renewed is not None
    assert renewed.token_source == "identity_provider"
    assert renewed.access_token != user_token["access_token"]
    assert grants(fake)[sent:] == ["refresh_token"]


# -- on-behalf-of -------------------------------------------------------------------------


async def test_obo_entries_survive_a_pass_through_msal(
    fake: FakeAuthority, http: requests.Session
) -> None:
    """aiomsal's on-behalf-of entries, carried by MSAL Python, are still found by assertion.

    MSAL Python ignores ``user_assertion_hash`` but keeps every field it does
    not know, also when it writes the cache. The other direction cannot be
    shown with MSAL Python: its ``acquire_token_on_behalf_of`` never reads the
    cache and writes no ``user_assertion_hash`` (its issue #265), so its
    on-behalf-of tokens look like tokens of the user, and matching them to an
    incoming assertion would mean trusting the assertion's claims unverified,
    which aiomsal refuses to do.
    """
    async with aiomsal_desktop(fake, SerializableTokenCache()) as spa:
        incoming = await spa.acquire_token_by_username_password(
            ALICE, PASSWORD, [f"api://{API}/access_as_user"]
        )
    cache = SerializableTokenCache()
    async with ConfidentialClientApplication(
        API, client_credential=SECRET, authority=fake.authority("contoso"),
        verify=fake.ssl_context(), token_cache=cache,
    ) as api:
        ours = await api.acquire_token_on_behalf_of(incoming.access_token, GRAPH_READ)
    written = json.loads(cache.serialize())
    assert all(e.get("user_assertion_hash") for e in written["AccessToken"].values())
    assert all(e.get("user_assertion_hash") for e in written["RefreshToken"].values())

    msal_cache = msal.SerializableTokenCache()
    msal_cache.deserialize(json.dumps(written))
    msal_api = await msal_app(
        msal.ConfidentialClientApplication, API, fake, http, msal_cache, client_credential=SECRET
    )
    # MSAL writes its own token into the same cache, and does not take the user's for its own.
    own = await in_thread(lambda: msal_api.acquire_token_for_client(GRAPH_DEFAULT))
    assert own["token_source"] == "identity_provider"
    assert own["access_token"] != ours.access_token

    carried_state = msal_cache.serialize()
    kept = json.loads(carried_state)
    for section in ("AccessToken", "RefreshToken"):
        for key, entry in written[section].items():
            assert kept[section][key] == entry
    carried = SerializableTokenCache()
    carried.deserialize(carried_state)
    sent = len(fake.token_requests)
    async with ConfidentialClientApplication(
        API, client_credential=SECRET, authority=fake.authority("contoso"),
        verify=fake.ssl_context(), token_cache=carried,
    ) as api:
        again = await api.acquire_token_on_behalf_of(incoming.access_token, GRAPH_READ)
        app_token = await api.acquire_token_for_client(GRAPH_DEFAULT)
    assert again.access_token == ours.access_token
    assert again.token_source == "cache"
    assert app_token.access_token == own["access_token"]
    assert app_token.token_source == "cache"
    assert len(fake.token_requests) == sent
