"""The web API scenarios: incoming-token validation cost, and token-attaching fan-out.

h/validation: ``TokenValidator.validate`` on tokens seen for the first time (signature
checked) and on a token seen again (the cache of validated tokens), against bare
PyJWT ``jwt.decode`` with a pre-fetched key, the floor.
i/fanout: a worker making calls to a loopback downstream across 20 tenants through
``BearerTokenMiddleware`` (one client-credentials token per tenant), against the same
calls with a static ``Authorization`` header, the floor, and through azure-core's pipeline
with azure-identity's ``ClientSecretCredential`` (one policy per tenant; when installed).
The per-call cost is process CPU time (client and downstream share the process), which
other processes on a busy machine disturb less than wall time; wall time is recorded too.
The variants run in alternating short runs, and the overhead is the median of the paired
run-by-run ratios, so that load from elsewhere falls on both sides of each ratio.
Both run an in-process ``FakeAuthority`` over loopback http.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
import types
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt
from aiohttp import web
from yarl import URL

from aiomsal import ConfidentialClientApplication, TokenValidator
from aiomsal.integrations.aiohttp import BearerTokenMiddleware, client_credentials
from aiomsal.testing import FakeAuthority

from ._scenarios import Context

__all__ = ["WEB_REPETITIONS", "WEB_SCENARIOS", "web_goals"]

JSON = dict[str, Any]

API = "bench-web-api"
WORKER = "bench-worker"
AZURE_WORKER = "bench-azure-worker"
SECRET = "bench-worker-secret"
TENANTS = 20
DOWNSTREAM_SCOPE = "api://bench-downstream/.default"
#: Goals of issue 11.
REPEAT_GOAL_US = 5.0
FIRST_SIGHT_GOAL = 1.5
FANOUT_GOAL_PCT = 5.0

WEB_REPETITIONS = {
    "validation": "median of 5 batches per figure",
    "fanout": "median of 6 runs per variant, alternating which goes first",
}


@dataclass(frozen=True)
class _WebScenario:
    name: str
    letter: str
    title: str
    run: Any


def _median_per_call_us(batches: list[float], calls: int) -> float:
    return statistics.median(batches) / calls * 1e6


async def validation(ctx: Context) -> JSON:
    """First-sight and repeated validation against bare PyJWT with a pre-fetched key."""
    tokens_per_batch = 200 if ctx.settings.quick else 1_000
    batches = 5
    repeat_calls = 20_000 if ctx.settings.quick else 100_000
    async with FakeAuthority() as fake:
        authority = fake.authority("contoso")
        user = fake.add_user("bench@contoso.com", tenant="contoso")
        tokens = [
            [
                fake.issue_access_token(f"api://{API}", user=user, claims={"n": b * 10**6 + n})
                for n in range(tokens_per_batch)
            ]
            for b in range(batches * 2)
        ]
        key = jwt.PyJWK(fake.signer().jwk(), "RS256").key
        issuer = f"{fake.base_url}/{fake.tenant_id('contoso')}/v2.0"
        options: Any = {"require": ["exp", "nbf", "iat", "iss", "aud"]}

        def bare(token: str) -> None:
            jwt.decode(
                token, key, algorithms=["RS256"], audience=[API, f"api://{API}"],
                issuer=issuer, options=options, leeway=300,
            )

        async with TokenValidator(API, authority=authority) as validator:
            await validator.validate(tokens[0][0])  # metadata and keys loaded
            floor: list[float] = []
            first: list[float] = []
            for b in range(batches):  # alternate, so that noise hits both alike
                start = time.perf_counter()
                for token in tokens[2 * b]:
                    bare(token)
                floor.append(time.perf_counter() - start)
                start = time.perf_counter()
                for token in tokens[2 * b + 1]:
                    await validator.validate(token)
                first.append(time.perf_counter() - start)
            repeated_token = tokens[1][0]
            repeated: list[float] = []
            for _ in range(batches):
                start = time.perf_counter()
                for _ in range(repeat_calls):
                    await validator.validate(repeated_token)
                repeated.append(time.perf_counter() - start)
            stats = validator.statistics()
    floor_us = _median_per_call_us(floor, tokens_per_batch)
    first_us = _median_per_call_us(first, tokens_per_batch)
    return {
        "pyjwt_decode_us": round(floor_us, 2),
        "first_sight_us": round(first_us, 2),
        "first_sight_vs_pyjwt": round(first_us / floor_us, 3),
        "repeated_us": round(_median_per_call_us(repeated, repeat_calls), 3),
        "tokens_per_batch": tokens_per_batch,
        "repeat_calls_per_batch": repeat_calls,
        "batches": batches,
        "key_fetches": stats.key_fetches,
        "validated": stats.validated,
    }


async def _downstream() -> tuple[web.AppRunner, str]:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/{tenant}/items", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def _run_calls(
    session: aiohttp.ClientSession,
    calls: int,
    concurrency: int,
    request: Any,
) -> tuple[float, float]:
    """Wall and process CPU time of ``calls`` requests (``request(session, i)``)."""
    numbers: Iterator[int] = iter(range(calls))

    async def worker() -> None:
        for i in numbers:
            async with request(session, i) as response:
                await response.read()
                assert response.status == 200

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - wall, time.process_time() - cpu


async def fanout(ctx: Context) -> JSON:
    """20,000 calls over 20 tenants through the middleware vs a static header."""
    calls = 4_000 if ctx.settings.quick else 20_000
    concurrency = 50
    runs = 20  # of calls / runs each, alternating variants: noise hits both alike
    chunk = calls // runs
    tenants = [f"tenant{t}" for t in range(TENANTS)]
    async with FakeAuthority() as fake, contextlib.AsyncExitStack() as stack:
        fake.add_client(WORKER, secret=SECRET)
        runner, base = await _downstream()
        try:
            async with ConfidentialClientApplication(
                WORKER, client_credential=SECRET, authority=fake.authority("organizations"),
                instance_discovery=False,
            ) as app:
                scopes = {base: [DOWNSTREAM_SCOPE]}
                middlewares = [
                    (BearerTokenMiddleware(client_credentials(app, tenant=t), scopes),)
                    for t in tenants
                ]
                static = []
                for t in tenants:
                    result = await app.acquire_token_for_client([DOWNSTREAM_SCOPE], tenant=t)
                    static.append({"Authorization": f"Bearer {result.access_token}"})
                before = app.statistics().requests_sent

                def via_middleware(session: aiohttp.ClientSession, i: int) -> Any:
                    t = i % TENANTS
                    return session.get(f"{base}/{tenants[t]}/items", middlewares=middlewares[t])

                def via_static(session: aiohttp.ClientSession, i: int) -> Any:
                    t = i % TENANTS
                    return session.get(f"{base}/{tenants[t]}/items", headers=static[t])

                passthrough = [(_static_middleware(h["Authorization"]),) for h in static]

                def via_passthrough(session: aiohttp.ClientSession, i: int) -> Any:
                    t = i % TENANTS
                    return session.get(f"{base}/{tenants[t]}/items", middlewares=passthrough[t])

                variants = [
                    ("static", via_static),
                    ("passthrough", via_passthrough),
                    ("middleware", via_middleware),
                ]
                azure = await stack.enter_async_context(_azure_core(base, tenants))
                if azure is not None:
                    variants.append(("azure_core", azure.request))
                wall: dict[str, list[float]] = {name: [] for name, _ in variants}
                cpu: dict[str, list[float]] = {name: [] for name, _ in variants}
                async with aiohttp.ClientSession() as session:
                    for _, request in variants:  # warm connections and code paths
                        await _run_calls(session, chunk, concurrency, request)
                    for run in range(runs):  # alternating the order: noise hits all alike
                        for name, request in variants if run % 2 == 0 else variants[::-1]:
                            w, c = await _run_calls(session, chunk, concurrency, request)
                            wall[name].append(w)
                            cpu[name].append(c)
                own = await _middleware_own_cost(middlewares[0][0], passthrough[0][0], base)
                token_requests = app.statistics().requests_sent
                assert app.statistics().requests_sent == before
                azure_requests = azure.token_requests() if azure is not None else 0
        finally:
            await runner.cleanup()

    def per_call(values: list[float]) -> float:
        return statistics.median(values) / chunk * 1e6

    def paired_overhead_pct(name: str) -> float:
        ratios = [v / w for v, w in zip(cpu[name], cpu["static"], strict=True)]
        return (statistics.median(ratios) - 1) * 100

    azure_figures: JSON = {"error": "azure-identity is not installed"}
    if "azure_core" in cpu:
        azure_us = per_call(cpu["azure_core"])
        azure_figures = {
            "us_per_call": round(azure_us, 2),
            "overhead_pct": round(paired_overhead_pct("azure_core"), 2),
            "token_requests": azure_requests,
        }
    static_us, middleware_us = per_call(cpu["static"]), per_call(cpu["middleware"])
    passthrough_us = per_call(cpu["passthrough"])
    static_wall, middleware_wall = per_call(wall["static"]), per_call(wall["middleware"])
    return {
        "calls": runs * chunk,
        "tenants": TENANTS,
        "concurrency": concurrency,
        "runs": runs,
        "static_header_us_per_call": round(static_us, 2),
        "middleware_us_per_call": round(middleware_us, 2),
        "overhead_pct": round(paired_overhead_pct("middleware"), 2),
        "passthrough_middleware_us_per_call": round(passthrough_us, 2),
        "passthrough_overhead_pct": round(paired_overhead_pct("passthrough"), 2),
        "middleware_own_us": own,
        "wall_static_us_per_call": round(static_wall, 2),
        "wall_middleware_us_per_call": round(middleware_wall, 2),
        "wall_overhead_pct": round((middleware_wall - static_wall) / static_wall * 100, 2),
        "token_requests": token_requests,
        "azure_core_pipeline": azure_figures,
        "cpu_s": {k: [round(v, 4) for v in vs] for k, vs in cpu.items()},
        "wall_s": {k: [round(v, 4) for v in vs] for k, vs in wall.items()},
    }


@dataclass
class _AzureVariant:
    request: Any
    token_requests: Any


@contextlib.asynccontextmanager
async def _azure_core(base: str, tenants: list[str]) -> AsyncIterator[_AzureVariant | None]:
    """azure-core's pipeline with azure-identity's credential, one policy per tenant.

    azure-identity needs an https authority: a second FakeAuthority serves TLS for it.
    """
    try:
        from azure.core.pipeline import AsyncPipeline
        from azure.core.pipeline.policies import AsyncBearerTokenCredentialPolicy
        from azure.core.pipeline.transport import AioHttpTransport
        from azure.core.rest import HttpRequest
        from azure.identity.aio import ClientSecretCredential
    except ImportError:
        yield None
        return
    async with FakeAuthority(tls=True) as fake, contextlib.AsyncExitStack() as stack:
        fake.add_client(AZURE_WORKER, secret=SECRET)
        identity_session = await stack.enter_async_context(
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=fake.ssl_context()))
        )
        downstream_session = await stack.enter_async_context(aiohttp.ClientSession())
        identity_transport = AioHttpTransport(session=identity_session, session_owner=False)
        pipelines = []
        for tenant in tenants:
            credential = ClientSecretCredential(
                tenant, AZURE_WORKER, SECRET, authority=fake.base_url,
                transport=identity_transport,
            )
            stack.push_async_callback(credential.close)
            pipelines.append(AsyncPipeline(
                transport=AioHttpTransport(session=downstream_session, session_owner=False),
                policies=[AsyncBearerTokenCredentialPolicy(credential, DOWNSTREAM_SCOPE)],
            ))

        @contextlib.asynccontextmanager
        async def request(session: aiohttp.ClientSession, i: int) -> AsyncIterator[Any]:
            t = i % TENANTS
            answer = await pipelines[t].run(
                HttpRequest("GET", f"{base}/{tenants[t]}/items"), enforce_https=False
            )
            response = answer.http_response
            yield types.SimpleNamespace(status=response.status_code, read=response.read)

        yield _AzureVariant(request, lambda: len(fake.token_requests))


async def _middleware_own_cost(middleware: Any, passthrough: Any, base: str) -> JSON:
    """Per-call cost of the middlewares themselves (a handler that answers at once): µs."""
    request = aiohttp.ClientRequest(
        "GET", URL(f"{base}/tenant0/items"), loop=asyncio.get_running_loop()
    )
    answer: Any = types.SimpleNamespace(status=200)

    async def handler(request: Any) -> Any:
        return answer

    calls, figures = 100_000, {}
    for name, mw in (("aiomsal", middleware), ("passthrough", passthrough)):
        batches = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(calls):
                await mw(request, handler)
            batches.append(time.perf_counter() - start)
        figures[name] = round(_median_per_call_us(batches, calls), 3)
    figures["aiomsal_minus_passthrough"] = round(figures["aiomsal"] - figures["passthrough"], 3)
    return figures


def _static_middleware(authorization: str) -> Any:
    """A middleware that sets a fixed header: aiohttp's own cost of a client middleware."""

    async def middleware(request: Any, handler: Any) -> Any:
        request.headers["Authorization"] = authorization
        return await handler(request)

    return middleware


