"""ManagedIdentityClient against a fake of every source: requests, answers, faults, caching."""

from __future__ import annotations

import os
from typing import Any, TypeVar

import anyio
import pytest

from aiomsal import (
    ImdsRetryPolicy,
    ManagedIdentityClient,
    MsalConfigurationError,
    MsalServiceError,
    MsalThrottledError,
    MsalTransportError,
    SystemAssignedManagedIdentity,
    UserAssignedManagedIdentity,
)
from aiomsal.testing import (
    FakeAppService,
    FakeAzureArc,
    FakeAzureML,
    FakeCloudShell,
    FakeImds,
    FakeManagedIdentityEndpoint,
    FakeServiceFabric,
    VirtualClock,
)
from tests.helpers import aiomsal_tasks, wait_until

pytestmark = pytest.mark.anyio

T = TypeVar("T")
SYSTEM = SystemAssignedManagedIdentity()
VAULT = "https://vault.azure.net"


def client_for(
    fake: FakeManagedIdentityEndpoint, identity: Any = SYSTEM, **options: Any
) -> ManagedIdentityClient:
    if isinstance(fake, FakeAzureArc):
        options.setdefault("arc_key_directory", fake.key_directory)
    return ManagedIdentityClient(identity, environ=fake.environ(), **options)


SOURCES = [FakeImds, FakeAppService, FakeAzureArc, FakeCloudShell, FakeServiceFabric, FakeAzureML]


@pytest.mark.parametrize("fake_type", SOURCES, ids=lambda t: t.__name__)
async def test_one_request_for_many_callers_then_cache_hits(fake_type: Any) -> None:
    clock = VirtualClock()
    async with fake_type(clock=clock, latency=0.05) as fake:
        client = client_for(fake, clock=clock)
        async with client:
            results = []

            async def call() -> None:
                results.append(await client.acquire_token_for_client(resource=VAULT))

            async with anyio.create_task_group() as tg:
                for _ in range(50):
                    tg.start_soon(call)
            again = await client.acquire_token_for_client(resource=VAULT + "/.default")
        assert len({r.access_token for r in results}) == 1
        assert again.access_token == results[0].access_token
        assert again.token_source == "cache"
        assert results[0].expires_on == int(clock.time()) + fake.token_lifetime
        assert fake.request_counts()[VAULT] == (2 if fake_type is FakeAzureArc else 1)
        assert aiomsal_tasks() == []
        assert client.statistics().misses >= 1


@pytest.mark.parametrize(
    ("fake_type", "kind", "wire"),
    [
        (FakeImds, "client_id", "client_id"),
        (FakeImds, "object_id", "object_id"),
        (FakeImds, "resource_id", "msi_res_id"),
        (FakeAppService, "client_id", "client_id"),
        (FakeAppService, "object_id", "object_id"),
        (FakeAppService, "resource_id", "mi_res_id"),
        (FakeAzureArc, "client_id", "client_id"),
        (FakeAzureArc, "resource_id", "msi_res_id"),
        (FakeAzureML, "client_id", "clientid"),
    ],
)
async def test_user_assigned_identity_uses_each_sources_parameter(
    fake_type: Any, kind: str, wire: str
) -> None:
    async with fake_type() as fake:
        registered = fake.add_identity()
        value = {"client_id": registered.client_id, "object_id": registered.object_id,
                 "resource_id": registered.resource_id}[kind]
        async with client_for(fake, UserAssignedManagedIdentity(**{kind: value})) as client:
            result = await client.acquire_token_for_client(resource=VAULT)
        assert fake.requests[-1].query[wire] == value
        claims = fake._signer.verify(result.access_token)
        assert claims["appid"] == registered.client_id
        assert claims["iss"] == f"https://sts.windows.net/{fake.tenant_id}/"


