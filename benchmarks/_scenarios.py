"""The scenarios. Each is ``async def scenario(ctx) -> dict`` and runs every library.

a-e measure the client-credentials flow; a-obo, d-obo and f the on-behalf-of flow (a web
API calling a downstream API for each of its users), against a fake authority that also
registers users and a public client whose ROPC tokens serve as the incoming assertions.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import gc
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from aiomsal import PublicClientApplication

from ._azure_scenarios import AZURE_SCENARIOS
from ._fake import CLIENT_ID, PUBLIC_CLIENT_ID, FakeEndpoint, FakeProcess, user_credentials
from ._fleet_scenarios import fleet
from ._libs import (
    LIBRARIES,
    AiomsalLibrary,
    AzureIdentityLibrary,
    Caller,
    Library,
    MsalLibrary,
    open_library,
)
from ._measure import summarize_ms, time_async_calls, time_sync_calls

__all__ = ["SCENARIOS", "Context", "Scenario", "Settings"]

JSON = dict[str, Any]

WARMUP_SCOPE = "api://bench-warmup/.default"
HIT_SCOPE = "api://bench-hit/.default"
LONG_LIFETIME = 3600
#: The downstream API the middle tier calls on behalf of its users.
OBO_SCOPE = "api://bench-downstream/.default"
#: What the benchmark's users sign in for: tokens for the middle tier (CLIENT_ID), which
#: the fake's on-behalf-of grant accepts as assertions.
ASSERTION_SCOPE = f"api://{CLIENT_ID}/access_as_user"


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
    #: Concurrent requests while getting assertions and during the d-obo calls.
    obo_concurrency: int = 32
    obo_hit_sizes: tuple[int, ...] = (1, 1_000, 100_000, 1_000_000)
    obo_hit_msal_max_users: int = 1_000
    obo_memory_users: int = 2_000
    bounded_max_entries: int = 10_000
    bounded_checkpoints: tuple[int, ...] = (10_000, 100_000, 1_000_000)

    @property
    def obo_users(self) -> int:
        """Users the on-behalf-of fake registers: the d-obo users and its warm-up users."""
        return self.obo_memory_users + self.obo_concurrency

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
            obo_hit_sizes=(1, 1_000, 100_000),
            obo_memory_users=500,
            bounded_checkpoints=(10_000, 30_000, 100_000),
        )

    def as_json(self) -> JSON:
        return {**asdict(self), "obo_users": self.obo_users}


@dataclass
class Context:
    """What scenarios share: settings, the fake authorities (started on demand), a log."""

    settings: Settings
    stack: contextlib.ExitStack
    _fakes: dict[tuple[int, int], FakeEndpoint] = field(default_factory=dict)
    _assertions: list[str] = field(default_factory=list)

    def fake(self, token_lifetime: int, users: int = 0) -> FakeEndpoint:
        """A fake authority in its own process issuing tokens of ``token_lifetime`` seconds.

        With ``users``, it also registers that many users and a public client.
        """
        endpoint = self._fakes.get((token_lifetime, users))
        if endpoint is None:
            self.log(f"starting a fake authority (token lifetime {token_lifetime} s, "
                     f"latency {self.settings.fake_latency_s * 1e3:.0f} ms"
                     + (f", {users:,} users" if users else "") + ")")
            process = FakeProcess(
                latency=self.settings.fake_latency_s, token_lifetime=token_lifetime, users=users
            )
            endpoint = self.stack.enter_context(process)
            self._fakes[(token_lifetime, users)] = endpoint
        return endpoint

    def obo_fake(self) -> FakeEndpoint:
        """The fake of the on-behalf-of scenarios (3,600-second tokens, the users registered)."""
        return self.fake(LONG_LIFETIME, users=self.settings.obo_users)

    async def assertions(self, count: int) -> list[str]:
        """Incoming user tokens for the middle tier, one per user, of the first ``count`` users.

        Each user signs in once (ROPC, public client) to the on-behalf-of fake; outside any
        measurement, and shared by the scenarios (the tokens live an hour).
        """
        fake = self.obo_fake()
        if count > fake.users:
            raise ValueError(f"{count} assertions wanted; the fake has {fake.users} users")
        missing = range(len(self._assertions), count)
        if missing:
            start = time.perf_counter()
            async with PublicClientApplication(
                PUBLIC_CLIENT_ID, authority=fake.authority, instance_discovery=False,
                verify=fake.ca_file,
            ) as frontend:

                async def sign_in(i: int) -> str:
                    username, password = user_credentials(i)
                    result = await frontend.acquire_token_by_username_password(
                        username, password, [ASSERTION_SCOPE]
                    )
                    return result.access_token

                self._assertions += await _limited(
                    (functools.partial(sign_in, i) for i in missing),
                    self.settings.obo_concurrency,
                )
            self.log(f"signed {len(missing):,} users in (ROPC) for assertions "
                     f"({time.perf_counter() - start:.1f} s)")
        return self._assertions[:count]

    @staticmethod
    def log(message: str) -> None:
        print(f"  {message}", file=sys.stderr, flush=True)

    @contextlib.asynccontextmanager
    async def opened(
        self, key: str, fake: FakeEndpoint, **aiomsal_options: Any
    ) -> AsyncIterator[Library]:
        library = await open_library(
            key, fake, msal_threads=self.settings.msal_threads, aiomsal_options=aiomsal_options
        )
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


async def _limited(calls: Iterable[Callable[[], Awaitable[Any]]], concurrency: int) -> list[Any]:
    """Await every call, at most ``concurrency`` at a time; results in order."""
    pending = list(enumerate(calls))
    pending.reverse()
    results: dict[int, Any] = {}

    async def worker() -> None:
        while pending:
            i, call = pending.pop()
            results[i] = await call()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return [results[i] for i in range(len(results))]


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


# --- a-obo. on-behalf-of cache-hit cost -----------------------------------------------------


def _seeded_assertion(i: int) -> str:
    # Only its hash is stored; aiomsal does not parse an assertion it was given.
    return f"bench-seeded-assertion-{i:07d}"


async def _obo_hit_cell(ctx: Context, key: str, fake: FakeEndpoint, size: int) -> JSON:
    s = ctx.settings
    timed, warm = await ctx.assertions(2)
    async with ctx.opened(key, fake) as lib:
        start = time.perf_counter()
        if size >= 2:
            # The other users: one fetched normally (``warm``), the rest stored as its answer
            # was (one shared token string: a hit's cost does not depend on the token's bytes;
            # d-obo measures memory with real, distinct answers).
            if isinstance(lib, AiomsalLibrary):
                response = await lib.capture_obo_response(OBO_SCOPE, warm)
                store = await lib.obo_store(OBO_SCOPE)
                for i in range(size - 2):
                    store(_seeded_assertion(i), response)
            elif isinstance(lib, MsalLibrary):
                lib.seed_obo(await lib.capture_obo_event(OBO_SCOPE, warm), size - 2)
            else:
                raise ValueError(f"{key} is measured with one user only")
        await lib.get_obo(OBO_SCOPE, timed)  # the timed user is fetched normally, last
        setup_s = time.perf_counter() - start
        entries = lib.cache_entries()
        requests_before = lib.requests_sent()
        gc.collect()
        timing = await time_async_calls(
            lib.obo_caller(OBO_SCOPE, timed), batches=s.hit_batches, target_s=s.hit_batch_target_s
        )
        sent = lib.requests_sent() - requests_before
        result: JSON = {"users": size, "cache_entries": entries, "setup_s": round(setup_s, 3),
                        **timing, "requests_during_timing": sent}
        result["requests_per_call"] = round(sent / timing["calls_total"], 3)
        return result


_OBO_PEER_SKIP = {
    "msal": "its acquire_token_on_behalf_of never reads the cache (a request on every call, "
            "and a cache write of O(1) cost): the cost does not depend on the users cached",
    "azure": "one OnBehalfOfCredential (with its own cache) per user: a hit on one credential "
             "never touches the others' (see d-obo for what each user costs in memory)",
}


async def obo_hit_cost(ctx: Context) -> JSON:
    s = ctx.settings
    fake = ctx.obo_fake()
    limits = {"aiomsal": max(s.obo_hit_sizes), "msal": s.obo_hit_msal_max_users, "azure": 1}
    results: dict[str, dict[str, JSON]] = {key: {} for key in LIBRARIES}
    for size in s.obo_hit_sizes:
        for key in LIBRARIES:
            if size > limits[key]:
                results[key][str(size)] = {
                    "skipped": f"measured up to {limits[key]:,} user(s): {_OBO_PEER_SKIP[key]}"
                }
                continue
            results[key][str(size)] = await ctx.cell(
                f"[a-obo] OBO call cost, {LIBRARIES[key]}, {size:,} cached "
                f"user{'s' * (size != 1)}",
                functools.partial(_obo_hit_cell, ctx, key, fake, size),
                timeout=600,
            )
    return {
        "description": "time per acquire_token_on_behalf_of call with the same incoming "
                       "assertion, with N distinct users cached: median of batches of "
                       "back-to-back calls on one task (msal: through run_in_executor; it sends "
                       "a request on every call; azure-identity: get_token on the user's own "
                       "OnBehalfOfCredential); aiomsal's other users are stored through the "
                       "app's own store path (_store_user_tokens), MSAL's through "
                       f"TokenCache.add; fake latency {s.fake_latency_s * 1e3:.0f} ms",
        "sizes": list(s.obo_hit_sizes),
        "results": results,
    }


# --- d-obo. memory per cached on-behalf-of user ---------------------------------------------


def _obo_calls(lib: Library, assertions: list[str]) -> list[Callable[[], Awaitable[str]]]:
    return [functools.partial(lib.get_obo, OBO_SCOPE, a) for a in assertions]


async def _obo_memory_cell(ctx: Context, key: str, fake: FakeEndpoint) -> JSON:
    s = ctx.settings
    n, concurrency = s.obo_memory_users, s.obo_concurrency
    assertions = await ctx.assertions(n + concurrency)
    spare, users = assertions[:concurrency], assertions[concurrency:]
    answers: dict[str, Any] | None = None
    if key in ("aiomsal", "msal"):
        # The users' real answers, recorded by another instance of the library: the
        # measured instance gets them without sockets, so that only what it keeps counts
        # (connection buffers and parser state would otherwise blur a few KB per user).
        async with ctx.opened(key, fake) as recorder:
            assert isinstance(recorder, (AiomsalLibrary, MsalLibrary))
            answers = recorder.record_answers()
            await _limited(_obo_calls(recorder, users), concurrency)
    async with ctx.opened(key, fake) as lib:
        # Warm-up on other users, as concurrent as the measured calls: metadata,
        # connections, MSAL's threads; none of it grows with the users afterwards.
        await _limited(_obo_calls(lib, spare), concurrency)
        if answers is not None:
            assert isinstance(lib, (AiomsalLibrary, MsalLibrary))
            lib.replay(answers)
        entries_before = lib.cache_entries()
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            requests_before = lib.requests_sent()
            start = time.perf_counter()
            await _limited(_obo_calls(lib, users), concurrency)
            wall = time.perf_counter() - start
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - base
            after = lib.cache_entries()
            result: JSON = {
                "users": n,
                "bytes_per_user": grown / n,
                "requests": lib.requests_sent() - requests_before,
                "answers": "network" if answers is None else
                           "replayed (recorded from real calls by another instance)",
                "wall_s": round(wall, 2),
                "cache_entries_added": {k: v - entries_before.get(k, 0) for k, v in after.items()},
                "assertion_chars": len(users[0]),
            }
            if isinstance(lib, AiomsalLibrary):
                requests_before = lib.requests_sent()
                await _limited(_obo_calls(lib, users), concurrency)
                gc.collect()
                hot = tracemalloc.get_traced_memory()[0] - base
                result["bytes_per_user_after_one_hit"] = hot / n
                result["requests_during_hits"] = lib.requests_sent() - requests_before
            elif isinstance(lib, MsalLibrary):
                result["after_one_hit"] = "n/a: MSAL never serves on-behalf-of calls from its cache"
            elif isinstance(lib, AzureIdentityLibrary):
                result["configuration"] = ("one OnBehalfOfCredential per user, all sharing one "
                                           "transport (counted: the credential and its cache)")
        finally:
            tracemalloc.stop()
        return result


async def obo_memory(ctx: Context) -> JSON:
    s = ctx.settings
    fake = ctx.obo_fake()
    await ctx.assertions(s.obo_users)  # signed in before any library is measured
    results = {
        key: await ctx.cell(
            f"[d-obo] memory, {s.obo_memory_users:,} OBO users, {LIBRARIES[key]}",
            functools.partial(_obo_memory_cell, ctx, key, fake),
            timeout=300,
        )
        for key in LIBRARIES
    }
    return {
        "description": f"tracemalloc growth per user over {s.obo_memory_users:,} users' first "
                       "on-behalf-of calls (distinct fake-issued assertions and answers, "
                       f"{s.obo_concurrency} at a time after a warm-up of as many other users; "
                       "aiomsal and MSAL get the answers another instance recorded from real "
                       "calls, through their whole call path but the socket; azure-identity "
                       "over the network); aiomsal: its cache (access and refresh token per "
                       "user, no ID token), then after one hit each; MSAL: its token cache "
                       "(access, refresh and ID token and account per user); azure-identity: "
                       "one OnBehalfOfCredential per user with its own cache",
        "results": results,
    }


# --- f. bounded cache -----------------------------------------------------------------------


async def _bounded_cell(ctx: Context, fake: FakeEndpoint) -> JSON:
    s = ctx.settings
    (first,) = await ctx.assertions(1)
    async with ctx.opened("aiomsal", fake, max_cache_entries=s.bounded_max_entries) as lib:
        assert isinstance(lib, AiomsalLibrary)
        template = await lib.capture_obo_response(OBO_SCOPE, first)
        store = await lib.obo_store(OBO_SCOPE)
        access, refresh = template.access_token, template.refresh_token

        def answer(i: int) -> Any:  # a distinct answer per user, of realistic size
            tail = format(i, "010d")
            return dataclasses.replace(
                template,
                access_token=access[:-10] + tail,
                refresh_token=None if refresh is None else refresh[:-10] + tail,
            )

        points: list[JSON] = []
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            start = time.perf_counter()
            done = 1  # the first user, fetched normally
            for checkpoint in s.bounded_checkpoints:
                for i in range(done, checkpoint):
                    store(f"bench-bounded-assertion-{i:07d}", answer(i))
                done = checkpoint
                gc.collect()
                entries = lib.cache_entries()
                traced = tracemalloc.get_traced_memory()[0] - base
                points.append({
                    "users_passed": checkpoint,
                    "cached_tokens": lib.cached_tokens(),
                    "cache_entries": entries,
                    "traced_bytes": traced,
                    "elapsed_s": round(time.perf_counter() - start, 1),
                })
                ctx.log(f"{checkpoint:,} users passed: {lib.cached_tokens():,} tokens cached, "
                        f"{traced / 2**20:.1f} MiB")
        finally:
            tracemalloc.stop()
        return {
            "max_cache_entries": s.bounded_max_entries,
            "points": points,
            "counters": lib.counters(),
        }


async def bounded(ctx: Context) -> JSON:
    s = ctx.settings
    fake = ctx.obo_fake()
    result = await ctx.cell(
        f"[f] aiomsal, max_cache_entries={s.bounded_max_entries:,}, "
        f"{max(s.bounded_checkpoints):,} OBO users passed through",
        functools.partial(_bounded_cell, ctx, fake),
        timeout=1200,
    )
    return {
        "description": f"aiomsal ConfidentialClientApplication(max_cache_entries="
                       f"{s.bounded_max_entries:,}): distinct on-behalf-of users' answers (each "
                       "with a distinct ~1 KB access token and refresh token) stored one after "
                       "another through the app's own store path (_store_user_tokens, as a "
                       "fetch stores them); tokens cached and tracemalloc current (growth since "
                       "the first user) at each checkpoint. MSAL Python and azure-identity have "
                       "no bound.",
        "max_cache_entries": s.bounded_max_entries,
        "checkpoints": list(s.bounded_checkpoints),
        "results": {"aiomsal": result},
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
        Scenario("obo_hit", "a-obo", "on-behalf-of call cost vs cached users", obo_hit_cost),
        Scenario("obo_memory", "d-obo", "memory per cached on-behalf-of user", obo_memory),
        Scenario("bounded", "f", "bounded cache, a million on-behalf-of users", bounded),
        Scenario("fleet", "g", "4 processes x hot keys over 3 lifetimes", fleet),
        *(Scenario(*azure) for azure in AZURE_SCENARIOS),
    )
}