def web_goals(scenarios: JSON) -> list[JSON]:
    """The issue-11 goals this run's web figures decide."""
    goals: list[JSON] = []
    v = scenarios.get("validation")
    if isinstance(v, dict) and "repeated_us" in v:
        goals.append({
            "id": "validation_repeat", "goal": f"a repeated token validates in under "
            f"{REPEAT_GOAL_US:g} µs", "met": v["repeated_us"] < REPEAT_GOAL_US,
            "detail": f"{v['repeated_us']:.2f} µs", "short": f"{v['repeated_us']:.2f} µs",
        })
        goals.append({
            "id": "validation_first_sight", "goal": f"a first-sight RS256 token within "
            f"{FIRST_SIGHT_GOAL:g}x of bare PyJWT", "met": v["first_sight_vs_pyjwt"]
            <= FIRST_SIGHT_GOAL, "detail": f"{v['first_sight_us']:.1f} µs vs "
            f"{v['pyjwt_decode_us']:.1f} µs: {v['first_sight_vs_pyjwt']:.2f}x",
            "short": f"{v['first_sight_vs_pyjwt']:.2f}x",
        })
    f = scenarios.get("fanout")
    if isinstance(f, dict) and "overhead_pct" in f:
        goals.append({
            "id": "fanout_overhead", "goal": f"the middleware within {FANOUT_GOAL_PCT:g}% of a "
            "static header", "met": f["overhead_pct"] <= FANOUT_GOAL_PCT,
            "detail": f"{f['middleware_us_per_call']:.1f} vs {f['static_header_us_per_call']:.1f}"
            f" µs CPU per call (medians); paired overhead {f['overhead_pct']:+.1f}% (a"
            " pass-through middleware setting the same header:"
            f" {f['passthrough_overhead_pct']:+.1f}%; the middleware's own work:"
            f" {f['middleware_own_us']['aiomsal_minus_passthrough']:.2f} µs more than the"
            " pass-through)", "short": f"{f['overhead_pct']:+.1f}%",
        })
        azure = f.get("azure_core_pipeline", {})
        versus = (
            f"; azure-core's pipeline with azure-identity: {azure['token_requests']}"
            if "token_requests" in azure else ""
        )
        goals.append({
            "id": "fanout_requests", "goal": "token requests == keys (20 tenants)",
            "met": f["token_requests"] == TENANTS,
            "detail": f"{f['token_requests']} requests{versus}",
            "short": str(f["token_requests"]),
        })
        if "us_per_call" in azure:
            goals.append({
                "id": "fanout_vs_azure_core", "goal": "the middleware costs less per call than"
                " azure-core's pipeline with azure-identity's credential",
                "met": f["middleware_us_per_call"] < azure["us_per_call"],
                "detail": f"{f['middleware_us_per_call']:.1f} vs {azure['us_per_call']:.1f} µs"
                f" CPU per call (azure-core {azure['overhead_pct']:+.1f}% over the static"
                " header)", "short": f"{azure['overhead_pct']:+.1f}%",
            })
    return goals


WEB_SCENARIOS: dict[str, _WebScenario] = {
    s.name: s
    for s in (
        _WebScenario("validation", "h", "incoming-token validation vs bare PyJWT", validation),
        _WebScenario("fanout", "i", "fan-out through the aiohttp middleware", fanout),
    )
}
