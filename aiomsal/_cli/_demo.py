"""``python -m aiomsal demo``: thousands of concurrent tasks sharing one application.

Each task makes a few ``acquire_token_for_client`` calls, each for a (tenant,
resource) pair drawn with a seeded RNG, against the embedded
:class:`~aiomsal.testing.FakeAuthority` (or a real tenant). The summary shows
what coalescing and the cache did: how many token requests reached the
authority for how many distinct keys, the hit ratio and the call latencies.
"""

from __future__ import annotations

import contextlib
import random
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

import anyio
import anyio.lowlevel

from .._apps._confidential import ConfidentialClientApplication
from .._protocol._credentials import ClientCredential, ClientSecret
from .._statistics import CacheStatistics

if TYPE_CHECKING:  # the fake is imported when the demo starts it, not by `aiomsal token`
    from ..testing import FakeAuthority

__all__ = ["DemoOptions", "default_resources", "default_tenants", "run_demo"]

#: Seconds between two redraws of the progress bar.
_REDRAW_INTERVAL = 0.1
_BAR_WIDTH = 30
_FIRST_RESOURCES = (
    "https://graph.microsoft.com/.default",
    "api://orders-api/.default",
    "api://billing-api/.default",
)


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What the demo runs; the command line builds it (and reads any key files)."""

    tasks: int
    calls_per_task: int
    #: Tenants to spread calls over; ``[None]`` means the authority's own tenant.
    tenants: Sequence[str | None]
    scopes: Sequence[str]
    seed: int = 0
    latency: float = 0.02
    timeout: float = 10.0
    progress: bool = True
    #: None: start the embedded fake authority. Otherwise a real authority URL.
    authority: str | None = None
    client_id: str | None = None
    credential: ClientCredential | None = None
    instance_discovery: bool = True


def default_tenants(count: int) -> list[str]:
    """``count`` made-up tenant domains for the fake authority."""
    return [f"tenant{i:02d}.onmicrosoft.com" for i in range(1, count + 1)]


def default_resources(count: int) -> list[str]:
    """Graph, orders and billing, then ``api://service-N/.default`` as needed."""
    extra = (f"api://service-{i}/.default" for i in range(len(_FIRST_RESOURCES) + 1, count + 1))
    return [*_FIRST_RESOURCES[:count], *extra]


