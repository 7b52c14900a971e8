"""A burst on a new key of a running application, on this Python and on Python 3.12+.

``new_key_burst``: an application that already holds a token (so its connection to the fake
is pooled) gets N tasks created at once, all missing one new key. It records when the token
request's headers were written (an aiohttp trace hook) against when the first caller missed,
and how long the loop took to give every caller its first step. On Python 3.12+ the flight
starts eagerly (``TaskRunner.spawn_now``): the request leaves during the first caller's step;
on 3.11 it waits until the loop has given every caller its first step.

The same measurement runs in a second interpreter when one is found (the environment variable
``AIOMSAL_BENCH_PYTHON312``, or ``.venv312/bin/python`` as ``.ci/run`` makes it): ``python -m
benchmarks._new_key_burst <base_url> <ca_file> <latency> <sizes>`` prints its JSON.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from aiomsal import ConfidentialClientApplication

from ._fake import CLIENT_ID, CLIENT_SECRET, FakeEndpoint
from ._scenarios import Context, Scenario

__all__ = ["NEW_KEY_SCENARIOS", "measure", "new_key_burst"]

JSON = dict[str, Any]

SIZES = ((1_000, 5), (10_000, 5), (100_000, 3))
QUICK_SIZES = ((1_000, 2), (10_000, 2), (100_000, 1))
_ROOT = Path(__file__).resolve().parent.parent


async def _burst(fake: FakeEndpoint, waiters: int, round_: int) -> JSON:
    sent: list[float] = []

    async def on_headers_sent(*_: Any) -> None:
        if not sent:
            sent.append(time.perf_counter())

    trace = aiohttp.TraceConfig()
    trace.on_request_headers_sent.append(on_headers_sent)
    entered = [0.0, 0.0]
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        app = ConfidentialClientApplication(
            CLIENT_ID, client_credential=CLIENT_SECRET, authority=fake.authority,
            verify=fake.ca_file, http_session=session, instance_discovery=False,
        )
        async with app:
            await app.acquire_token_for_client(["api://bench-pooled/.default"])
            sent.clear()
            scope = [f"api://bench-new-key-{round_}/.default"]

            async def caller(i: int) -> None:
                if i == 0:
                    entered[0] = time.perf_counter()
                elif i == waiters - 1:
                    entered[1] = time.perf_counter()
                await app.acquire_token_for_client(scope)

            gc.collect()
            await asyncio.gather(*[caller(i) for i in range(waiters)])
            requests = app.statistics().requests_sent
    return {
        "first_request_s": sent[0] - entered[0],
        "callers_first_steps_s": entered[1] - entered[0],
        "requests_sent": requests - 1,
    }


async def measure(fake: FakeEndpoint, sizes: tuple[tuple[int, int], ...]) -> JSON:
    """The burst at each size, medians of its repetitions (milliseconds)."""
    await _burst(fake, 2, -1)  # warm the imports and the fake's TLS
    cells: JSON = {}
    for waiters, reps in sizes:
        runs = [await _burst(fake, waiters, r) for r in range(reps)]
        cells[str(waiters)] = {
            "runs": reps,
            "first_request_ms": statistics.median(r["first_request_s"] for r in runs) * 1e3,
            "callers_first_steps_ms": statistics.median(
                r["callers_first_steps_s"] for r in runs
            ) * 1e3,
            "requests_sent": max(r["requests_sent"] for r in runs),
        }
    return {"python": sys.version.split()[0], "bursts": cells}


def _second_python() -> str | None:
    """A Python 3.12+ with aiomsal installed, when this one is older."""
    if sys.version_info >= (3, 12):
        return None
    named = os.environ.get("AIOMSAL_BENCH_PYTHON312")
    candidate = Path(named) if named else _ROOT / ".venv312" / "bin" / "python"
    return str(candidate) if candidate.exists() else None


async def new_key_burst(ctx: Context) -> JSON:
    """The scenario: this interpreter, then the 3.12+ one if there is one."""
    fake: FakeEndpoint = ctx.fake(3600)
    sizes = QUICK_SIZES if ctx.settings.quick else SIZES
    result: JSON = {"fake_latency_ms": fake.latency * 1e3, "runs": [await measure(fake, sizes)]}
    other = _second_python()
    if other is None:
        result["second_python"] = "none found (AIOMSAL_BENCH_PYTHON312 or .venv312/bin/python)"
    else:
        command = [other, "-m", "benchmarks._new_key_burst", fake.base_url, fake.ca_file,
                   repr(fake.latency), json.dumps(sizes)]
        done = await asyncio.to_thread(
            subprocess.run, command, capture_output=True, text=True, timeout=900, cwd=_ROOT,
        )
        if done.returncode == 0:
            result["runs"].append(json.loads(done.stdout.strip().splitlines()[-1]))
        else:
            result["second_python"] = f"{other} failed: {done.stderr[-300:]}"
    for run in result["runs"]:
        for waiters, cell in run["bursts"].items():
            ctx.log(f"Python {run['python']}, {int(waiters):,} waiters on a new key: first "
                    f"request {cell['first_request_ms']:.2f} ms (first steps "
                    f"{cell['callers_first_steps_ms']:.0f} ms)")
    return result


NEW_KEY_SCENARIOS: dict[str, Scenario] = {
    "new_key_burst": Scenario(
        "new_key_burst", "p", "burst on a new key of a running app, Python 3.11 vs 3.12+",
        new_key_burst,
    ),
}


def _main() -> None:
    from tests import network_guard  # loopback only, as in the parent run

    base_url, ca_file, latency, sizes = sys.argv[1:5]
    network_guard.install()
    fake = FakeEndpoint(base_url=base_url, ca_file=ca_file, latency=float(latency),
                        token_lifetime=3600)
    parsed = tuple((int(w), int(r)) for w, r in json.loads(sizes))
    print(json.dumps(asyncio.run(measure(fake, parsed))))


if __name__ == "__main__":
    _main()