@pytest.mark.parametrize(
    ("fake_type", "identity"),
    [
        (FakeCloudShell, UserAssignedManagedIdentity(client_id="x")),
        (FakeServiceFabric, UserAssignedManagedIdentity(client_id="x")),
        (FakeAzureML, UserAssignedManagedIdentity(object_id="x")),
        (FakeAzureML, UserAssignedManagedIdentity(resource_id="/x")),
    ],
)
async def test_unsupported_user_assigned_identity_is_a_configuration_error(
    fake_type: Any, identity: UserAssignedManagedIdentity
) -> None:
    async with fake_type() as fake:
        with pytest.raises(MsalConfigurationError, match="cannot select a user-assigned"):
            client_for(fake, identity)
        assert fake.requests == []


async def test_an_unknown_identity_is_a_service_error() -> None:
    async with FakeImds() as fake:
        async with client_for(fake, UserAssignedManagedIdentity(client_id="nobody")) as client:
            with pytest.raises(MsalServiceError, match="Identity not found"):
                await client.acquire_token_for_client(resource=VAULT)
        assert len(fake.requests) == 1  # a 400 is not retried


#: A fast schedule with the default's shape, so that backoff takes milliseconds of real time.
FAST = ImdsRetryPolicy(first_delay=0.001, max_delay=0.004, gone_delay=0.002, gone_window=1.0)


async def test_imds_410_is_retried_until_it_comes_back() -> None:
    clock = VirtualClock()  # never advanced: IMDS backoff is real time
    async with FakeImds(clock=clock) as fake:
        fake.fail_next(3, status=410)
        async with client_for(fake, clock=clock, imds_retry=FAST) as client:
            with anyio.fail_after(10):
                result = await client.acquire_token_for_client(resource=VAULT)
        assert result.token_source == "identity_provider"
        assert len(fake.requests) == 4


async def test_imds_410_gives_up_when_its_window_has_passed() -> None:
    clock = VirtualClock()
    policy = ImdsRetryPolicy(gone_delay=0.002, gone_window=0.02)
    async with FakeImds(clock=clock) as fake:
        fake.fail_next(50, status=410)
        async with client_for(fake, clock=clock, imds_retry=policy) as client:
            with anyio.fail_after(10), pytest.raises(MsalServiceError) as caught:
                await client.acquire_token_for_client(resource=VAULT)
        assert caught.value.status == 410
        # Retried (the first 410 always is), at most once per 2 ms of the 20 ms window.
        assert 2 <= len(fake.requests) <= 11


@pytest.mark.parametrize("status", [404, 429, 500, 503])
async def test_imds_backs_off_exponentially_on_transient_answers(status: int) -> None:
    clock = VirtualClock()
    async with FakeImds(clock=clock) as fake:
        # Retry-After: 0 asks for no wait and leaves nothing in the throttling memory.
        fake.fail_next(2, status=status, retry_after=None if status != 429 else 0)
        async with client_for(fake, clock=clock, imds_retry=FAST) as client:
            with anyio.fail_after(10):
                result = await client.acquire_token_for_client(resource=VAULT)
        assert result.access_token
        assert len(fake.requests) == 3


async def test_imds_backoff_completes_on_a_clock_nobody_advances() -> None:
    clock = VirtualClock()
    async with FakeImds(clock=clock) as fake:
        fake.fail_next(2, status=500)
        async with client_for(fake, clock=clock, imds_retry=FAST) as client:
            start = clock.time()
            with anyio.fail_after(10):
                result = await client.acquire_token_for_client(resource=VAULT)
            assert clock.sleepers == 0  # nothing waits on token time for the retries
        assert result.token_source == "identity_provider"
        assert clock.time() == start
        assert len(fake.requests) == 3


async def test_imds_retries_are_bounded() -> None:
    clock = VirtualClock()
    async with FakeImds(clock=clock) as fake:
        fake.fail_next(50, status=500)
        policy = ImdsRetryPolicy(max_retries=3, first_delay=0.001, max_delay=0.004)
        async with client_for(fake, clock=clock, imds_retry=policy) as client:
            with anyio.fail_after(10), pytest.raises(MsalServiceError) as caught:
                await client.acquire_token_for_client(resource=VAULT)
        assert caught.value.status == 500
        assert len(fake.requests) == 4


