"""Managed identity parity with the real ``msal`` package: the same calls through MSAL
Python's ``ManagedIdentityClient`` (sync, in a worker thread, over a ``requests.Session``)
and through ``aiomsal.msal``'s (awaited), pointed at the same fake source by the
environment variables both read.

Result dicts must have the same keys and the same values apart from tokens and
times; error dicts the same ``error`` and ``error_description``. Each test
clears every managed identity variable first, so nothing falls through to
169.254.169.254 (the suite's network guard would fail the test).
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import anyio
import anyio.to_thread
import msal
import pytest
import requests

import aiomsal.msal as compat
from aiomsal.testing import (
    FakeAppService,
    FakeAzureArc,
    FakeAzureML,
    FakeImds,
    FakeManagedIdentityEndpoint,
    FakeServiceFabric,
)

pytestmark = pytest.mark.anyio

VAULT = "https://vault.azure.net"
#: Every variable by which MSAL or aiomsal picks a managed identity source.
SOURCE_VARIABLES = (
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "DEFAULT_IDENTITY_CLIENT_ID",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
)
#: Values that differ from one token to the next.
VOLATILE = frozenset({"access_token", "expires_in", "refresh_in", "refresh_on"})


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> Callable[[FakeManagedIdentityEndpoint], None]:
    """Point both libraries at a fake: its variables set, every other source's cleared."""
    for name in SOURCE_VARIABLES:
        monkeypatch.delenv(name, raising=False)

    def point_at(fake: FakeManagedIdentityEndpoint) -> None:
        for name, value in fake.environ().items():
            monkeypatch.setenv(name, value)

    return point_at


@pytest.fixture
async def opened() -> AsyncIterator[list[compat.ManagedIdentityClient]]:
    """Face clients a test made, closed after it."""
    clients: list[compat.ManagedIdentityClient] = []
    yield clients
    for client in clients:
        await client.aclose()


def face(opened: list[compat.ManagedIdentityClient], identity: Any) -> compat.ManagedIdentityClient:
    client = compat.ManagedIdentityClient(identity, http_client=requests.Session())
    opened.append(client)
    return client


async def through_msal(identity: Any, resource: str = VAULT, calls: int = 1) -> list[Any]:
    """``calls`` results of MSAL Python's client, made and called in a worker thread."""

    def run() -> list[Any]:
        client = msal.ManagedIdentityClient(identity, http_client=requests.Session())
        return [client.acquire_token_for_client(resource=resource) for _ in range(calls)]

    return await anyio.to_thread.run_sync(run)


def comparable(result: dict[str, Any]) -> dict[str, Any]:
    """The result without its per-token values; their types are checked instead."""
    assert isinstance(result["access_token"], str) and result["access_token"]
    assert isinstance(result["expires_in"], int) and result["expires_in"] > 0
    return {k: v for k, v in result.items() if k not in VOLATILE}


def msal_identity(kind: str, fake: FakeManagedIdentityEndpoint) -> tuple[Any, Any]:
    """The same identity in MSAL's and the face's classes (a user-assigned one is registered)."""
    if kind == "system":
        return msal.SystemAssignedManagedIdentity(), compat.SystemAssignedManagedIdentity()
    registered = fake.add_identity()
    value = {
        "client_id": registered.client_id,
        "object_id": registered.object_id,
        "resource_id": registered.resource_id,
    }[kind]
    return (
        msal.UserAssignedManagedIdentity(**{kind: value}),
        compat.UserAssignedManagedIdentity(**{kind: value}),
    )


IDENTITIES = ["system", "client_id", "object_id", "resource_id"]


@pytest.mark.parametrize("kind", IDENTITIES)
async def test_imds_results_match_msal_fresh_and_cached(
    kind: str, environ: Any, opened: list[compat.ManagedIdentityClient]
) -> None:
    async with FakeImds() as imds:
        environ(imds)
        theirs, ours = msal_identity(kind, imds)
        expected = await through_msal(theirs, calls=2)
        client = face(opened, ours)
        got = [await client.acquire_token_for_client(resource=VAULT) for _ in range(2)]
        for mine, reference in zip(got, expected, strict=True):
            assert comparable(mine) == comparable(reference)
            assert set(mine) == set(reference)
        assert got[0]["token_source"] == "identity_provider"
        assert got[1]["token_source"] == "cache"
        assert got[1]["access_token"] == got[0]["access_token"]
        assert imds.request_counts()[VAULT] == 2  # one from each library
        json.dumps(got)


