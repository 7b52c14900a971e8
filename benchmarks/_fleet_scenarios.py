"""The fleet scenario: 4 processes keep the same hot keys alive over 3 token lifetimes.

Each process (``benchmarks._fleet_worker``) calls each hot key every 20 ms.
Counted: the token requests the whole fleet sent, for aiomsal sharing one
Redis (``RedisCacheStorage``: one refresh per key per lifetime for the
fleet), aiomsal without a storage (one per key per lifetime per process),
MSAL Python per process and azure-identity per process (each with its own
in-memory cache). The tokens live a few seconds, so that three lifetimes
fit in a run: MSAL Python treats a token with under 5 minutes left as
expired, so with such lifetimes it asks on every call (as scenario c shows).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._fake import FakeEndpoint

__all__ = ["fleet"]

JSON = dict[str, Any]

PROCESSES = 4
KEYS = 3
LIFETIMES = 3
#: Seconds a fleet token lives (the fake's expires_in).
FLEET_LIFETIME = 5
#: (result key, library, with Redis): the four ways of running the fleet.
CELLS = (
    ("aiomsal_redis", "aiomsal", True),
    ("aiomsal", "aiomsal", False),
    ("msal", "msal", False),
    ("azure", "azure", False),
)


@contextlib.contextmanager
def _redis_server() -> Iterator[str]:
    """A private redis-server on 127.0.0.1 for the run; its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    workdir = tempfile.mkdtemp(prefix="aiomsal-bench-redis-")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)
        if process.poll() is None:
            process.kill()
        shutil.rmtree(workdir, ignore_errors=True)


async def _fleet_cell(fake: FakeEndpoint, library: str, redis_url: str, seconds: float) -> JSON:
    with tempfile.TemporaryDirectory(prefix="aiomsal-fleet-") as tmp:
        go = Path(tmp) / "go"
        workers = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-m", "benchmarks._fleet_worker", library, fake.base_url,
                fake.ca_file, str(fake.token_lifetime), redis_url, str(go), str(KEYS),
                str(seconds),
                stdout=subprocess.PIPE,
            )
            for _ in range(PROCESSES)
        ]
        try:
            for worker in workers:
                assert worker.stdout is not None
                line = await asyncio.wait_for(worker.stdout.readline(), 60)
                if line.strip() != b"ready":
                    raise RuntimeError(f"a {library} worker did not start")
            go.write_text("go")
            reports = []
            for worker in workers:
                assert worker.stdout is not None
                line = await asyncio.wait_for(worker.stdout.readline(), seconds + 60)
                reports.append(json.loads(line))
                await worker.wait()
        finally:
            for worker in workers:
                if worker.returncode is None:
                    worker.kill()
                    await worker.wait()
    requests = sum(int(r["requests"]) for r in reports)
    return {
        "requests": requests,
        "requests_per_key_per_lifetime": requests / (KEYS * LIFETIMES),
        "requests_by_process": [int(r["requests"]) for r in reports],
        "calls": sum(int(r["calls"]) for r in reports),
        "failures": sum(int(r["failures"]) for r in reports),
    }


async def fleet(ctx: Any) -> JSON:
    """Total refresh requests of 4 processes x 3 hot keys over 3 token lifetimes."""
    fake: FakeEndpoint = ctx.fake(FLEET_LIFETIME)
    seconds = float(FLEET_LIFETIME * LIFETIMES)
    results: JSON = {}
    with contextlib.ExitStack() as stack:
        redis_url: str | None = None
        for key, library, shared in CELLS:
            if shared and redis_url is None:
                try:
                    redis_url = stack.enter_context(_redis_server())
                except RuntimeError as exc:
                    results[key] = {"error": str(exc)}
                    continue
            results[key] = await ctx.cell(
                f"[fleet] {PROCESSES} processes x {KEYS} hot keys, {key}",
                functools.partial(
                    _fleet_cell, fake, library, (redis_url or "none") if shared else "none", seconds
                ),
                timeout=seconds + 120,
            )
    return {
        "description": f"{PROCESSES} processes each keeping {KEYS} hot keys in use (a call per "
                       f"key every 20 ms) for {LIFETIMES} token lifetimes of {FLEET_LIFETIME} s: "
                       "token requests of the whole fleet. aiomsal_redis: every process with "
                       "RedisCacheStorage on one private redis-server; the others: an in-memory "
                       "cache per process. MSAL Python treats tokens with under 5 minutes left "
                       "as expired, so with these lifetimes it asks on every call.",
        "processes": PROCESSES,
        "keys": KEYS,
        "lifetimes": LIFETIMES,
        "token_lifetime_s": FLEET_LIFETIME,
        "results": results,
    }