def _fancy(stream: TextIO) -> bool:
    """Whether ``stream`` can show the non-ASCII characters of the bar and verdict."""
    try:
        "█→".encode(stream.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


class _Progress:
    """Counts finished calls; a separate task redraws the bar from the count."""

    def __init__(
        self,
        total: int,
        stream: TextIO,
        enabled: bool,
        requests: Callable[[], int] = lambda: 0,
    ) -> None:
        self.done = 0
        #: Calls in progress. A hit never suspends, so at a redraw these are all calls
        #: waiting for the authority.
        self.waiting = 0
        self._requests = requests
        self._told_waiting = False
        self._total = total
        self._stream = stream
        self._enabled = enabled and total > 0
        self._tty = stream.isatty()
        self._fill, self._empty = ("█", "░") if _fancy(stream) else ("#", "-")
        self._started = time.perf_counter()
        self._last_quarter = 0

    async def run(self) -> None:
        """Redraw every ``_REDRAW_INTERVAL`` seconds until cancelled."""
        self._started = time.perf_counter()
        if not self._enabled:
            return
        # Started before the workers: after one turn of the loop every worker has made its
        # first call, and the cold misses are waiting.
        await anyio.lowlevel.checkpoint()
        self._draw()
        while True:
            await anyio.sleep(_REDRAW_INTERVAL)
            self._draw()

    def finish(self) -> None:
        if self._enabled:
            self._draw()
            if self._tty:
                self._stream.write("\n")
                self._stream.flush()

    def _draw(self) -> None:
        done, total = self.done, self._total
        elapsed = time.perf_counter() - self._started
        waiting = self._waiting_note()
        if self._tty:
            filled = _BAR_WIDTH * done // total
            bar = self._fill * filled + self._empty * (_BAR_WIDTH - filled)
            self._stream.write(
                f"\r{bar} {100 * done // total:3d}%  {done:,}/{total:,} calls  {elapsed:5.1f} s"
                + (f"  {waiting}" if waiting else "")
                + "\x1b[K"  # clear what a longer line left
            )
            self._stream.flush()
            return
        if waiting and not self._told_waiting:
            self._told_waiting = True
            self._stream.write(waiting + "\n")
            self._stream.flush()
        quarter = 4 * done // total  # plain lines: at most one per quarter of the calls
        if quarter > self._last_quarter:
            self._last_quarter = quarter
            self._stream.write(
                f"progress: {done:,}/{total:,} calls ({100 * done // total}%) "
                f"after {elapsed:.2f} s\n"
            )
            self._stream.flush()


    def _waiting_note(self) -> str:
        if not self.waiting:
            return ""
        requests = self._requests()
        sent = f"{plural(requests, 'token request')} out" if requests else "the first going out"
        return f"waiting for the authority: {plural(self.waiting, 'call')}, {sent}"


def plural(count: int, noun: str) -> str:
    """``1 key``, ``2 keys``, ``10,000 calls``."""
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


@dataclass(slots=True)
class _Outcome:
    latencies: list[float]
    #: The latencies of the calls the cache answered (the rest waited on the authority).
    hit_latencies: list[float]
    #: Seconds from the start until the last call that waited on the authority ended.
    cold_phase: float
    #: How many distinct (tenant, resource) keys the RNG drew.
    keys_drawn: int
    errors: int
    first_error: BaseException | None
    wall: float
    stats: CacheStatistics


async def _load(
    app: ConfidentialClientApplication, options: DemoOptions, progress: _Progress
) -> _Outcome:
    keys = [(tenant, [scope]) for tenant in options.tenants for scope in options.scopes]
    rng = random.Random(options.seed)  # noqa: S311 - picks demo keys, not secrets
    n = options.calls_per_task
    picks = [rng.randrange(len(keys)) for _ in range(options.tasks * n)]
    latencies: list[float] = []
    hit_latencies: list[float] = []
    cold_end = 0.0
    errors: list[BaseException] = []
    acquire = app.acquire_token_for_client
    perf = time.perf_counter

    async def worker(mine: Sequence[int]) -> None:
        nonlocal cold_end
        for k in mine:
            tenant, scopes = keys[k]
            start = perf()
            progress.waiting += 1
            try:
                result = await acquire(scopes, tenant=tenant)
            except Exception as exc:
                errors.append(exc)
                result = None
            progress.waiting -= 1
            end = perf()
            latencies.append(end - start)
            if result is not None and result.token_source == "cache":
                hit_latencies.append(end - start)
            else:
                cold_end = max(cold_end, end)
            progress.done += 1

    started = perf()
    async with anyio.create_task_group() as outer:
        outer.start_soon(progress.run)
        async with anyio.create_task_group() as workers:
            for i in range(options.tasks):
                workers.start_soon(worker, picks[i * n : (i + 1) * n])
        outer.cancel_scope.cancel()
    wall = perf() - started
    progress.finish()
    first = errors[0] if errors else None
    return _Outcome(
        latencies,
        hit_latencies,
        max(0.0, cold_end - started),
        len(set(picks)),
        len(errors),
        first,
        wall,
        app.statistics(),
    )


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.3f} ms" if ms < 10 else f"{ms:,.1f} ms"