@pytest.mark.parametrize(
    ("fake_type", "kind"),
    [
        (FakeAppService, "system"),
        (FakeAppService, "client_id"),
        (FakeAppService, "resource_id"),
        (FakeAzureML, "system"),
        (FakeServiceFabric, "system"),
    ],
    ids=lambda value: getattr(value, "__name__", value),
)
async def test_other_sources_results_match_msal(
    fake_type: Any, kind: str, environ: Any, opened: list[compat.ManagedIdentityClient]
) -> None:
    async with fake_type() as fake:
        environ(fake)
        theirs, ours = msal_identity(kind, fake)
        [expected] = await through_msal(theirs)
        got = await face(opened, ours).acquire_token_for_client(resource=VAULT)
        assert comparable(got) == comparable(expected)
        assert set(got) == set(expected)


async def test_a_refused_identity_gives_msal_s_error_dict(
    environ: Any, opened: list[compat.ManagedIdentityClient]
) -> None:
    unknown = "00000000-0000-0000-0000-00000000dead"
    for fake_type in (FakeImds, FakeAppService):
        async with fake_type() as fake:
            environ(fake)
            [expected] = await through_msal(msal.UserAssignedManagedIdentity(client_id=unknown))
            client = face(opened, compat.UserAssignedManagedIdentity(client_id=unknown))
            got = await client.acquire_token_for_client(resource=VAULT)
            assert got == expected, fake_type.__name__
            assert set(got) == {"error", "error_description"}


async def test_a_service_fabric_refusal_has_msal_s_error_code(
    environ: Any, opened: list[compat.ManagedIdentityClient]
) -> None:
    async with FakeServiceFabric(system_assigned=False) as fabric:
        environ(fabric)
        [expected] = await through_msal(msal.SystemAssignedManagedIdentity())
        got = await face(opened, compat.SystemAssignedManagedIdentity()).acquire_token_for_client(
            resource=VAULT
        )
    assert expected["error"] == got["error"] == "invalid_client"
    assert isinstance(got["error_description"], str) and got["error_description"]
    assert "access_token" not in got


async def test_fifty_concurrent_calls_send_one_request(
    environ: Any, opened: list[compat.ManagedIdentityClient]
) -> None:
    async with FakeImds(latency=0.05) as imds:
        environ(imds)
        client = face(opened, compat.SystemAssignedManagedIdentity())
        results: list[dict[str, Any]] = []

        async def call() -> None:
            results.append(await client.acquire_token_for_client(resource=VAULT))

        async with anyio.create_task_group() as tasks:
            for _ in range(50):
                tasks.start_soon(call)
        assert len(imds.requests) == 1
        assert len({r["access_token"] for r in results}) == 1
        assert client.statistics().requests_sent == 1


def test_the_identity_dicts_are_msal_s() -> None:
    assert dict(compat.SystemAssignedManagedIdentity()) == dict(
        msal.SystemAssignedManagedIdentity()
    )
    for kind in ("client_id", "resource_id", "object_id"):
        ours = compat.UserAssignedManagedIdentity(**{kind: "abc"})
        assert dict(ours) == dict(msal.UserAssignedManagedIdentity(**{kind: "abc"}))
        assert compat.ManagedIdentity.is_user_assigned(ours)
    assert compat.ManagedIdentity.is_system_assigned(
        {"ManagedIdentityIdType": "SystemAssigned", "Id": None}
    )


@pytest.mark.parametrize(
    "arguments", [{}, {"client_id": "a", "object_id": "b"}, {"client_id": ""}]
)
def test_a_user_assigned_identity_names_exactly_one_id(arguments: dict[str, str]) -> None:
    with pytest.raises(msal.ManagedIdentityError):
        msal.UserAssignedManagedIdentity(**arguments)
    with pytest.raises(compat.ManagedIdentityError):
        compat.UserAssignedManagedIdentity(**arguments)


@pytest.mark.parametrize(
    "identity",
    [
        {"ManagedIdentityIdType": "ClientId"},
        {"ManagedIdentityIdType": "Nonsense", "Id": "x"},
        "SystemAssigned",
        None,
    ],
)
def test_an_incorrect_identity_raises_managed_identity_error(identity: Any) -> None:
    session = requests.Session()
    with pytest.raises(msal.ManagedIdentityError):
        msal.ManagedIdentityClient(identity, http_client=session)
    with pytest.raises(compat.ManagedIdentityError) as raised:
        compat.ManagedIdentityClient(identity, http_client=session)
    assert isinstance(raised.value, ValueError)


async def test_a_json_configured_identity_works(
    environ: Any, opened: list[compat.ManagedIdentityClient]
) -> None:
    async with FakeImds() as imds:
        environ(imds)
        registered = imds.add_identity()
        config = json.loads(
            json.dumps({"ManagedIdentityIdType": "ClientId", "Id": registered.client_id})
        )
        got = await face(opened, config).acquire_token_for_client(resource=VAULT)
        assert got["token_source"] == "identity_provider"
        assert imds.requests[0].query["client_id"] == registered.client_id


