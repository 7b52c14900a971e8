"""The scenarios. Each is ``async def scenario(ctx) -> dict`` and runs every library.

Client credentials only for now. On-behalf-of variants belong in separate scenario
functions (for example ``obo_hit_cost``) registered in :data:`SCENARIOS`, using an
``obo_caller`` the adapters in ``_libs`` would grow; nothing here needs to change.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ._fake import FakeEndpoint, FakeProcess
from ._libs import LIBRARIES, Caller, Library, MsalLibrary, open_library
from ._measure import summarize_ms, time_async_calls, time_sync_calls

__all__ = ["SCENARIOS", "Context", "Scenario", "Settings"]

JSON = dict[str, Any]

WARMUP_SCOPE = "api://bench-warmup/.default"
HIT_SCOPE = "api://bench-hit/.default"
LONG_LIFETIME = 3600


@dataclass(frozen=True)
class Settings:
    """Everything that sizes a run; recorded in the JSON."""

    quick: bool
    msal_threads: int = 64
    fake_latency_s: float = 0.02
    hit_sizes: tuple[int, ...] = (1, 1_000, 10_000, 100_000, 1_000_000)
    hit_peer_max_tokens: int = 100_000
    hit_batches: int = 5
    hit_batch_target_s: float = 0.2
    coalescing_cases: tuple[tuple[int, int], ...] = ((1, 1000), (100, 10))
    coalescing_reps: int = 3
    expiry_lifetimes_s: tuple[int, ...] = (3, 10)
    expiry_duration_s: float = 10.0
    expiry_tasks: int = 1000
    expiry_keys: int = 10
    expiry_pause_s: float = 0.05
    expiry_warm_all: bool = True
    memory_tokens: int = 10_000
    throughput_tasks: int = 10_000
    throughput_keys: int = 10
    throughput_reps: int = 3
    throughput_target_s: float = 1.0

    @classmethod
    def make(cls, *, quick: bool, msal_threads: int) -> Settings:
        if not quick:
            return cls(quick=False, msal_threads=msal_threads)
        return cls(
            quick=True,
            msal_threads=msal_threads,
            hit_sizes=(1, 1_000, 10_000, 100_000),
            hit_peer_max_tokens=10_000,
            hit_batches=3,
            hit_batch_target_s=0.05,
            coalescing_reps=1,
            expiry_lifetimes_s=(3,),
            expiry_duration_s=4.0,
            expiry_warm_all=False,
            throughput_reps=1,
            throughput_target_s=0.4,
        )

    def as_json(self) -> JSON:
        return asdict(self)


@dataclass
class Context:
    """What scenarios share: settings, the fake authorities (started on demand), a log."""

    settings: Settings
    stack: contextlib.ExitStack
    _fakes: dict[int, FakeEndpoint] = field(default_factory=dict)

    def fake(self, token_lifetime: int) -> FakeEndpoint:
        """A fake authority in its own process issuing tokens of ``token_lifetime`` seconds."""
        endpoint = self._fakes.get(token_lifetime)
        if endpoint is None:
            self.log(f"starting a fake authority (token lifetime {token_lifetime} s, "
                     f"latency {self.settings.fake_latency_s * 1e3:.0f} ms)")
            process = FakeProcess(
                latency=self.settings.fake_latency_s, token_lifetime=token_lifetime
            )
            endpoint = self.stack.enter_context(process)
            self._fakes[token_lifetime] = endpoint
        return endpoint

    @staticmethod
    def log(message: str) -> None:
        print(f"  {message}", file=sys.stderr, flush=True)

    @contextlib.asynccontextmanager
    async def opened(self, key: str, fake: FakeEndpoint) -> AsyncIterator[Library]:
        library = await open_library(key, fake, msal_threads=self.settings.msal_threads)
        try:
            yield library
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(library.aclose(), 10)

    async def cell(
        self, label: str, run: Callable[[], Awaitable[JSON]], *, timeout: float
    ) -> JSON:
        """Run one measurement; a library that fails or hangs yields ``{"error": ...}``."""
        start = time.perf_counter()
        try:
            result = await asyncio.wait_for(run(), timeout)
        except Exception as exc:  # a misbehaving peer must not end the suite
            message = str(exc) or "no message"
            if isinstance(exc, TimeoutError):
                message = f"no answer within {timeout:.0f} s"
            result = {"error": f"{type(exc).__name__}: {message}"[:500]}
        gc.collect()
        elapsed = time.perf_counter() - start
        status = f"error: {result['error']}" if "error" in result else "ok"
        self.log(f"{label}: {status} ({elapsed:.1f} s)")
        return result


# --- a. cache-hit cost ----------------------------------------------------------------------


def _seeded_scope(i: int) -> str:
    return f"api://bench-{i:07d}/.default"


async def _hit_cell(ctx: Context, key: str, fake: FakeEndpoint, size: int) -> JSON:
    s = ctx.settings
    async with ctx.opened(key, fake) as lib:
        start = time.perf_counter()
        if size >= 2:
            secret = await lib.get(WARMUP_SCOPE)
            # One shared (real, fake-issued) token string for every seeded entry: what a
            # hit costs does not depend on the token's bytes, and a million copies would
            # only fill memory. Scenario d measures memory with distinct tokens.
            lib.seed([_seeded_scope(i) for i in range(size - 2)], lambda _i: secret)
        await lib.get(HIT_SCOPE)  # the timed token is fetched normally, after the seeding
        setup_s = time.perf_counter() - start
        cached = lib.cached_tokens()
        requests_before = lib.requests_sent()
        gc.collect()
        threads = await time_async_calls(
            lib.caller(HIT_SCOPE), batches=s.hit_batches, target_s=s.hit_batch_target_s
        )
        common = {"cached_tokens": cached, "setup_s": round(setup_s, 3)}
        result: JSON = {**common, **threads}
        if isinstance(lib, MsalLibrary):
            direct = time_sync_calls(
                lib.direct_caller(HIT_SCOPE), batches=s.hit_batches, target_s=s.hit_batch_target_s
            )
            result = {"threads": result, "direct": {**common, **direct}}
        sent = lib.requests_sent() - requests_before
        if sent:
            result["requests_during_timing"] = sent  # not pure hits: flag it
        return result


_PEER_SKIP = {
    "msal": "seeding a million entries through TokenCache.add takes tens of seconds and "
            "gigabytes (its hit is O(1): compare its flat curve up to 100,000)",
    "azure": "each hit scans the whole cache (O(n)), about a second per hit at a million "
             "(compare its cost at 100,000)",
}


async def hit_cost(ctx: Context) -> JSON:
    s = ctx.settings
    fake = ctx.fake(LONG_LIFETIME)
    results: dict[str, dict[str, JSON]] = {
        "aiomsal": {}, "msal_threads": {}, "msal_direct": {}, "azure": {}
    }
    for size in s.hit_sizes:
        for key in LIBRARIES:
            if key != "aiomsal" and size > s.hit_peer_max_tokens:
                reason = {"skipped": f"peers are measured up to {s.hit_peer_max_tokens:,} "
                                     f"cached tokens: {_PEER_SKIP[key]}"}
                if key == "msal":
                    results["msal_threads"][str(size)] = reason
                    results["msal_direct"][str(size)] = reason
                else:
                    results[key][str(size)] = reason
                continue
            cell = await ctx.cell(
                f"[a] hit cost, {LIBRARIES[key]}, {size:,} cached token{'s' * (size != 1)}",
                functools.partial(_hit_cell, ctx, key, fake, size),
                timeout=300,
            )
            if key == "msal":
                results["msal_threads"][str(size)] = cell.get("threads", cell)
                results["msal_direct"][str(size)] = cell.get("direct", cell)
            else:
                results[key][str(size)] = cell
    return {
        "description": "time per cache hit, median of batches of back-to-back calls on one "
                       "task (msal_threads: awaited through run_in_executor; msal_direct: "
                       "called on the thread); tokens cached for distinct resources; the timed "
                       "token was fetched normally after seeding the others",
        "sizes": list(s.hit_sizes),
        "results": results,
    }


# --- b. coalescing --------------------------------------------------------------------------


async def _coalescing_cell(
    ctx: Context, key: str, fake: FakeEndpoint, keys: int, callers: int
) -> JSON:
    runs: list[JSON] = []
    for _ in range(ctx.settings.coalescing_reps):
        async with ctx.opened(key, fake) as lib:
            await lib.get(WARMUP_SCOPE)  # warm connection and metadata, cold token cache
            before = lib.requests_sent()
            counters_before = lib.counters()
            scopes = [f"api://coalesce-{k}/.default" for k in range(keys)]
            calls = [lib.get(scopes[k]) for _ in range(callers) for k in range(keys)]
            start = time.perf_counter()
            outcomes = await asyncio.gather(*calls, return_exceptions=True)
            wall = time.perf_counter() - start
            errors = [o for o in outcomes if isinstance(o, BaseException)]
            run: JSON = {
                "requests": lib.requests_sent() - before,
                "wall_ms": wall * 1e3,
                "errors": len(errors),
            }
            if errors:
                run["error_sample"] = f"{type(errors[0]).__name__}: {errors[0]}"[:300]
            if lib.counters():
                after = lib.counters()
                run["coalesced"] = after["coalesced"] - counters_before["coalesced"]
            runs.append(run)
    return {
        "requests": statistics.median(r["requests"] for r in runs),
        "wall_ms": statistics.median(r["wall_ms"] for r in runs),
        "errors": max(r["errors"] for r in runs),
        "runs": runs,
    }


async def coalescing(ctx: Context) -> JSON:
    s = ctx.settings
    fake = ctx.fake(LONG_LIFETIME)
    results: dict[str, dict[str, JSON]] = {}
    for keys, callers in s.coalescing_cases:
        case = f"{keys}x{callers}"
        results[case] = {}
        for key in LIBRARIES:
            results[case][key] = await ctx.cell(
                f"[b] coalescing, {keys} key(s) x {callers} callers, {LIBRARIES[key]}",
                functools.partial(_coalescing_cell, ctx, key, fake, keys, callers),
                timeout=180,
            )
    return {
        "description": "token requests sent and wall time for keys x callers concurrent cold "
                       f"callers; fake latency {s.fake_latency_s * 1e3:.0f} ms; median of "
                       f"{s.coalescing_reps} run(s), a fresh client each",
        "cases": [f"{k}x{c}" for k, c in s.coalescing_cases],
        "results": results,
    }


# --- c. expiry boundary ---------------------------------------------------------------------


async def _load_cell(ctx: Context, key: str, fake: FakeEndpoint) -> JSON:
    s = ctx.settings
    async with ctx.opened(key, fake) as lib:
        scopes = [f"api://expiry-{k}/.default" for k in range(s.expiry_keys)]
        for scope in scopes:
            await lib.get(scope)
        requests_before = lib.requests_sent()
        counters_before = lib.counters()
        latencies: list[float] = []
        errors: list[str] = []
        deadline = time.perf_counter() + s.expiry_duration_s
        rng = random.Random(7)

        async def worker(call: Caller, offset: float) -> None:
            await asyncio.sleep(offset)
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                error: str | None
                try:
                    result = await call()
                except Exception as exc:
                    error = f"{type(exc).__name__}: {exc}"
                else:
                    error = lib.failure(result)
                latencies.append(time.perf_counter() - start)
                if error is not None:
                    errors.append(error[:300])
                await asyncio.sleep(s.expiry_pause_s)

        callers = [lib.caller(scope) for scope in scopes]
        start = time.perf_counter()
        await asyncio.gather(*(
            worker(callers[i % s.expiry_keys], rng.uniform(0, s.expiry_pause_s))
            for i in range(s.expiry_tasks)
        ))
        wall = time.perf_counter() - start
        requests = lib.requests_sent() - requests_before
        result: JSON = {
            "wall_s": round(wall, 3),
            "requests": requests,
            "requests_per_key": requests / s.expiry_keys,
            "errors": len(errors),
            **summarize_ms(latencies),
        }
        if errors:
            result["error_sample"] = sorted(set(errors))[:3]
        if counters_before:
            after = lib.counters()
            result["counters"] = {k: after[k] - counters_before[k] for k in after}
        return result


async def expiry(ctx: Context) -> JSON:
    s = ctx.settings
    results: dict[str, dict[str, JSON]] = {}
    timeout = s.expiry_duration_s + 90
    for lifetime in s.expiry_lifetimes_s:
        fake = ctx.fake(lifetime)
        results[f"lifetime_{lifetime}s"] = {
            key: await ctx.cell(
                f"[c] {s.expiry_tasks} tasks for {s.expiry_duration_s:.0f} s over "
                f"{lifetime}-second tokens, {LIBRARIES[key]}",
                functools.partial(_load_cell, ctx, key, fake),
                timeout=timeout,
            )
            for key in LIBRARIES
        }
    warm_fake = ctx.fake(LONG_LIFETIME)
    warm_keys = list(LIBRARIES) if s.expiry_warm_all else ["aiomsal"]
    results["warm"] = {
        key: await ctx.cell(
            f"[c] the same load on {LONG_LIFETIME}-second tokens (warm), {LIBRARIES[key]}",
            functools.partial(_load_cell, ctx, key, warm_fake),
            timeout=timeout,
        )
        for key in warm_keys
    }
    return {
        "description": f"{s.expiry_tasks} tasks over {s.expiry_keys} keys, each looping "
                       f"'call, then sleep {s.expiry_pause_s * 1e3:.0f} ms' for "
                       f"{s.expiry_duration_s:.0f} s; latency of each call; requests sent "
                       "during the loop (tokens fetched once before it); fake latency "
                       f"{s.fake_latency_s * 1e3:.0f} ms",
        "lifetimes_s": list(s.expiry_lifetimes_s),
        "results": results,
    }


# --- d. memory per cached token -------------------------------------------------------------


async def _memory_cell(ctx: Context, key: str, fake: FakeEndpoint) -> JSON:
    n = ctx.settings.memory_tokens
    async with ctx.opened(key, fake) as lib:
        template = await lib.get(WARMUP_SCOPE)  # a real token from the fake

        def secret_for(i: int) -> str:
            return template[:-10] + format(i, "010d")  # distinct, same size

        def scope_of(i: int) -> str:
            return f"api://mem-{i:06d}/.default"

        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            scopes = [scope_of(i) for i in range(n)]  # only what the cache keeps stays counted
            lib.seed(scopes, secret_for)
            del scopes
            gc.collect()
            seeded = tracemalloc.get_traced_memory()[0] - base
            token_bytes = sys.getsizeof(secret_for(0))
            result: JSON = {
                "tokens": n,
                "cached_tokens": lib.cached_tokens(),
                "bytes_per_token": seeded / n,
                "token_chars": len(template),
                "token_string_bytes": token_bytes,
                "bytes_per_token_besides_token_string": seeded / n - token_bytes,
            }
            if key == "azure":
                result["after_one_hit"] = ("not measured: its hit path scans the whole cache, "
                                           "and it stores nothing per hit (msal's TokenCache)")
            else:
                requests_before = lib.requests_sent()
                for i in range(n):
                    if isinstance(lib, MsalLibrary):  # what a hit stores is the same either way
                        lib.direct_caller(scope_of(i))()
                    else:
                        await lib.get(scope_of(i))
                gc.collect()
                hot = tracemalloc.get_traced_memory()[0] - base
                result["bytes_per_token_after_one_hit"] = hot / n
                result["requests_during_hits"] = lib.requests_sent() - requests_before
        finally:
            tracemalloc.stop()
        return result


async def memory(ctx: Context) -> JSON:
    fake = ctx.fake(LONG_LIFETIME)
    n = ctx.settings.memory_tokens
    results = {
        key: await ctx.cell(
            f"[d] memory, {n:,} tokens, {LIBRARIES[key]}",
            functools.partial(_memory_cell, ctx, key, fake),
            timeout=180,
        )
        for key in LIBRARIES
    }
    return {
        "description": f"tracemalloc growth for {n:,} client-credentials tokens seeded into the "
                       "cache (each a distinct fake-issued JWT of realistic size), per token; "
                       "then after each was served once (aiomsal keeps the result it returns "
                       "and schedules a background refresh on a token's first hit)",
        "results": results,
    }


# --- e. throughput --------------------------------------------------------------------------


async def _run_tasks(callers: list[Caller], tasks: int, calls_per_task: int) -> float:
    async def worker(call: Caller) -> None:
        for _ in range(calls_per_task):
            await call()

    start = time.perf_counter()
    await asyncio.gather(*(worker(callers[i % len(callers)]) for i in range(tasks)))
    return tasks * calls_per_task / (time.perf_counter() - start)


async def _throughput_cell(ctx: Context, key: str, fake: FakeEndpoint) -> JSON:
    s = ctx.settings
    async with ctx.opened(key, fake) as lib:
        scopes = [f"api://throughput-{k}/.default" for k in range(s.throughput_keys)]
        for scope in scopes:
            await lib.get(scope)
        callers = [lib.caller(scope) for scope in scopes]
        requests_before = lib.requests_sent()
        pilot = await _run_tasks(callers, s.throughput_tasks, 1)
        per_task = max(1, min(500, round(s.throughput_target_s * pilot / s.throughput_tasks)))
        rates = [
            await _run_tasks(callers, s.throughput_tasks, per_task)
            for _ in range(s.throughput_reps)
        ]
        return {
            "calls_per_s": statistics.median(rates),
            "runs_calls_per_s": [round(r) for r in rates],
            "tasks": s.throughput_tasks,
            "calls_per_task": per_task,
            "requests_during": lib.requests_sent() - requests_before,
        }


async def throughput(ctx: Context) -> JSON:
    s = ctx.settings
    fake = ctx.fake(LONG_LIFETIME)
    results = {
        key: await ctx.cell(
            f"[e] throughput, {s.throughput_tasks:,} tasks, {LIBRARIES[key]}",
            functools.partial(_throughput_cell, ctx, key, fake),
            timeout=180,
        )
        for key in LIBRARIES
    }
    return {
        "description": f"{s.throughput_tasks:,} concurrent tasks on one event loop, each "
                       f"awaiting warm-token calls back to back ({s.throughput_keys} keys); "
                       f"total calls / wall time, median of {s.throughput_reps} run(s)",
        "results": results,
    }


@dataclass(frozen=True)
class Scenario:
    name: str
    letter: str
    title: str
    run: Callable[[Context], Awaitable[JSON]]


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("hit", "a", "cache-hit cost vs cached tokens", hit_cost),
        Scenario("coalescing", "b", "concurrent cold callers", coalescing),
        Scenario("expiry", "c", "latency across token expiry", expiry),
        Scenario("memory", "d", "memory per cached token", memory),
        Scenario("throughput", "e", "calls per second, 10,000 tasks", throughput),
    )
}
