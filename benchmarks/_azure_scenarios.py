"""Azure SDK scenarios: aiomsal's credentials (aiomsal.integrations.azure) vs azure-identity aio.

j. 1,000 cold ``get_token`` callers on one key; k. 10 SDK-style clients (each its own
credential object and azure-core ``AsyncBearerTokenCredentialPolicy``) x 100 concurrent
operations from cold; l. the cost of a warm ``get_token``; m. managed identity: 1,000 cold
callers against a fake IMDS. Requests are counted where they leave each library.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import os
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ._fake import CLIENT_ID, CLIENT_SECRET, TENANT, FakeEndpoint

if TYPE_CHECKING:
    from ._scenarios import Context

__all__ = ["AZURE_SCENARIOS", "azure_table"]

JSON = dict[str, Any]
SCOPE = "https://vault.azure.net/.default"
PEERS = ("aiomsal", "azure")


def _aiomsal_credential(fake: FakeEndpoint) -> Any:
    from aiomsal.integrations.azure import ClientSecretCredential

    return ClientSecretCredential(
        TENANT, CLIENT_ID, CLIENT_SECRET, authority=fake.base_url,
        connection_verify=fake.ca_file, disable_instance_discovery=True,
    )


def _azure_credential(fake: FakeEndpoint, transport: Any) -> Any:
    from azure.identity.aio import ClientSecretCredential

    return ClientSecretCredential(
        TENANT, CLIENT_ID, CLIENT_SECRET, authority=fake.base_url, transport=transport,
        disable_instance_discovery=True,
    )


def _aiomsal_requests(credentials: list[Any]) -> int:
    apps = {id(app): app for c in credentials for app in c._apps.values()}
    return sum(app.statistics().requests_sent for app in apps.values())


async def _cold(ctx: Context, fake: FakeEndpoint, peer: str, callers: int) -> JSON:
    from ._libs import _counting_transport

    transport = _counting_transport(fake.ca_file) if peer == "azure" else None
    credential = _aiomsal_credential(fake) if peer == "aiomsal" else _azure_credential(
        fake, transport
    )
    try:
        await credential.get_token("api://bench-warmup/.default")  # connection, metadata
        before = transport.posts if transport else _aiomsal_requests([credential])
        start = time.perf_counter()
        tokens = await asyncio.gather(*(credential.get_token(SCOPE) for _ in range(callers)))
        wall = time.perf_counter() - start
        after = transport.posts if transport else _aiomsal_requests([credential])
        return {"requests": after - before, "wall_ms": wall * 1e3,
                "distinct_tokens": len({t.token for t in tokens})}
    finally:
        await credential.close()


async def _per_peer(
    ctx: Context, label: str, run: Callable[[str], Awaitable[JSON]], timeout: float = 120
) -> JSON:
    """One cell per library: aiomsal, then azure-identity."""
    return {
        peer: await ctx.cell(f"{label}, {peer}", functools.partial(run, peer), timeout=timeout)
        for peer in PEERS
    }


async def cold_stampede(ctx: Context) -> JSON:
    fake = ctx.fake(3600)
    results = await _per_peer(
        ctx, "[j] 1,000 cold get_token", lambda p: _cold(ctx, fake, p, 1000)
    )
    return {"description": "1,000 concurrent cold get_token calls on one key", "results": results}


async def _sdk_clients(ctx: Context, fake: FakeEndpoint, peer: str, clients: int, ops: int) -> JSON:
    from azure.core.pipeline import PipelineRequest
    from azure.core.pipeline.policies import AsyncBearerTokenCredentialPolicy
    from azure.core.pipeline.transport import HttpRequest

    from ._libs import _counting_transport

    transport = _counting_transport(fake.ca_file) if peer == "azure" else None
    credentials = [
        _aiomsal_credential(fake) if peer == "aiomsal" else _azure_credential(fake, transport)
        for _ in range(clients)
    ]
    policies = [AsyncBearerTokenCredentialPolicy(c, SCOPE) for c in credentials]

    async def operation(policy: Any) -> str:
        from azure.core.pipeline import PipelineContext

        request = PipelineRequest(HttpRequest("GET", "https://127.0.0.1/x"), PipelineContext(None))
        await policy.on_request(request)
        return str(request.http_request.headers["Authorization"])

    try:
        start = time.perf_counter()
        headers = await asyncio.gather(*(operation(p) for p in policies for _ in range(ops)))
        wall = time.perf_counter() - start
        sent = transport.posts if transport else _aiomsal_requests(credentials)
        return {"requests": sent, "wall_ms": wall * 1e3, "distinct_tokens": len(set(headers))}
    finally:
        for credential in credentials:
            await credential.close()


async def sdk_clients(ctx: Context) -> JSON:
    fake = ctx.fake(3600)
    results = await _per_peer(
        ctx, "[k] 10 SDK clients x 100 ops", lambda p: _sdk_clients(ctx, fake, p, 10, 100)
    )
    return {"description": "10 SDK-style clients (own credential object and bearer policy "
                           "each) x 100 concurrent operations, cold; one key",
            "results": results}


async def _warm(ctx: Context, fake: FakeEndpoint, peer: str) -> JSON:
    from ._libs import _counting_transport

    transport = _counting_transport(fake.ca_file) if peer == "azure" else None
    credential = _aiomsal_credential(fake) if peer == "aiomsal" else _azure_credential(
        fake, transport
    )
    try:
        await credential.get_token(SCOPE)
        batches = []
        n = 20_000 if ctx.settings.quick else 100_000
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(n):
                await credential.get_token(SCOPE)
            batches.append((time.perf_counter() - start) / n * 1e6)
        return {"per_call_us": statistics.median(batches), "batches_us": batches}
    finally:
        await credential.close()


async def warm_cost(ctx: Context) -> JSON:
    fake = ctx.fake(3600)
    results = await _per_peer(ctx, "[l] warm get_token", lambda p: _warm(ctx, fake, p), 300)
    return {"description": "one warm get_token (median of 5 batches)", "results": results}


@contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


async def _imds(ctx: Context, peer: str, callers: int) -> JSON:
    from aiomsal.testing import FakeImds

    async with FakeImds(latency=ctx.settings.fake_latency_s) as imds:
        # Both libraries read the IMDS override from the environment; keep it set throughout.
        with _environ(imds.environ()):
            library: Any = importlib.import_module(
                "aiomsal.integrations.azure" if peer == "aiomsal" else "azure.identity.aio"
            )
            credential = library.ManagedIdentityCredential()
            try:
                start = time.perf_counter()
                tokens = await asyncio.gather(
                    *(credential.get_token(SCOPE) for _ in range(callers))
                )
                wall = time.perf_counter() - start
            finally:
                await credential.close()
        return {"requests": len(imds.requests), "wall_ms": wall * 1e3,
                "distinct_tokens": len({t.token for t in tokens})}


async def imds_stampede(ctx: Context) -> JSON:
    results = await _per_peer(
        ctx, "[m] managed identity, 1,000 cold callers", lambda p: _imds(ctx, p, 1000)
    )
    return {"description": "1,000 concurrent cold get_token on ManagedIdentityCredential "
                           "against a fake IMDS (in process)", "results": results}


def _text(cell: JSON | None, field: str, fmt: Callable[[float], str]) -> str:
    if not isinstance(cell, dict):
        return "—"
    if "error" in cell:
        return "error"
    return fmt(cell[field])


def azure_table(scenarios: JSON) -> str:
    """``scenario | aiomsal | azure-identity aio | goal`` for the g-j scenarios run."""
    rows = []

    def requests(v: float) -> str:
        return f"{v:,.0f} requests"

    for name, label, field, fmt, goal in (
        ("azure_cold", "j. 1,000 cold get_token, 1 key", "requests", requests, "requests == 1"),
        ("azure_sdk", "k. 10 SDK clients x 100 ops, cold", "requests", requests, "requests == 1"),
        ("azure_warm", "l. warm get_token", "per_call_us", lambda v: f"{v:.2f} µs",
         ">= 5x cheaper"),
        ("azure_imds", "m. managed identity (IMDS fake), 1,000 cold", "requests", requests,
         "requests == 1"),
    ):
        results = (scenarios.get(name) or {}).get("results")
        if not results:
            continue
        ours, theirs = results.get("aiomsal"), results.get("azure")
        cells = [_text(ours, field, fmt), _text(theirs, field, fmt)]
        if field == "requests" and isinstance(ours, dict) and "wall_ms" in ours:
            cells = [f"{c}, {r['wall_ms']:.0f} ms" if isinstance(r, dict) and "wall_ms" in r
                     else c for c, r in zip(cells, (ours, theirs), strict=True)]
        rows.append(f"| {label} | {cells[0]} | {cells[1]} | {goal} |")
    header = "| scenario | aiomsal | azure-identity aio | goal |\n|---|---|---|---|"
    return "\n".join([header, *rows])


AZURE_SCENARIOS: tuple[tuple[str, str, str, Any], ...] = (
    ("azure_cold", "j", "Azure SDK credential: 1,000 cold get_token", cold_stampede),
    ("azure_sdk", "k", "Azure SDK credential: 10 SDK clients x 100 ops", sdk_clients),
    ("azure_warm", "l", "Azure SDK credential: warm get_token", warm_cost),
    ("azure_imds", "m", "managed identity: 1,000 cold callers on a fake IMDS", imds_stampede),
)