def _percentile(ordered: Sequence[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def _summary(
    options: DemoOptions,
    outcome: _Outcome,
    where: str,
    fake: FakeAuthority | None,
    fancy: bool,
) -> str:
    stats = outcome.stats
    calls = len(outcome.latencies)
    keys = outcome.keys_drawn
    possible = len(options.tenants) * len(options.scopes)
    tenants = "own tenant" if list(options.tenants) == [None] else f"{len(options.tenants)} tenants"
    shape = f"{tenants} x {len(options.scopes)} resources"
    lookups = stats.hits + stats.misses
    ordered = sorted(outcome.latencies)
    hits = sorted(outcome.hit_latencies)
    hit_set = sorted(outcome.hit_latencies)
    cold = _without(ordered, hit_set)
    rows: list[tuple[str, str, str]] = [
        ("calls", f"{calls:,}", f"{options.tasks:,} tasks x {options.calls_per_task}"),
        ("distinct keys", f"{keys:,}", shape if keys == possible else f"drawn, of {shape}"),
    ]
    if fake is not None:
        rows.append(
            ("token requests", f"{len(fake.token_requests):,}", "received by the fake authority")
        )
    rows += [
        ("token requests sent", f"{stats.requests_sent:,}", "app.statistics().requests_sent"),
        (
            "metadata requests",
            "n/a" if fake is None else f"{fake.discovery_requests:,}",
            "discovery documents fetched",
        ),
        (
            "cache hit ratio",
            f"{100 * stats.hits / lookups:.2f} %" if lookups else "n/a",
            f"{stats.hits:,} hits, {stats.misses:,} misses",
        ),
        ("coalesced waiters", f"{stats.coalesced:,}", "misses that joined a request in flight"),
        ("latency p50", _ms(_percentile(ordered, 0.50)), "all calls"),
        ("latency p99", _ms(_percentile(ordered, 0.99)), "all calls (cold start included)"),
        ("latency max", _ms(ordered[-1] if ordered else 0.0), ""),
        ("cold start", f"{outcome.cold_phase:.2f} s", "until the last call that waited ended"),
        (
            "cold latency p50",
            _ms(_percentile(cold, 0.50)),
            f"{plural(len(cold), 'call')} waited for the authority",
        ),
        ("cold latency p99", _ms(_percentile(cold, 0.99)), ""),
        ("warm latency p50", _ms(_percentile(hits, 0.50)), "calls the cache answered"),
        ("warm latency p99", _ms(_percentile(hits, 0.99)), ""),
        ("wall time", f"{outcome.wall:.2f} s", ""),
        ("throughput", f"{calls / outcome.wall:,.0f}" if outcome.wall else "n/a", "calls/s"),
        ("errors", f"{outcome.errors:,}", ""),
    ]
    label_width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    lines = [f"aiomsal demo: {where}", ""]
    lines += [
        f"  {label:<{label_width}}  {value:>{value_width}}  {note}".rstrip()
        for label, value, note in rows
    ]
    lines.append("")
    sent = len(fake.token_requests) if fake is not None else stats.requests_sent
    arrow = "→" if fancy else "->"
    if cold:
        lines.append(_cold_explanation(options, outcome, stats, len(cold)))
    if outcome.errors:
        error = outcome.first_error
        lines.append(
            f"FAILED: {outcome.errors:,} of {calls:,} calls raised; the first: "
            f"{type(error).__name__}: {error}"
        )
    elif sent == keys:
        lines.append(
            f"{plural(keys, 'key')} {arrow} {plural(sent, 'token request')}: "
            + (
                "every concurrent miss for a key shared one request."
                if stats.coalesced
                else "one request per key."
            )
        )
    else:
        extra = sent - keys
        lines.append(
            f"{plural(keys, 'key')} {arrow} {plural(sent, 'token request')}: {extra:,} "
            f"{'extra' if extra > 0 else 'fewer'} (retries, background refreshes, or keys "
            "cached already)."
        )
    return "\n".join(lines)


def _without(ordered: Sequence[float], removed: Sequence[float]) -> list[float]:
    """The sorted values of ``ordered`` less those of the sorted ``removed`` (a multiset)."""
    rest: list[float] = []
    j = 0
    for value in ordered:
        if j < len(removed) and removed[j] == value:
            j += 1
        else:
            rest.append(value)
    return rest


def _cold_explanation(
    options: DemoOptions, outcome: _Outcome, stats: CacheStatistics, cold_calls: int
) -> str:
    """What the cold phase was: the first calls of each key waiting for its first token."""
    answer = (
        f" ({options.latency * 1000:g} ms each at the fake authority)"
        if options.authority is None
        else ""
    )
    return (
        f"Cold start: {plural(options.tasks, 'task')} started at once and "
        f"{plural(cold_calls, 'call')} found no token yet; they waited on "
        f"{plural(stats.requests_sent, 'token request')}{answer}, sent together after the "
        f"authority's metadata was fetched. The cold phase ended after "
        f"{outcome.cold_phase:.2f} s: one thread runs every task"
        + (", the embedded fake (which signs each token)" if options.authority is None else "")
        + " and the connections, and a task whose next call draws another cold key waits "
        f"again. Every later call was a cache hit (warm p99 "
        f"{_ms(_percentile(sorted(outcome.hit_latencies), 0.99))})."
    )


async def run_demo(
    options: DemoOptions, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Run the load, print the summary to ``out``; 0 if every call succeeded, else 1."""
    out = out or sys.stdout
    err = err or sys.stderr
    total = options.tasks * options.calls_per_task
    requests: list[Callable[[], int]] = []
    progress = _Progress(total, err, options.progress, lambda: requests[0]() if requests else 0)
    async with contextlib.AsyncExitStack() as stack:
        fake: FakeAuthority | None = None
        credential: ClientCredential
        if options.authority is None:
            from ..testing import FakeAuthority

            fake = await stack.enter_async_context(FakeAuthority(latency=options.latency))
            client_id, secret = "aiomsal-demo", secrets.token_urlsafe(24)
            credential = ClientSecret(secret)
            fake.add_client(client_id, secret=secret)
            authority = fake.authority("organizations")
            where = (
                f"embedded fake authority ({fake.base_url}), "
                f"{options.latency * 1000:g} ms per token response"
            )
        elif options.client_id is None or options.credential is None:
            raise ValueError("a real authority needs a client id and a credential")
        else:
            client_id, credential = options.client_id, options.credential
            authority = where = options.authority
        err.write(f"aiomsal demo: {total:,} calls against {where} ...\n")
        err.flush()
        async with ConfidentialClientApplication(
            client_id,
            credential,
            authority=authority,
            instance_discovery=options.instance_discovery,
            timeout=options.timeout,
        ) as app:
            requests.append(lambda: app.statistics().requests_sent)
            outcome = await _load(app, options, progress)
    out.write(_summary(options, outcome, where, fake, _fancy(out)) + "\n")
    out.flush()
    return 1 if outcome.errors else 0