async def test_imds_retries_stop_at_the_calls_timeout() -> None:
    clock = VirtualClock()
    async with FakeImds(clock=clock) as fake:
        fake.fail_next(50, status=503)
        policy = ImdsRetryPolicy(first_delay=30.0)  # a retry that cannot fit in timeout=
        async with client_for(fake, clock=clock, imds_retry=policy, timeout=1.0) as client:
            with anyio.fail_after(10), pytest.raises(MsalServiceError) as caught:
                await client.acquire_token_for_client(resource=VAULT)
        assert caught.value.status == 503  # the answer itself, not a timeout
        assert len(fake.requests) == 1


async def test_a_hung_imds_attempt_is_cut_by_attempt_timeout_and_retried() -> None:
    clock = VirtualClock()
    async with FakeImds(clock=clock) as fake:
        fake.fail_next(1, fault="hang")
        async with client_for(
            fake, clock=clock, imds_retry=FAST, attempt_timeout=0.2
        ) as client:
            with anyio.fail_after(10):
                result = await client.acquire_token_for_client(resource=VAULT)
        assert result.token_source == "identity_provider"
        assert len(fake.requests) == 2


async def test_the_default_deadline_allows_the_imds_retry_schedule() -> None:
    async with FakeImds() as imds, FakeAppService() as app_service:
        assert client_for(imds)._timeout == 70.0 + 10.0  # the 410 window and one attempt
        assert client_for(imds, attempt_timeout=3)._timeout == 73.0
        assert client_for(imds, imds_retry=FAST)._timeout == pytest.approx(11.0)
        assert client_for(imds, timeout=2.5)._timeout == 2.5
        assert client_for(app_service)._timeout == 10.0  # two attempts, as before


@pytest.mark.parametrize(
    "options",
    [{"attempt_timeout": 0}, {"attempt_timeout": float("inf")}, {"connect_timeout": -1},
     {"timeout": 0}, {"imds_retry": {"max_retries": 3}}],
)
async def test_bad_timeouts_and_policies_are_configuration_errors(options: Any) -> None:
    async with FakeImds() as fake:
        with pytest.raises(MsalConfigurationError):
            client_for(fake, **options)


async def test_imds_connection_failures_are_retried_then_reported() -> None:
    clock = VirtualClock()
    async with FakeImds(clock=clock) as fake:
        environ = fake.environ()
    # The fake has stopped: its port refuses connections.
    policy = ImdsRetryPolicy(max_retries=2, first_delay=0.001)
    async with ManagedIdentityClient(
        SYSTEM, environ=environ, clock=clock, imds_retry=policy
    ) as client:
        with anyio.fail_after(10), pytest.raises(MsalTransportError):
            await client.acquire_token_for_client(resource=VAULT)


async def test_other_sources_retry_a_5xx_once() -> None:
    clock = VirtualClock()
    async with FakeAppService(clock=clock) as fake:
        fake.fail_next(1, status=503)
        async with client_for(fake, clock=clock) as client:
            with anyio.fail_after(10):
                result = await client.acquire_token_for_client(resource=VAULT)
        assert result.access_token and len(fake.requests) == 2
        fake.fail_next(2, status=500)
        async with client_for(fake, clock=clock) as client:
            with anyio.fail_after(10), pytest.raises(MsalServiceError):
                await client.acquire_token_for_client(resource=VAULT)
        assert len(fake.requests) == 4


async def test_arc_challenge_with_a_path_outside_the_token_directory_is_refused(
    tmp_path: Any,
) -> None:
    outside = tmp_path / "evil.key"
    outside.write_text("stolen")
    async with FakeAzureArc() as fake:
        fake.challenge_path = str(outside)
        async with client_for(fake) as client:
            with pytest.raises(MsalServiceError, match="outside the agent's token directory"):
                await client.acquire_token_for_client(resource=VAULT)
        fake.challenge_path = os.path.join(fake.key_directory, "not-a-key.txt")
        async with client_for(fake) as client:
            with pytest.raises(MsalServiceError, match=r"\.key extension"):
                await client.acquire_token_for_client(resource=VAULT)
        assert all("Authorization" not in r.headers for r in fake.requests)


