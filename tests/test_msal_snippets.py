"""MSAL Python's documented usage, with only ``await`` added, through ``aiomsal.msal``.

Each test body follows a pattern of MSAL Python's README or docs: silent first,
then a sign-in; results checked with ``"access_token" in result`` and
``result.get("error")``; the token cache saved when ``has_state_changed``.
What differs is configuration only (the fake authority's URL, its CA, the
test's clock), and ``await`` before each call. The silent-first pattern is
also run across a restart with each storage: a file, Redis, and
``serialize()`` / ``deserialize()``.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import anyio
import pytest

import aiomsal.msal as msal
from aiomsal import CacheStorage, FileCacheStorage, RedisCacheStorage
from aiomsal.testing import FakeAuthority, VirtualClock
from tests.helpers import SECRET, wait_until

pytestmark = pytest.mark.anyio

ALICE = "alice@contoso.com"


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
async def fake(clock: VirtualClock) -> AsyncIterator[FakeAuthority]:
    async with FakeAuthority(clock=clock) as authority:
        authority.add_client("daemon-id", secret=SECRET)
        authority.add_client("api-id", secret=SECRET)
        authority.add_client("web-id", secret=SECRET, redirect_uris=["http://localhost/getAToken"])
        authority.add_client("public-id", redirect_uris=["http://localhost"])
        authority.add_user(ALICE, password="alice-pw", tenant="contoso")
        yield authority


@pytest.fixture
def config(fake: FakeAuthority) -> dict[str, Any]:
    return {
        "authority": fake.authority("contoso"),
        "client_id": "daemon-id",
        "secret": SECRET,
        "scope": ["https://graph.microsoft.com/.default"],
    }


def approve_when_shown(
    fake: FakeAuthority, clock: VirtualClock
) -> Callable[[], Coroutine[Any, Any, None]]:
    """The user, in another window: approves the code that is shown, as the poll waits."""

    async def user() -> None:
        await wait_until(lambda: bool(fake.pending_user_codes()) and clock.sleepers == 1)
        fake.approve_device_code(fake.pending_user_codes()[0], ALICE)
        await clock.advance(fake.device_code_interval)

    return user


async def test_readme_client_credentials(config: dict[str, Any], clock: VirtualClock) -> None:
    app = msal.ConfidentialClientApplication(
        config["client_id"], authority=config["authority"],
        client_credential=config["secret"], clock=clock,
    )
    result = None
    result = await app.acquire_token_silent(config["scope"], account=None)
    if not result:
        result = await app.acquire_token_for_client(scopes=config["scope"])
    if "access_token" in result:
        printed = result["token_type"]
    else:
        printed = (result.get("error"), result.get("error_description"),
                   result.get("correlation_id"))
    assert printed == "Bearer"
    again = await app.acquire_token_for_client(scopes=config["scope"])
    assert again["token_source"] == "cache"
    await app.aclose()


async def test_readme_error_branch(config: dict[str, Any], clock: VirtualClock) -> None:
    app = msal.ConfidentialClientApplication(
        config["client_id"], authority=config["authority"],
        client_credential="not-the-secret", clock=clock,
    )
    result = await app.acquire_token_for_client(scopes=config["scope"])
    if "access_token" in result:
        printed: Any = result["access_token"]
    else:
        printed = (result.get("error"), result.get("error_description"),
                   result.get("correlation_id"))
    assert printed[0] == "invalid_client" and printed[2]
    assert json.dumps(result)
    await app.aclose()


async def test_readme_public_client_silent_then_device_flow(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    app = msal.PublicClientApplication(
        "public-id", authority=fake.authority("organizations"), clock=clock
    )
    shown: list[str] = []
    async with anyio.create_task_group() as user:
        user.start_soon(approve_when_shown(fake, clock))
        result = None
        accounts = await app.get_accounts()
        if accounts:
            chosen = accounts[0]
            result = await app.acquire_token_silent(["User.Read"], account=chosen)
        if not result:
            flow = await app.initiate_device_flow(scopes=["User.Read"])
            shown.append(flow["message"])
            result = await app.acquire_token_by_device_flow(flow)
    assert result is not None and "access_token" in result, result
    assert shown and "code" in shown[0]
    # The same pattern again: now the cache answers.
    accounts = await app.get_accounts()
    assert [a["username"] for a in accounts] == [ALICE]
    result = await app.acquire_token_silent(["User.Read"], account=accounts[0])
    assert result is not None and result["token_source"] == "cache"
    await app.aclose()


async def test_docs_web_app_auth_code_flow(fake: FakeAuthority, clock: VirtualClock) -> None:
    app = msal.ConfidentialClientApplication(
        "web-id", client_credential=SECRET, authority=fake.authority("organizations"),
        clock=clock,
    )
    session: dict[str, Any] = {}
    # /login
    session["flow"] = await app.initiate_auth_code_flow(
        ["User.Read"], redirect_uri="http://localhost/getAToken"
    )
    session = json.loads(json.dumps(session))  # a cookie session round trip
    async with (
        aiohttp.ClientSession() as browser,
        browser.get(session["flow"]["auth_uri"], allow_redirects=False) as answer,
    ):
        request_args = dict(parse_qsl(urlsplit(answer.headers["Location"]).query))
    # /getAToken
    user = None
    try:
        result = await app.acquire_token_by_auth_code_flow(session.get("flow", {}), request_args)
        if "error" in result:
            raise AssertionError(result)
        user = result.get("id_token_claims")
    except ValueError:  # Usually caused by CSRF
        pass
    assert user is not None and user["preferred_username"] == ALICE
    with pytest.raises(ValueError, match="state"):
        await app.acquire_token_by_auth_code_flow(session.get("flow", {}), {"code": "x"})
    await app.aclose()


async def test_docs_on_behalf_of(fake: FakeAuthority, clock: VirtualClock) -> None:
    pca = msal.PublicClientApplication(
        "public-id", authority=fake.authority("contoso"), clock=clock
    )
    incoming = await pca.acquire_token_by_username_password(
        ALICE, "alice-pw", scopes=["api://api-id/access_as_user"]
    )
    app = msal.ConfidentialClientApplication(
        "api-id", authority=fake.authority("contoso"), client_credential=SECRET, clock=clock
    )
    result = await app.acquire_token_on_behalf_of(
        user_assertion=incoming["access_token"], scopes=["https://graph.microsoft.com/User.Read"]
    )
    assert "access_token" in result, result
    again = await app.acquire_token_on_behalf_of(
        user_assertion=incoming["access_token"], scopes=["https://graph.microsoft.com/User.Read"]
    )
    assert again["token_source"] == "cache"  # MSAL would have asked again
    await pca.aclose()
    await app.aclose()


# -- silent first across a restart ---------------------------------------------------------


async def run_once(
    fake: FakeAuthority, clock: VirtualClock, **options: Any
) -> tuple[dict[str, Any], int]:
    """One run of a CLI: silent first, else a password sign-in; returns (result, requests)."""
    before = len(fake.token_requests)
    app = msal.PublicClientApplication(
        "public-id", authority=fake.authority("contoso"), clock=clock, **options
    )
    result = None
    accounts = await app.get_accounts(username=ALICE)
    if accounts:
        result = await app.acquire_token_silent(["User.Read"], account=accounts[0])
    if not result:
        result = await app.acquire_token_by_username_password(
            ALICE, "alice-pw", scopes=["User.Read"]
        )
    await app.aclose()
    return result, len(fake.token_requests) - before


async def test_restart_with_serialize_and_deserialize(
    fake: FakeAuthority, clock: VirtualClock, tmp_path: Path
) -> None:
    path = str(tmp_path / "my_cache.bin")
    for run in range(2):
        cache = msal.SerializableTokenCache()
        if os.path.exists(path):  # noqa: ASYNC240 - MSAL's recipe, at start-up
            cache.deserialize(open(path).read())  # noqa: ASYNC230, SIM115 - MSAL's recipe
        result, sent = await run_once(fake, clock, token_cache=cache)
        if cache.has_state_changed:
            with open(path, "w") as f:  # noqa: ASYNC230 - at exit, as MSAL's recipe
                f.write(cache.serialize())
        assert "access_token" in result
        assert (result["token_source"], sent) == (
            ("identity_provider", 1) if run == 0 else ("cache", 0)
        )


async def restart_with(
    fake: FakeAuthority, clock: VirtualClock, storage: Callable[[], CacheStorage]
) -> None:
    first, sent = await run_once(fake, clock, cache_storage=storage())
    assert (first["token_source"], sent) == ("identity_provider", 1)
    second, sent = await run_once(fake, clock, cache_storage=storage())
    assert (second["token_source"], sent) == ("cache", 0)
    await clock.advance(7200)  # the access token expired: the stored refresh token serves
    third, sent = await run_once(fake, clock, cache_storage=storage())
    assert (third["token_source"], sent) == ("identity_provider", 1)
    assert [r.grant_type for r in fake.token_requests] == ["password", "refresh_token"]
    # Signed out in one run: the next run finds nobody.
    app = msal.PublicClientApplication(
        "public-id", authority=fake.authority("contoso"), clock=clock, cache_storage=storage()
    )
    [account] = await app.get_accounts()
    await app.remove_account(account)
    await app.aclose()
    app = msal.PublicClientApplication(
        "public-id", authority=fake.authority("contoso"), clock=clock, cache_storage=storage()
    )
    assert await app.get_accounts() == []
    await app.aclose()


async def test_restart_with_a_file_storage(
    fake: FakeAuthority, clock: VirtualClock, tmp_path: Path
) -> None:
    await restart_with(fake, clock, lambda: FileCacheStorage(tmp_path / "cache.json"))


async def test_restart_with_redis(
    fake: FakeAuthority, clock: VirtualClock, redis_url: str
) -> None:
    await restart_with(fake, clock, lambda: RedisCacheStorage(redis_url))
