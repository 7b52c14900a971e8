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
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from ._cold_scenarios import burst_once
from ._fake import FakeEndpoint
from ._scenarios import Context, Scenario

__all__ = ["NEW_KEY_SCENARIOS", "measure", "new_key_burst"]

JSON = dict[str, Any]

SIZES = ((1_000, 5), (10_000, 5), (100_000, 3))
QUICK_SIZES = ((1_000, 2), (10_000, 2), (100_000, 1))
_ROOT = Path(__file__).resolve().parent.parent


async def measure(fake: FakeEndpoint, sizes: tuple[tuple[int, int], ...]) -> JSON:
    """The burst at each size, medians of its repetitions (milliseconds)."""
    await burst_once(fake, 2, new_key="api://bench-new-key-warm/.default")  # imports, TLS
    cells: JSON = {}
    for waiters, reps in sizes:
        runs = [await burst_once(fake, waiters, new_key=f"api://bench-new-key-{r}/.default")
                for r in range(reps)]
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