async def test_arc_refuses_an_oversized_key_file() -> None:
    async with FakeAzureArc() as fake:
        big = os.path.join(fake.key_directory, "big.key")
        await anyio.Path(big).write_text("x" * 5000)
        fake.challenge_path = big
        async with client_for(fake) as client:
            with pytest.raises(MsalServiceError, match="larger than 4096"):
                await client.acquire_token_for_client(resource=VAULT)


async def test_arc_legacy_agent_ignoring_the_user_assigned_identity_fails_closed() -> None:
    async with FakeAzureArc() as fake:
        registered = fake.add_identity()
        fake.echo_identity = False
        identity = UserAssignedManagedIdentity(client_id=registered.client_id)
        async with client_for(fake, identity) as client:
            with pytest.raises(MsalServiceError, match="did not confirm"):
                await client.acquire_token_for_client(resource=VAULT)


async def test_service_fabric_with_a_wrong_thumbprint_never_sends_the_secret() -> None:
    async with FakeServiceFabric() as fake:
        environ = fake.environ() | {"IDENTITY_SERVER_THUMBPRINT": "ab" * 20}
        async with ManagedIdentityClient(SYSTEM, environ=environ) as client:
            with pytest.raises(MsalTransportError, match="TLS certificate verification failed"):
                await client.acquire_token_for_client(resource=VAULT)
        assert fake.requests == []


async def test_service_fabric_gets_the_claims_challenge_and_capabilities() -> None:
    async with FakeServiceFabric() as fake:
        async with client_for(fake, client_capabilities=["cp1"]) as client:
            first = await client.acquire_token_for_client(resource=VAULT)
            cached = await client.acquire_token_for_client(resource=VAULT)
            renewed = await client.acquire_token_for_client(
                resource=VAULT, claims_challenge='{"access_token":{"nbf":{"essential":true}}}'
            )
        assert cached.access_token == first.access_token
        assert renewed.access_token != first.access_token
        assert len(fake.requests) == 2
        query = fake.requests[-1].query
        assert query["xms_cc"] == "cp1"
        import hashlib

        assert query["token_sha256_to_refresh"] == hashlib.sha256(
            first.access_token.encode()
        ).hexdigest()


async def test_a_claims_challenge_bypasses_the_cache_for_every_source() -> None:
    async with FakeImds() as fake:
        async with client_for(fake) as client:
            first = await client.acquire_token_for_client(resource=VAULT)
            second = await client.acquire_token_for_client(resource=VAULT, claims_challenge="{}")
            third = await client.acquire_token_for_client(resource=VAULT)
        assert len(fake.requests) == 2
        assert first.access_token != second.access_token
        assert third.access_token == second.access_token  # the fresh token is cached


@pytest.mark.parametrize(
    "fake",
    [FakeAppService(legacy_dates=True), FakeAzureML(expiry_format="int"),
     FakeAzureML(expiry_format="date"), FakeAzureML()],
    ids=["app-service-date", "ml-int", "ml-date", "ml-epoch-string"],
)
async def test_every_expiry_shape_gives_the_right_lifetime(fake: Any) -> None:
    clock = VirtualClock()
    fake._clock = clock
    async with fake, client_for(fake, clock=clock) as client:
        result = await client.acquire_token_for_client(resource=VAULT)
    assert result.expires_on == int(clock.time()) + fake.token_lifetime


