"""Long-running on-behalf-of: acting for a user, by a session key, after their token expired."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from aiomsal import (
    ConfidentialClientApplication,
    FileCacheStorage,
    MsalConfigurationError,
    MsalServiceError,
    MsalUiRequiredError,
)
from aiomsal._apps._confidential import user_assertion_hash
from aiomsal._apps._long_running_obo import _assertion_hash
from aiomsal._cache._storage import CacheStorage
from aiomsal.testing import FakeAuthority, VirtualClock
from tests.helpers import SECRET, wait_until

pytestmark = pytest.mark.anyio

API = "reports-api"
GRAPH = ["https://graph.microsoft.com/Files.Read"]
OBO = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
async def fake(clock: VirtualClock) -> AsyncIterator[FakeAuthority]:
    async with FakeAuthority(clock=clock) as authority:
        authority.add_client(API, secret=SECRET)
        authority.add_user("alice@contoso.com", tenant="contoso")
        yield authority


def confidential(
    fake: FakeAuthority, storage: CacheStorage | None = None
) -> ConfidentialClientApplication:
    return ConfidentialClientApplication(
        API,
        client_credential=SECRET,
        authority=fake.authority("contoso"),
        clock=fake.clock,
        cache_storage=storage,
    )


def incoming(fake: FakeAuthority, lifetime: int = 600) -> str:
    return fake.issue_access_token(
        f"api://{API}", user=fake.user("alice@contoso.com"), lifetime=lifetime
    )


def grants(fake: FakeAuthority) -> list[str]:
    return [r.grant_type.rpartition(":")[2] for r in fake.token_requests]


async def test_the_work_goes_on_after_the_users_token_expired(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    assertion = incoming(fake)
    async with confidential(fake) as app:
        first, key = await app.initiate_long_running_on_behalf_of(assertion, GRAPH)
        assert key == _assertion_hash(assertion) == user_assertion_hash(assertion)
        assert first.token_source == "identity_provider"
        _, own_key = await app.initiate_long_running_on_behalf_of(
            assertion, GRAPH, session_key="job-1"
        )
        await clock.advance(7200)  # the user's token and the downstream tokens have expired
        mail = ["https://graph.microsoft.com/Mail.Read"]
        with pytest.raises(MsalServiceError):  # plain on-behalf-of needs a valid assertion
            await app.acquire_token_on_behalf_of(incoming(fake, lifetime=-400), mail)
        later = await app.acquire_token_in_long_running_process(own_key, GRAPH)
        assert later.access_token != first.access_token
        assert later.expires_on > clock.time()
        assert (await app.acquire_token_in_long_running_process(key, GRAPH)).expires_on > 0
    assert grants(fake) == [  # the expired assertion was refused before any request
        "jwt-bearer",
        "jwt-bearer",
        "refresh_token",
        "refresh_token",
    ]


async def test_concurrent_acquisitions_share_one_refresh(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    async with confidential(fake) as app:
        _, key = await app.initiate_long_running_on_behalf_of(
            incoming(fake), GRAPH, session_key="nightly-report-42"
        )
        assert key == "nightly-report-42"
        await clock.advance(7200)
        results = []

        async def acquire() -> None:
            results.append(await app.acquire_token_in_long_running_process(key, GRAPH))

        async with anyio.create_task_group() as group:
            for _ in range(50):
                group.start_soon(acquire)
    assert len({r.access_token for r in results}) == 1
    assert grants(fake) == ["jwt-bearer", "refresh_token"]


async def test_a_session_token_in_use_is_refreshed_in_the_background(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    async with confidential(fake) as app:
        _, key = await app.initiate_long_running_on_behalf_of(incoming(fake), GRAPH)
        await app.acquire_token_in_long_running_process(key, GRAPH)  # in use
        await clock.advance(3600 * 0.8)  # past the refresh time, before expiry
        await wait_until(lambda: app.statistics().background_refreshes == 1)
        assert grants(fake) == ["jwt-bearer", "refresh_token"]
        result = await app.acquire_token_in_long_running_process(key, GRAPH)
        assert result.token_source == "cache"


async def test_sessions_are_persisted_and_removable(
    fake: FakeAuthority, clock: VirtualClock, tmp_path: Path
) -> None:
    path = str(tmp_path / "cache.bin")
    async with confidential(fake, FileCacheStorage(path)) as first:
        _, key = await first.initiate_long_running_on_behalf_of(incoming(fake), GRAPH)
    await clock.advance(7200)
    async with confidential(fake, FileCacheStorage(path)) as second:  # another process
        result = await second.acquire_token_in_long_running_process(key, GRAPH)
        assert result.token_source == "identity_provider"
        assert await second.remove_long_running_process(key) is True
        assert await second.remove_long_running_process(key) is False
        with pytest.raises(MsalUiRequiredError, match="no long-running process"):
            await second.acquire_token_in_long_running_process(key, GRAPH)
    async with confidential(fake, FileCacheStorage(path)) as third:
        with pytest.raises(MsalUiRequiredError):  # removed from the storage too
            await third.acquire_token_in_long_running_process(key, GRAPH)
    assert grants(fake) == ["jwt-bearer", "refresh_token"]


async def test_a_revoked_session_needs_the_user_again(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    async with confidential(fake) as app:
        _, key = await app.initiate_long_running_on_behalf_of(incoming(fake), GRAPH)
        fake.revoke_refresh_tokens("alice@contoso.com")
        await clock.advance(7200)
        with pytest.raises(MsalUiRequiredError):
            await app.acquire_token_in_long_running_process(key, GRAPH)
        with pytest.raises(MsalUiRequiredError, match="no long-running process"):
            await app.acquire_token_in_long_running_process(key, GRAPH)  # nothing sent
    assert grants(fake) == ["jwt-bearer", "refresh_token"]


async def test_an_initiated_session_is_reused_and_keys_are_checked(
    fake: FakeAuthority,
) -> None:
    async with confidential(fake) as app:
        assertion = incoming(fake)
        first, key = await app.initiate_long_running_on_behalf_of(assertion, GRAPH)
        again, same = await app.initiate_long_running_on_behalf_of(assertion, GRAPH)
        assert (again.access_token, same) == (first.access_token, key)
        with pytest.raises(MsalUiRequiredError):
            await app.acquire_token_in_long_running_process("never-started", GRAPH)
        for bad in ("", "a/b", "x" * 129, None):
            with pytest.raises(MsalConfigurationError):
                await app.acquire_token_in_long_running_process(bad, GRAPH)  # type: ignore[arg-type]
        with pytest.raises(MsalConfigurationError):
            await app.initiate_long_running_on_behalf_of("", GRAPH)
    assert grants(fake) == ["jwt-bearer"]
