"""Workload identity: the federated token file as client assertion, re-read off the hot path."""

from __future__ import annotations

from pathlib import Path

import anyio
import jwt
import pytest

from aiomsal import FederatedTokenFile, MsalConfigurationError, workload_identity_application
from aiomsal.testing import FakeAuthority, TestCertificate, VirtualClock, generate_certificate
from aiomsal.testing._fake_tokens import b64url

pytestmark = pytest.mark.anyio
GRAPH = ["https://graph.microsoft.com/.default"]


def federated_token(cert: TestCertificate, client_id: str, audience: str, now: float) -> str:
    """What the Kubernetes token projection writes, shaped as the fake accepts it."""
    thumb = b64url(bytes.fromhex(cert.thumbprint_sha1))
    claims = {"aud": audience, "iss": client_id, "sub": client_id, "exp": int(now) + 3600,
              "nbf": int(now), "iat": int(now), "jti": str(now)}
    return jwt.encode(claims, cert.private_key_pem, algorithm="RS256", headers={"x5t": thumb})


async def test_tokens_from_the_federated_file_and_env(tmp_path: Path) -> None:
    clock = VirtualClock()
    cert = generate_certificate()
    async with FakeAuthority(clock=clock) as fake:
        fake.add_client("wl-app", certificate=cert)
        audience = f"{fake.base_url}/contoso/oauth2/v2.0/token"
        token_file = tmp_path / "azure-identity-token"
        first = federated_token(cert, "wl-app", audience, clock.time())
        await anyio.Path(token_file).write_text(first + "\n")
        environ = {
            "AZURE_CLIENT_ID": "wl-app",
            "AZURE_TENANT_ID": "contoso",
            "AZURE_FEDERATED_TOKEN_FILE": str(token_file),
            "AZURE_AUTHORITY_HOST": fake.base_url,
        }
        async with workload_identity_application(environ=environ, clock=clock) as app:
            results = []

            async def call() -> None:
                results.append(await app.acquire_token_for_client(GRAPH))

            async with anyio.create_task_group() as tg:
                for _ in range(20):
                    tg.start_soon(call)
            assert len(fake.token_requests) == 1
            assert fake.token_requests[0].form["client_assertion"] == first
            # The projection renews the file; the next request sends the new one.
            second = federated_token(cert, "wl-app", audience, clock.time() + 1)
            await anyio.Path(token_file).write_text(second)
            await clock.advance(60)
            await app.acquire_token_for_client(["api://other/.default"])
            assert fake.token_requests[-1].form["client_assertion"] == second


async def test_the_file_is_read_again_only_when_it_changed_or_aged(tmp_path: Path) -> None:
    clock = VirtualClock()
    path = tmp_path / "token"
    await anyio.Path(path).write_text("one")
    source = FederatedTokenFile(path, clock=clock, check_every=30, max_age=300)
    assert await source() == "one"
    assert await source() == "one" and source.reads == 1
    await clock.advance(31)
    assert await source() == "one" and source.reads == 1  # looked (stat), unchanged
    await anyio.Path(path).write_text("two!")
    assert await source() == "one"  # within check_every of the last look
    await clock.advance(31)
    assert await source() == "two!" and source.reads == 2
    await clock.advance(301)
    assert await source() == "two!" and source.reads == 3  # aged: read again


async def test_missing_configuration_and_files(tmp_path: Path) -> None:
    with pytest.raises(MsalConfigurationError, match="AZURE_FEDERATED_TOKEN_FILE"):
        workload_identity_application(environ={"AZURE_CLIENT_ID": "a", "AZURE_TENANT_ID": "t"})
    with pytest.raises(MsalConfigurationError, match="cannot read"):
        await FederatedTokenFile(tmp_path / "absent")()
    await anyio.Path(tmp_path / "empty").write_text("\n")
    with pytest.raises(MsalConfigurationError, match="is empty"):
        await FederatedTokenFile(tmp_path / "empty")()
