"""Cold starts: a burst of callers missing one key, and the price of ``import aiomsal``.

``cold_burst``: N tasks (1,000 / 10,000 / 100,000) ask a fresh application for one token at
once, against the fake authority in its own process (20 ms per token response). It records
when the first caller missed, when the loop had given the last caller its first step, and when
the token request's headers were written to the socket (an aiohttp trace hook), and the
process CPU time of the burst against a baseline burst of as many bare tasks awaiting one
event: the difference, per task, is what a coalesced waiter costs aiomsal. The same burst is
measured for on-behalf-of (``obo_bursts``): N tasks, one incoming assertion, a fresh application.

``import_time``: ``python -X importtime -c "import X"`` in fresh interpreters for aiomsal,
aiohttp and msal, the cumulative microseconds of the top-level module, in turn over 15 rounds.
"""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import aiohttp

from aiomsal import ConfidentialClientApplication

from ._fake import CLIENT_ID, CLIENT_SECRET, FakeEndpoint
from ._scenarios import Context, Scenario

__all__ = ["COLD_SCENARIOS", "burst_once", "cold_burst", "import_seconds", "import_time"]

JSON = dict[str, Any]

COLD_SCOPE = "api://bench-cold/.default"
#: What a new-key burst's application fetches first, so that its connection is pooled.
POOLED_SCOPE = "api://bench-pooled/.default"
OBO_COLD_SCOPE = "api://bench-cold/read"
#: Waiters per burst, and how many bursts each size is measured over (a fresh app each).
BURSTS = ((1_000, 7), (10_000, 5), (100_000, 3))
QUICK_BURSTS = ((1_000, 3), (10_000, 2), (100_000, 1))
IMPORT_RUNS, QUICK_IMPORT_RUNS = 15, 3
IMPORTED = ("aiohttp", "aiomsal", "msal")


async def _baseline_cpu(waiters: int) -> float:
    """CPU seconds for ``waiters`` bare tasks that each await one shared event."""
    done = asyncio.Event()

    async def waiter() -> None:
        await done.wait()

    gc.collect()
    start = time.process_time()
    tasks = [asyncio.ensure_future(waiter()) for _ in range(waiters)]
    await asyncio.sleep(0)
    done.set()
    await asyncio.gather(*tasks)
    return time.process_time() - start


async def burst_once(
    fake: FakeEndpoint, waiters: int, assertion: str | None = None, *, new_key: str | None = None
) -> JSON:
    """One cold burst of ``waiters`` tasks on a fresh application; times in seconds.

    With ``assertion``, each task asks for a token on behalf of its user (one user for all).
    With ``new_key`` (a scope), the application first fetches a token for another scope (its
    connection is then pooled), and the burst misses ``new_key``: a new key of a running app.
    """
    sent: list[float] = []

    async def on_headers_sent(
        session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestHeadersSentParams
    ) -> None:
        if params.url.path.endswith("/token") and not sent:
            sent.append(time.perf_counter())

    trace = aiohttp.TraceConfig()
    trace.on_request_headers_sent.append(on_headers_sent)
    entered: list[float] = [0.0, 0.0]
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        app = ConfidentialClientApplication(
            CLIENT_ID, client_credential=CLIENT_SECRET, authority=fake.authority,
            verify=fake.ca_file, http_session=session, instance_discovery=False,
        )

        async def caller(i: int) -> None:
            now = time.perf_counter()
            if i == 0:
                entered[0] = now
            elif i == waiters - 1:
                entered[1] = now
            if assertion is None:
                await app.acquire_token_for_client([new_key or COLD_SCOPE])
            else:
                await app.acquire_token_on_behalf_of(assertion, [OBO_COLD_SCOPE])

        async with app:
            before = 0
            if new_key is not None:
                await app.acquire_token_for_client([POOLED_SCOPE])
                sent.clear()
                before = app.statistics().requests_sent
            gc.collect()
            cpu = time.process_time()
            await asyncio.gather(*[caller(i) for i in range(waiters)])
            done = time.perf_counter()
            cpu = time.process_time() - cpu
            stats = app.statistics()
    if waiters == 1:
        entered[1] = entered[0]
    return {
        "first_request_s": sent[0] - entered[0],
        "after_last_caller_s": sent[0] - entered[1],
        "callers_first_steps_s": entered[1] - entered[0],
        "all_served_s": done - entered[0],
        "cpu_s": cpu,
        "requests_sent": stats.requests_sent - before,
        "coalesced": stats.coalesced,
    }


