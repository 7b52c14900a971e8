"""Timing loops and summary statistics."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from ._libs import Caller

__all__ = ["percentile", "summarize_ms", "time_async_calls", "time_sync_calls"]

JSON = dict[str, Any]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of sorted values, by linear interpolation."""
    if not sorted_values:
        return math.nan
    position = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    fraction = position - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction


def summarize_ms(latencies_s: Sequence[float]) -> JSON:
    """Count, mean and percentiles of latencies given in seconds, reported in milliseconds."""
    values = sorted(latencies_s)
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "mean_ms": statistics.fmean(values) * 1e3,
        "p50_ms": percentile(values, 50) * 1e3,
        "p90_ms": percentile(values, 90) * 1e3,
        "p99_ms": percentile(values, 99) * 1e3,
        "p999_ms": percentile(values, 99.9) * 1e3,
        "max_ms": values[-1] * 1e3,
    }


def _calls_per_batch(estimate_s: float, target_s: float, max_calls: int) -> int:
    return max(1, min(max_calls, int(target_s / max(estimate_s, 1e-9))))


def _batches_result(per_call_s: list[float], calls: int) -> JSON:
    return {
        "per_call_us": statistics.median(per_call_s) * 1e6,
        "batches_us": [round(x * 1e6, 4) for x in per_call_s],
        "calls_per_batch": calls,
        "batches": len(per_call_s),
    }


async def time_async_calls(
    call: Caller, *, batches: int, target_s: float, max_calls: int = 50_000
) -> JSON:
    """Median per-call time of ``await call()`` in a tight loop, over ``batches`` batches.

    The batch size is chosen from a short calibration so that a batch takes about
    ``target_s`` (at least one call, at most ``max_calls``).
    """
    start = time.perf_counter()
    await call()
    first = time.perf_counter() - start
    calibration = 1
    if first < 0.05:
        start = time.perf_counter()
        for _ in range(3):
            await call()
        first = (time.perf_counter() - start) / 3
        calibration += 3
    calls = _calls_per_batch(first, target_s, max_calls)
    per_call: list[float] = []
    for _ in range(batches):
        start = time.perf_counter()
        for _ in range(calls):
            await call()
        per_call.append((time.perf_counter() - start) / calls)
    return {**_batches_result(per_call, calls), "calls_total": calibration + batches * calls}


def time_sync_calls(
    call: Callable[[], Any], *, batches: int, target_s: float, max_calls: int = 50_000
) -> JSON:
    """As :func:`time_async_calls`, for a plain function called on this thread."""
    start = time.perf_counter()
    for _ in range(3):
        call()
    calls = _calls_per_batch((time.perf_counter() - start) / 3, target_s, max_calls)
    per_call: list[float] = []
    for _ in range(batches):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        per_call.append((time.perf_counter() - start) / calls)
    return _batches_result(per_call, calls)