async def test_long_lived_tokens_are_refreshed_at_half_life_in_the_background() -> None:
    clock = VirtualClock()
    async with FakeImds(clock=clock, token_lifetime=86_400) as fake:
        async with client_for(fake, clock=clock) as client:
            first = await client.acquire_token_for_client(resource=VAULT)
            await client.acquire_token_for_client(resource=VAULT)  # a hit: schedules the refresh
            assert first.refresh_on is not None
            assert first.refresh_on - clock.time() == pytest.approx(43_200, rel=0.1)
            await clock.advance(first.refresh_on - clock.time() - 60)
            assert len(fake.requests) == 1
            fake.latency = 0.0
            await clock.advance(120)
            await wait_until(lambda: client.statistics().background_refreshes >= 1)
            after = await client.acquire_token_for_client(resource=VAULT)
        assert after.token_source == "cache"
        assert after.access_token != first.access_token
        assert len(fake.requests) == 2


async def test_refresh_in_from_the_source_wins() -> None:
    clock = VirtualClock()
    async with FakeAppService(clock=clock, token_lifetime=7200, refresh_in=1800) as fake:
        async with client_for(fake, clock=clock) as client:
            result = await client.acquire_token_for_client(resource=VAULT)
        assert result.refresh_on is not None
        # 1800 s, not half the lifetime (3600 s), give or take the 5% jitter (360 s)
        assert result.refresh_on - clock.time() == pytest.approx(1800, abs=361)


async def test_errors_of_each_shape_are_read() -> None:
    async with FakeServiceFabric() as fake:
        fake.fail_next(1, status=404, body=fake.error_body(404, "ManagedIdentityNotFound", "no"))
        async with client_for(fake) as client:
            with pytest.raises(MsalServiceError) as caught:
                await client.acquire_token_for_client(resource=VAULT)
        assert caught.value.error == "ManagedIdentityNotFound"
    async with FakeAppService() as fake:
        environ = fake.environ() | {"IDENTITY_HEADER": "wrong"}
        async with ManagedIdentityClient(SYSTEM, environ=environ) as client:
            with pytest.raises(MsalServiceError, match="Unauthorized") as caught:
                await client.acquire_token_for_client(resource=VAULT)
        assert caught.value.status == 401


@pytest.mark.parametrize("fault", ["malformed_json", "html"])
async def test_garbage_answers_are_service_errors(fault: Any) -> None:
    async with FakeCloudShell() as fake:
        fake.fail_next(2, status=502, fault=fault)
        async with client_for(fake) as client:
            with pytest.raises(MsalServiceError):
                await client.acquire_token_for_client(resource=VAULT)


async def test_no_secret_in_reprs_or_errors() -> None:
    async with FakeAppService() as fake:
        client = client_for(fake)
        fake.fail_next(2, status=500)
        async with client:
            with pytest.raises(MsalServiceError) as caught:
                await client.acquire_token_for_client(resource=VAULT)
        for text in (repr(client), repr(client.source), str(caught.value), repr(fake.requests)):
            assert fake.secret not in text


async def test_the_constructor_endpoint_override_wins() -> None:
    async with FakeImds() as fake:
        async with ManagedIdentityClient(
            {"ManagedIdentityIdType": "SystemAssigned", "Id": None},
            environ={},
            endpoint=fake.endpoint,
        ) as client:
            assert client.source.kind == "imds"
            await client.acquire_token_for_client(resource=VAULT)
        assert len(fake.requests) == 1


async def test_a_throttled_imds_answer_is_remembered() -> None:
    clock = VirtualClock()
    async with FakeImds(clock=clock) as fake:
        fake.fail_next(1, status=429, retry_after=30)
        policy = ImdsRetryPolicy(max_retries=0)
        async with client_for(fake, clock=clock, imds_retry=policy) as client:
            for _ in range(3):
                with pytest.raises(MsalThrottledError) as caught:
                    await client.acquire_token_for_client(resource=VAULT)
            assert caught.value.retry_after == 30
            assert len(fake.requests) == 1  # the repeats were answered from memory
            await clock.advance(31)
            assert (await client.acquire_token_for_client(resource=VAULT)).access_token
        assert len(fake.requests) == 2
