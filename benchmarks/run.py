"""Run the aiomsal benchmark suite against MSAL Python and azure-identity.

    pip install -e '.[bench]'          # msal, azure-identity, matplotlib
    python -m benchmarks.run [--quick] [--only a,b,...] [--out benchmarks/results]

A FakeAuthority serves https on 127.0.0.1 in a separate process (one per token lifetime
the scenarios need); the three libraries are pointed at it and measured in the same run.
Scenarios: a/hit, b/coalescing, c/expiry, d/memory, e/throughput (client credentials);
a-obo/obo_hit, d-obo/obo_memory, f/bounded (on-behalf-of); g/fleet (4 processes sharing a
storage); h/validation, i/fanout (web APIs: incoming-token validation, token-attaching
fan-out); j-m the Azure SDK credentials (benchmarks/_azure_scenarios.py); n/cold_burst,
o/import_time (aiomsal's cold start, benchmarks/_cold_scenarios.py). Writes
``bench.json`` (every figure, settings, machine, versions, date) and ``bench.png`` to
benchmarks/results (meant to be committed), and prints a table.
A peer that fails or hangs is recorded as an error; the suite goes on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import importlib.metadata
import json
import logging
import os
import platform
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests import network_guard

from ._azure_scenarios import azure_table
from ._cold_scenarios import COLD_SCENARIOS
from ._new_key_burst import NEW_KEY_SCENARIOS
from ._report import evaluate_goals, markdown_table, plot
from ._scenarios import SCENARIOS as _CACHE_SCENARIOS
from ._scenarios import Context, Settings
from ._web_scenarios import WEB_REPETITIONS, WEB_SCENARIOS, web_goals

__all__ = ["main"]

#: Every scenario: the token-cache ones (a-g, j-m), the web API ones (h, i), the cold-start ones
#: (n, o, p).
SCENARIOS: dict[str, Any] = {
    **_CACHE_SCENARIOS, **WEB_SCENARIOS, **COLD_SCENARIOS, **NEW_KEY_SCENARIOS,
}
DEFAULT_OUT = Path(__file__).resolve().parent / "results"
_PACKAGES = ("aiomsal", "msal", "azure-identity", "azure-core", "aiohttp", "requests",
             "matplotlib")


def _parser() -> argparse.ArgumentParser:
    names = ", ".join(f"{s.letter}/{s.name}" for s in SCENARIOS.values())
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smaller sizes, fewer repetitions (about two minutes)")
    parser.add_argument("--only", default="", help=f"comma-separated scenarios: {names}")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="directory for bench.json and bench.png")
    parser.add_argument("--msal-threads", type=int, default=64,
                        help="ThreadPoolExecutor size for MSAL Python (default 64)")
    return parser


def _select(only: str) -> list[str]:
    if not only.strip():
        return list(SCENARIOS)
    by_letter = {s.letter: s.name for s in SCENARIOS.values()}
    chosen: list[str] = []
    for raw in only.split(","):
        token = raw.strip().lower()
        name = by_letter.get(token, token)
        if name not in SCENARIOS:
            raise SystemExit(f"unknown scenario {raw!r}; choose from "
                             + ", ".join(f"{s.letter}/{s.name}" for s in SCENARIOS.values()))
        if name not in chosen:
            chosen.append(name)
    return [n for n in SCENARIOS if n in chosen]


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in _PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gib: float | None = None
    with contextlib.suppress(OSError, ValueError, AttributeError):
        memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "memory_gib": None if memory_gib is None else round(memory_gib, 1),
        "python_implementation": platform.python_implementation(),
    }


async def _run(names: Sequence[str], settings: Settings) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:  # ends every fake-authority process
        ctx = Context(settings, stack)
        for name in names:
            scenario = SCENARIOS[name]
            print(f"{scenario.letter}. {scenario.title}", file=sys.stderr, flush=True)
            start = time.perf_counter()
            try:
                results[name] = await scenario.run(ctx)
            except Exception as exc:  # e.g. the fake authority would not start
                results[name] = {"error": f"{type(exc).__name__}: {exc}"[:1000]}
                print(f"  failed: {results[name]['error']}", file=sys.stderr, flush=True)
            results[name]["elapsed_s"] = round(time.perf_counter() - start, 1)
    return results


def _exit_on_signal(signum: int, frame: object) -> None:
    # SystemExit unwinds through the event loop and the ExitStack, which stops the fakes.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Loopback only: a socket aimed anywhere else (IMDS's 169.254.169.254, the internet)
    # is refused before it connects, so a misconfigured peer fails instead of leaving.
    network_guard.install()
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _exit_on_signal)
    names = _select(args.only)
    settings = Settings.make(quick=args.quick, msal_threads=args.msal_threads)
    # requests/urllib3 and azure-core log at WARNING on conditions the loads provoke on purpose.
    for logger in ("urllib3", "azure", "msal"):
        logging.getLogger(logger).setLevel(logging.ERROR)

    started = datetime.datetime.now(datetime.timezone.utc)
    wall = time.perf_counter()
    scenarios = asyncio.run(_run(names, settings))
    goals = evaluate_goals(scenarios) + web_goals(scenarios)
    table = markdown_table(scenarios, goals)
    if any(name.startswith("azure_") for name in scenarios):
        table += "\n\nAzure SDK credentials (aiomsal.integrations.azure):\n\n"
        table += azure_table(scenarios)
    report: dict[str, Any] = {
        "date": started.isoformat(timespec="seconds"),
        "command": " ".join(["python -m benchmarks.run", *(argv or sys.argv[1:])]),
        "wall_s": round(time.perf_counter() - wall, 1),
        "machine": _machine(),
        "versions": _versions(),
        "settings": settings.as_json(),
        "repetitions": {
            "hit": f"median of {settings.hit_batches} batches per cell",
            "coalescing": f"median of {settings.coalescing_reps} run(s), fresh client each",
            "expiry": f"one run per cell (each ~{settings.expiry_duration_s:.0f} s of "
                      f"{settings.expiry_tasks:,} looping tasks)",
            "memory": "one measurement per library (tracemalloc is deterministic)",
            "throughput": f"median of {settings.throughput_reps} run(s)",
            "obo_hit": f"median of {settings.hit_batches} batches per cell",
            "obo_memory": "one measurement per library (tracemalloc)",
            "bounded": "one run (tracemalloc at each checkpoint)",
            **WEB_REPETITIONS,
            "cold_burst": "median of 7/5/3 bursts at 1k/10k/100k waiters (3/2/1 with --quick)",
            "import_time": "15 rounds of fresh interpreters, the modules in turn (3 with --quick)",
        },
        "scenarios": scenarios,
        "goals": goals,
        "table": table.splitlines(),
    }
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "bench.json"
    json_path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    png_path = out / "bench.png"
    subtitle = (f"{report['date']}, {report['machine']['cpu_count']} CPUs, Python "
                f"{report['versions']['python']}, msal {report['versions']['msal']}, "
                f"azure-identity {report['versions']['azure-identity']}"
                + (", --quick" if settings.quick else ""))
    try:
        plot(scenarios, png_path, subtitle)
    except Exception as exc:  # e.g. matplotlib not installed: the JSON still stands
        report["plot_error"] = f"{type(exc).__name__}: {exc}"
        json_path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
        print(f"no figure: {report['plot_error']}", file=sys.stderr)
        png_path = Path("(none)")

    print()
    print(table)
    print()
    for goal in goals:
        verdict = {True: "met", False: "MISSED", None: "n/a"}[goal["met"]]
        print(f"- [{verdict}] {goal['goal']}: {goal['detail']}")
    print()
    print(f"wrote {json_path} and {png_path} ({report['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
