"""Real Azure SDK clients on aiomsal credentials: azure-storage-blob against Azurite, and
azure-core's bearer policy answering a CAE claims challenge."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import anyio
import jwt
import pytest
from aiohttp import web
from azure.core.pipeline import AsyncPipeline
from azure.core.pipeline.policies import AsyncBearerTokenCredentialPolicy
from azure.core.pipeline.transport import AioHttpTransport
from azure.core.rest import HttpRequest
from azure.storage.blob.aio import BlobServiceClient

from aiomsal.integrations._azure_common import SHARED
from aiomsal.integrations.azure import ClientSecretCredential
from aiomsal.testing import FakeAuthority, VirtualClock
from tests.azurite_server import AzuriteServer
from tests.helpers import SECRET, aiomsal_tasks, wait_until

pytestmark = pytest.mark.anyio
STORAGE = "https://storage.azure.com/.default"


async def test_twenty_blob_clients_share_one_token_then_it_is_refreshed_in_the_background(
    azurite: AzuriteServer,
) -> None:
    # Azurite checks nbf/exp against the real time: start the virtual clock at it.
    clock = VirtualClock(start=time.time() - 60)
    async with FakeAuthority(clock=clock, latency=0.05, token_lifetime=7200) as fake:
        fake.add_client("storage-app", secret=SECRET)
        credential = ClientSecretCredential(
            "contoso", "storage-app", SECRET, authority=fake.base_url, clock=clock
        )
        connector = aiohttp.TCPConnector(ssl=azurite.ssl_context(), limit=100)
        async with aiohttp.ClientSession(connector=connector) as session:
            clients = [
                BlobServiceClient(
                    azurite.account_url,
                    credential=credential,
                    transport=AioHttpTransport(session=session, session_owner=False),
                )
                for _ in range(20)
            ]
            container = clients[0].get_container_client("data")
            await container.create_container()
            blobs = {f"blob-{i:03}": f"payload {i} ".encode() * (i % 7 + 1) for i in range(500)}
            downloaded: dict[str, bytes] = {}

            async def round_trip(i: int, name: str) -> None:
                client = clients[i % len(clients)].get_blob_client("data", name)
                await client.upload_blob(blobs[name], overwrite=True)
                stream = await client.download_blob()
                downloaded[name] = await stream.readall()

            async with anyio.create_task_group() as tg:
                for i, name in enumerate(blobs):
                    tg.start_soon(round_trip, i, name)
            assert downloaded == blobs
            assert len(fake.token_requests) == 1  # one key, one request, 20 clients
            first = await credential.get_token_info(STORAGE)
            claims = jwt.decode(first.token, options={"verify_signature": False})
            assert claims["iss"].startswith("https://sts.windows.net/")
            assert claims["aud"] == "https://storage.azure.com"
            # The token's refresh time comes on the virtual clock: it is renewed in the
            # background, and callers are served from the cache throughout.
            assert first.refresh_on is not None
            await clock.advance(first.refresh_on - clock.time() + 1)
            app = credential._apps[False]
            await wait_until(lambda: app.statistics().background_refreshes == 1)
            renewed = await credential.get_token_info(STORAGE)
            assert renewed.token != first.token
            assert len(fake.token_requests) == 2
            assert app.statistics().misses == 1  # only the very first call waited
            for client in clients:
                await client.close()
        await credential.close()
    assert SHARED.count() == 0
    assert aiomsal_tasks() == []


@pytest.fixture
async def cae_resource() -> AsyncIterator[tuple[str, list[str]]]:
    """A loopback API that answers a token it has not seen with a CAE claims challenge."""
    seen: list[str] = []
    challenge = json.dumps({"access_token": {"nbf": {"essential": True, "value": "1700000000"}}})
    encoded = base64.urlsafe_b64encode(challenge.encode()).decode().rstrip("=")

    async def handler(request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        seen.append(token)
        if len(seen) == 1:
            return web.Response(status=401, headers={
                "WWW-Authenticate": f'Bearer realm="", authorization_uri="https://login.'
                f'microsoftonline.com/common/oauth2/authorize", error="insufficient_claims", '
                f'claims="{encoded}"'
            })
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/resource", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/resource", seen
    finally:
        await runner.cleanup()


async def test_the_bearer_policy_answers_a_cae_claims_challenge(
    cae_resource: tuple[str, list[str]],
) -> None:
    url, seen = cae_resource
    clock = VirtualClock()
    async with FakeAuthority(clock=clock) as fake:
        fake.add_client("cae-app", secret=SECRET)
        async with ClientSecretCredential(
            "contoso", "cae-app", SECRET, authority=fake.base_url, clock=clock
        ) as credential:
            policy = AsyncBearerTokenCredentialPolicy(
                credential, "api://resource/.default", enable_cae=True
            )
            async with AsyncPipeline(AioHttpTransport(), policies=[policy]) as pipeline:
                response = await pipeline.run(HttpRequest("GET", url), enforce_https=False)
            assert response.http_response.status_code == 200
            assert len(seen) == 2 and seen[0] != seen[1]
            assert len(fake.token_requests) == 2  # the challenge bypassed the cache
            sent = json.loads(fake.token_requests[-1].form["claims"])
            assert sent["access_token"]["nbf"]["value"] == "1700000000"
            assert sent["access_token"]["xms_cc"]["values"] == ["cp1"]
            assert "cp1" in fake.token_requests[0].form["claims"].lower()