async def cold_burst(ctx: Context) -> JSON:
    """The cold-burst scenario (aiomsal only: the peers do not coalesce in-process)."""
    fake: FakeEndpoint = ctx.fake(3600)
    [assertion] = await ctx.assertions(1)
    return {
        "fake_latency_ms": fake.latency * 1e3,
        "bursts": await _bursts(ctx, fake, None),
        "obo_bursts": await _bursts(ctx, ctx.obo_fake(), assertion),
    }


async def _bursts(ctx: Context, fake: FakeEndpoint, assertion: str | None) -> JSON:
    """Bursts of each size (client credentials, or on behalf of ``assertion``'s user)."""
    sizes = QUICK_BURSTS if ctx.settings.quick else BURSTS
    await burst_once(fake, 1, assertion)  # warm the imports and the fake's TLS
    single = statistics.median([(await burst_once(fake, 1, assertion))["cpu_s"] for _ in range(5)])
    base_single = statistics.median([await _baseline_cpu(1) for _ in range(5)])
    cells: JSON = {}
    for waiters, reps in sizes:
        runs = [await burst_once(fake, waiters, assertion) for _ in range(reps)]
        base = statistics.median([await _baseline_cpu(waiters) for _ in range(reps)])
        median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        extra = (median["cpu_s"] - single) - (base - base_single)
        cells[str(waiters)] = {
            "runs": reps,
            "first_request_ms": median["first_request_s"] * 1e3,
            "after_last_caller_ms": median["after_last_caller_s"] * 1e3,
            "callers_first_steps_ms": median["callers_first_steps_s"] * 1e3,
            "all_served_ms": median["all_served_s"] * 1e3,
            "cpu_per_waiter_us": median["cpu_s"] / waiters * 1e6,
            "bare_task_cpu_per_waiter_us": base / waiters * 1e6,
            "aiomsal_cost_per_waiter_us": extra / (waiters - 1) * 1e6,
            "requests_sent": max(r["requests_sent"] for r in runs),
        }
        flow = "client credentials" if assertion is None else "on-behalf-of"
        ctx.log(f"{flow}, {waiters:,} waiters: first request "
                f"{cells[str(waiters)]['first_request_ms']:.1f} ms, "
                f"{cells[str(waiters)]['aiomsal_cost_per_waiter_us']:.1f} us per waiter")
    return cells


def import_seconds(module: str) -> float:
    """Seconds ``import module`` takes in a fresh interpreter (``-X importtime``, cumulative).

    Bytecode is written and used (``PYTHONDONTWRITEBYTECODE`` is dropped), as in an installed
    package: the first run of a scenario is a warm-up that writes it.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True, text=True, check=True, timeout=120, env=env,
    )
    for line in reversed(completed.stderr.splitlines()):
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 3 and parts[2] == module:
            return int(parts[1]) / 1e6
    raise RuntimeError(f"no importtime line for {module}")


async def import_time(ctx: Context) -> JSON:
    """The import-time scenario: aiomsal vs aiohttp alone vs msal, medians in milliseconds.

    The modules are imported in turn, round after round, so that a change of load on the
    machine hits them alike; the ratio is the median of each round's aiomsal / aiohttp.
    """
    runs = QUICK_IMPORT_RUNS if ctx.settings.quick else IMPORT_RUNS
    times: dict[str, list[float]] = {module: [] for module in IMPORTED}
    result: JSON = {"runs": runs}
    try:
        for module in IMPORTED:
            await asyncio.to_thread(import_seconds, module)  # writes the bytecode
        for _ in range(runs):
            for module in IMPORTED:
                times[module].append(await asyncio.to_thread(import_seconds, module))
    except (subprocess.CalledProcessError, RuntimeError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}
    for module, values in times.items():
        result[module] = {"median_ms": statistics.median(values) * 1e3,
                          "min_ms": min(values) * 1e3}
    result["aiomsal_over_aiohttp"] = statistics.median(
        a / b for a, b in zip(times["aiomsal"], times["aiohttp"], strict=True)
    )
    return result


COLD_SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("cold_burst", "n", "cold burst on one key: first request, cost per waiter",
                 cold_burst),
        Scenario("import_time", "o", "import aiomsal vs aiohttp vs msal", import_time),
    )
}
