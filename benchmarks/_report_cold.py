"""The figure's fourth row: the fleet (g), cold bursts (n, p) and import time (o)."""

from __future__ import annotations

from typing import Any

from ._report import _dig, _empty

__all__ = ["plot_fleet_and_cold"]

_BLUE, _LIGHT, _ORANGE, _GREEN, _GRAY = "#1f77b4", "#9ecae1", "#ff7f0e", "#2ca02c", "#7f7f7f"


def _labelled_bars(ax: Any, title: str, bars: list[tuple[str, float, str]], ylabel: str,
                   unit: str) -> None:
    if not bars:
        _empty(ax, title)
        return
    xs = range(len(bars))
    ax.bar(xs, [b[1] for b in bars], color=[b[2] for b in bars])
    for x, (_, value, _) in zip(xs, bars, strict=True):
        ax.text(x, value, f"{value:,.0f}{unit}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(list(xs))
    ax.set_xticklabels([b[0] for b in bars], fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)


def _fleet(ax: Any, scenarios: dict[str, Any]) -> None:
    results = _dig(scenarios, "fleet", "results") or {}
    names = (("aiomsal_redis", "aiomsal,\nRedis", _BLUE), ("aiomsal", "aiomsal,\nno storage",
             _LIGHT), ("msal", "msal", _ORANGE), ("azure", "azure-identity", _GREEN))
    bars = [(label, float(results[key]["requests"]), color) for key, label, color in names
            if isinstance(results.get(key), dict) and "requests" in results[key]]
    _labelled_bars(ax, "g. fleet: 4 processes x 3 hot keys, 3 lifetimes: token requests", bars,
                   "requests (log)", "")
    if bars:
        ax.set_yscale("log")
        ax.set_ylim(1, max(b[1] for b in bars) * 10)


def _bursts(ax: Any, scenarios: dict[str, Any]) -> None:
    title = "n, p. cold burst: first miss -> token request sent"
    curves: list[tuple[str, dict[str, Any], str, str]] = []
    for field, label, color in (("bursts", "fresh app, client credentials", _BLUE),
                                ("obo_bursts", "fresh app, on-behalf-of", _LIGHT)):
        cells = _dig(scenarios, "cold_burst", field)
        if isinstance(cells, dict):
            curves.append((label, cells, color, "o"))
    for run, color in zip(_dig(scenarios, "new_key_burst", "runs") or [], (_ORANGE, _GREEN),
                          strict=False):
        curves.append((f"new key, pooled connection, Python {run['python']}", run["bursts"],
                       color, "s"))
    if not curves:
        _empty(ax, title)
        return
    for label, cells, color, marker in curves:
        points = sorted((int(w), c["first_request_ms"]) for w, c in cells.items())
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=marker, color=color,
                label=label)
    ax.axhline(10, color=_GRAY, linestyle="--", linewidth=1, label="goal: 10 ms")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("waiters created at once")
    ax.set_ylabel("ms")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")


def _imports(ax: Any, scenarios: dict[str, Any]) -> None:
    data = scenarios.get("import_time") or {}
    names = (("aiohttp", _GRAY), ("aiomsal", _BLUE), ("msal", _ORANGE))
    bars = [(f"import {m}", float(data[m]["median_ms"]), color) for m, color in names
            if isinstance(data.get(m), dict)]
    ratio = data.get("aiomsal_over_aiohttp")
    suffix = f" (aiomsal / aiohttp {ratio:.2f}x)" if isinstance(ratio, float) else ""
    _labelled_bars(ax, "o. import time, median of rounds" + suffix, bars, "ms", " ms")


def plot_fleet_and_cold(axes: Any, scenarios: dict[str, Any]) -> None:
    """Draw the fourth row of the figure on ``axes`` (three matplotlib axes)."""
    _fleet(axes[0], scenarios)
    _bursts(axes[1], scenarios)
    _imports(axes[2], scenarios)