async def test_a_source_that_cannot_serve_the_identity_raises_at_construction(
    environ: Any,
) -> None:
    async with FakeServiceFabric() as fabric:
        environ(fabric)
        with pytest.raises(compat.ManagedIdentityError):
            compat.ManagedIdentityClient(
                compat.UserAssignedManagedIdentity(client_id="abc"), http_client=None
            )


async def test_a_short_lived_token_has_msal_s_keys_and_aiomsal_s_refresh_on(
    environ: Any, opened: list[compat.ManagedIdentityClient]
) -> None:
    async with FakeImds(token_lifetime=3600) as imds:
        environ(imds)
        [expected] = await through_msal(msal.SystemAssignedManagedIdentity())
        client = face(opened, compat.SystemAssignedManagedIdentity())
        got = await client.acquire_token_for_client(resource=VAULT)
    assert "refresh_in" not in expected and "refresh_in" not in got
    assert set(got) - set(expected) == {"refresh_on"}  # aiomsal refreshes every token
    assert got["refresh_on"] < got["expires_in"] + imds.requests[-1].time


async def test_an_aiohttp_session_as_http_client_is_used_and_left_open(
    environ: Any,
) -> None:
    sent: list[str] = []

    async def on_request_start(session: Any, context: Any, params: Any) -> None:
        sent.append(str(params.url))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    async with FakeImds() as imds, aiohttp.ClientSession(trace_configs=[trace]) as session:
        environ(imds)
        async with compat.ManagedIdentityClient(
            compat.SystemAssignedManagedIdentity(), http_client=session
        ) as client:
            got = await client.acquire_token_for_client(resource=VAULT)
        assert "access_token" in got
        assert len(sent) == 1 and sent[0].startswith(imds.endpoint)
        assert not session.closed


async def test_a_claims_challenge_fetches_a_new_token_as_in_msal(
    environ: Any, opened: list[compat.ManagedIdentityClient]
) -> None:
    claims = '{"access_token": {"nbf": {"essential": true, "value": "1"}}}'
    async with FakeImds() as imds:
        environ(imds)

        def run() -> list[Any]:
            client = msal.ManagedIdentityClient(
                msal.SystemAssignedManagedIdentity(), http_client=requests.Session()
            )
            first = client.acquire_token_for_client(resource=VAULT)
            return [first, client.acquire_token_for_client(resource=VAULT, claims_challenge=claims)]

        expected = await anyio.to_thread.run_sync(run)
        client = face(opened, compat.SystemAssignedManagedIdentity())
        first = await client.acquire_token_for_client(resource=VAULT)
        second = await client.acquire_token_for_client(resource=VAULT, claims_challenge=claims)
        assert [r["token_source"] for r in expected] == ["identity_provider"] * 2
        assert [first["token_source"], second["token_source"]] == ["identity_provider"] * 2
        assert second["access_token"] != first["access_token"]
        assert len(imds.requests) == 4


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Arc's Linux token directory")
async def test_an_arc_challenge_outside_the_agent_s_directory_is_an_error_dict(
    environ: Any, opened: list[compat.ManagedIdentityClient]
) -> None:
    async with FakeAzureArc() as arc:  # its key file lies in a temporary directory
        environ(arc)
        got = await face(opened, compat.SystemAssignedManagedIdentity()).acquire_token_for_client(
            resource=VAULT
        )
    assert got["error"] == "invalid_response"
    assert "token directory" in got["error_description"]
    assert arc.challenges == 1


async def test_client_capabilities_reach_service_fabric_as_in_msal(
    environ: Any, opened: list[compat.ManagedIdentityClient]
) -> None:
    async with FakeServiceFabric() as fabric:
        environ(fabric)

        def run() -> Any:
            client = msal.ManagedIdentityClient(
                msal.SystemAssignedManagedIdentity(),
                http_client=requests.Session(),
                client_capabilities=["cp1"],
            )
            return client.acquire_token_for_client(resource=VAULT)

        await anyio.to_thread.run_sync(run)
        client = compat.ManagedIdentityClient(
            compat.SystemAssignedManagedIdentity(),
            http_client=requests.Session(),
            client_capabilities=["cp1"],
            http_cache={},
        )
        opened.append(client)
        got = await client.acquire_token_for_client(resource=VAULT)
        assert "access_token" in got
        theirs, ours = fabric.requests
        assert ours.query["xms_cc"] == theirs.query["xms_cc"] == "cp1"
        assert set(ours.query) == set(theirs.query)
