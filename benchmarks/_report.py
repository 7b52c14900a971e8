"""Goals, the printed table and the figure."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["evaluate_goals", "markdown_table", "plot"]

JSON = dict[str, Any]

PEERS = ("msal", "azure")
#: aiomsal's hit may grow this much from 1 to 1,000,000 cached tokens (timing noise).
FLAT_TOLERANCE = 1.5
#: aiomsal's p99 across expiry may be this many times its warm p99.
EXPIRY_P99_FACTOR = 2.0
#: aiomsal's on-behalf-of hit must be at least this many times cheaper than MSAL's call.
OBO_HIT_FACTOR = 10.0
#: aiomsal's memory per on-behalf-of user may be at most this share of MSAL's (after a hit).
OBO_MEMORY_SHARE = 0.50
#: aiomsal's memory per client-credentials token may be at most this share of MSAL's.
MEMORY_SHARE = 0.60
#: f: memory after the last checkpoint may be this many times that after the first.
BOUNDED_FLAT_TOLERANCE = 1.25


def _dig(data: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _num(cell: Any, field: str) -> float | None:
    if isinstance(cell, dict) and "error" not in cell and "skipped" not in cell:
        value = cell.get(field)
        if isinstance(value, (int, float)) and not math.isnan(value):
            return float(value)
    return None


def fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "n/a"
    if ms < 1e-3:
        return f"{ms * 1e6:.0f} ns"
    if ms < 1:
        return f"{ms * 1e3:.3g} µs"
    if ms < 1000:
        return f"{ms:.3g} ms"
    return f"{ms / 1e3:.3g} s"


def fmt_us(us: float | None) -> str:
    return fmt_ms(None if us is None else us / 1e3)


def _cell_text(cell: Any, render: Callable[[JSON], str]) -> str:
    if cell is None:
        return "—"
    if not isinstance(cell, dict):
        return str(cell)
    if "error" in cell:
        return "error"
    if "skipped" in cell:
        return "skipped"
    try:
        return render(cell)
    except (KeyError, TypeError, ValueError):
        return "n/a"


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def _x(r: float | None) -> str:
    if r is None:
        return "n/a"
    if r >= 1000:
        return f"{r:,.0f}x"
    return f"{r:.3g}x"


# --- goals ----------------------------------------------------------------------------------


def evaluate_goals(scenarios: JSON) -> list[JSON]:
    """The goals that this run's figures can decide, each with its evidence."""
    goals: list[JSON] = []

    def add(gid: str, goal: str, met: bool | None, detail: str, short: str) -> None:
        goals.append({"id": gid, "goal": goal, "met": met, "detail": detail, "short": short})

    hit = _dig(scenarios, "hit", "results")
    if isinstance(hit, dict):
        sizes = sorted(int(s) for s in hit.get("aiomsal", {}))
        one = _num(_dig(hit, "aiomsal", "1"), "per_call_us")
        if sizes:
            big = sizes[-1]
            at_big = _num(_dig(hit, "aiomsal", str(big)), "per_call_us")
            r = _ratio(at_big, one)
            add("hit_flat", f"aiomsal's hit costs the same at 1 and {big:,} cached tokens "
                f"(within {FLAT_TOLERANCE}x)", None if r is None else r <= FLAT_TOLERANCE,
                f"{fmt_us(one)} at 1, {fmt_us(at_big)} at {big:,}: {_x(r)}", _x(r))
        for peer, label, tag in (("msal_threads", "MSAL (threads)", "msal"),
                                 ("msal_direct", "MSAL (direct)", "direct"),
                                 ("azure", "azure-identity", "azure")):
            common = [s for s in sizes if _num(_dig(hit, peer, str(s)), "per_call_us")]
            if not common:
                continue
            worst = min(
                (_ratio(_num(_dig(hit, peer, str(s)), "per_call_us"),
                        _num(_dig(hit, "aiomsal", str(s)), "per_call_us")) or 0.0, s)
                for s in common
            )
            at_one = _ratio(_num(_dig(hit, peer, "1"), "per_call_us"), one)
            add(f"hit_vs_{peer}", f"aiomsal's hit is cheaper than {label}'s at every size",
                worst[0] > 1, f"{label} / aiomsal: {_x(at_one)} at 1 token, lowest "
                f"{_x(worst[0])} (at {worst[1]:,} cached token{'s' * (worst[1] != 1)})",
                f"{tag} {_x(at_one)}")

    co = _dig(scenarios, "coalescing", "results")
    if isinstance(co, dict):
        for case, cells in co.items():
            keys = int(case.split("x")[0])
            sent = _num(cells.get("aiomsal"), "requests")
            peers = ", ".join(
                f"{p}: {_cell_text(cells.get(p), lambda c: str(round(c['requests'])))}"
                for p in PEERS
            )
            add(f"coalescing_{case}", f"{case.replace('x', ' key(s) x ')} cold callers: "
                f"{keys} request(s), one per key",
                None if sent is None else sent == keys,
                f"aiomsal sent {fmt_count(sent)}; {peers}", f"{fmt_count(sent)} sent")

    ex = _dig(scenarios, "expiry", "results")
    if isinstance(ex, dict):
        warm = _num(_dig(ex, "warm", "aiomsal"), "p99_ms")
        for run, cells in ex.items():
            if run == "warm" or not isinstance(cells, dict):
                continue
            cell = cells.get("aiomsal")
            p99 = _num(cell, "p99_ms")
            r = _ratio(p99, warm)
            add(f"expiry_p99_{run}", f"{run.replace('_', ' ')}: aiomsal p99 across expiry "
                f"<= {EXPIRY_P99_FACTOR:g}x its warm p99",
                None if r is None else r <= EXPIRY_P99_FACTOR,
                f"p99 {fmt_ms(p99)} vs warm {fmt_ms(warm)}: {_x(r)}", _x(r))
            counters = _dig(cell, "counters")
            if isinstance(counters, dict):
                sent, refreshes = counters.get("requests_sent"), counters.get(
                    "background_refreshes")
                misses = counters.get("misses")
                ok = sent == refreshes and misses == 0
                add(f"expiry_requests_{run}", f"{run.replace('_', ' ')}: one request per key "
                    "per refresh, and no caller waits for one", ok,
                    f"{sent} requests, {refreshes} background refreshes "
                    f"({_num(cell, 'requests_per_key')} per key); {misses} caller misses",
                    f"{sent} req = {refreshes} refreshes, {misses} misses")

    mem = _dig(scenarios, "memory", "results")
    if isinstance(mem, dict):
        for field, gid, when in (("bytes_per_token", "memory", "as stored"),
                                 ("bytes_per_token_after_one_hit", "memory_hot",
                                  "after one hit each")):
            ours = _num(mem.get("aiomsal"), field)
            theirs = _num(mem.get("msal"), field)
            r = _ratio(ours, theirs)
            add(gid, f"aiomsal holds a cached token in <= {MEMORY_SHARE:.0%} of MSAL's memory "
                f"({when})", None if r is None else r <= MEMORY_SHARE,
                f"{fmt_bytes(ours)} vs {fmt_bytes(theirs)} per token: aiomsal / MSAL {_pct(r)}",
                f"{when.replace(' each', '')} {_pct(r)}")

    tp = _dig(scenarios, "throughput", "results")
    if isinstance(tp, dict):
        ours = _num(tp.get("aiomsal"), "calls_per_s")
        best = max((v for v in (_num(tp.get(p), "calls_per_s") for p in PEERS)
                    if v is not None), default=None)
        r = _ratio(ours, best)
        add("throughput", "aiomsal serves more warm calls per second than either peer",
            None if r is None else r > 1,
            f"{fmt_count(ours)}/s vs best peer {fmt_count(best)}/s: {_x(r)}", _x(r))

    _obo_goals(scenarios, add)
    return goals


def _obo_goals(scenarios: JSON, add: Callable[[str, str, bool | None, str, str], None]) -> None:
    hit = _dig(scenarios, "obo_hit", "results")
    if isinstance(hit, dict):
        ours = {int(k): v for k, c in (hit.get("aiomsal") or {}).items()
                if (v := _num(c, "per_call_us")) is not None}
        msal = {int(k): v for k, c in (hit.get("msal") or {}).items()
                if (v := _num(c, "per_call_us")) is not None}
        common = sorted(set(ours) & set(msal))
        if common:
            ratios = {n: msal[n] / ours[n] for n in common}
            worst = min(common, key=lambda n: ratios[n])
            add("obo_hit_vs_msal", f"aiomsal's repeated OBO call is >= {OBO_HIT_FACTOR:g}x "
                "cheaper than MSAL's (which sends a request every time)",
                ratios[worst] >= OBO_HIT_FACTOR,
                "MSAL / aiomsal: " + ", ".join(f"{_x(ratios[n])} at {n:,} user{'s' * (n != 1)}"
                                               for n in common),
                f"lowest {_x(ratios[worst])}")
        if len(ours) >= 2 and 1 in ours:
            big = max(ours)
            r = _ratio(ours[big], ours[1])
            add("obo_hit_flat", f"aiomsal's OBO hit costs the same at 1 and {big:,} cached users "
                f"(within {FLAT_TOLERANCE}x)", None if r is None else r <= FLAT_TOLERANCE,
                f"{fmt_us(ours[1])} at 1, {fmt_us(ours[big])} at {big:,}: {_x(r)}", _x(r))

    mem = _dig(scenarios, "obo_memory", "results")
    if isinstance(mem, dict):
        theirs = _num(mem.get("msal"), "bytes_per_user")
        for field, gid, when in (("bytes_per_user", "obo_memory", "as stored"),
                                 ("bytes_per_user_after_one_hit", "obo_memory_hot",
                                  "after one hit each")):
            ours_b = _num(mem.get("aiomsal"), field)
            r = _ratio(ours_b, theirs)
            add(gid, f"aiomsal holds an OBO user in <= {OBO_MEMORY_SHARE:.0%} of MSAL's memory "
                f"({when})", None if r is None else r <= OBO_MEMORY_SHARE,
                f"{fmt_bytes(ours_b)} vs MSAL {fmt_bytes(theirs)} per user: aiomsal / MSAL "
                f"{_pct(r)}", f"{when.replace(' each', '')} {_pct(r)}")

    fleet = _dig(scenarios, "fleet", "results") or {}
    processes = _dig(scenarios, "fleet", "processes")
    shared = _num(fleet.get("aiomsal_redis"), "requests")
    alone = _num(fleet.get("aiomsal"), "requests")
    if shared is not None and alone is not None and isinstance(processes, int):
        one = alone / processes  # what one process sends by itself
        add("fleet", f"{processes} processes sharing Redis send what one process sends "
            "(one refresh per key per lifetime for the fleet)", shared <= one,
            f"{shared:.0f} requests with Redis; {alone:.0f} without a storage "
            f"({one:.0f} per process)", f"{shared:.0f} = {one:.0f} per process")

    bounded = _dig(scenarios, "bounded", "results", "aiomsal")
    limit = _dig(scenarios, "bounded", "max_cache_entries")
    points = _dig(bounded, "points")
    if isinstance(points, list) and points and isinstance(limit, int):
        counts = [p["cached_tokens"] for p in points]
        refresh = [_dig(p, "cache_entries", "refresh_tokens") for p in points]
        last = points[-1]
        add("bounded_entries", f"f: with max_cache_entries={limit:,}, at most {limit:,} tokens "
            f"cached after {last['users_passed']:,} users", max(counts) <= limit,
            f"access tokens cached: {', '.join(f'{c:,}' for c in counts)}; refresh tokens: "
            f"{', '.join('n/a' if r is None else f'{r:,}' for r in refresh)} (at "
            f"{', '.join(format(p['users_passed'], ',') for p in points)} users)",
            f"max {max(counts):,}")
        first_b, last_b = points[0]["traced_bytes"], last["traced_bytes"]
        r = _ratio(last_b, first_b)
        add("bounded_flat", f"f: memory stays flat from {points[0]['users_passed']:,} to "
            f"{last['users_passed']:,} users (within {BOUNDED_FLAT_TOLERANCE}x)",
            None if r is None else r <= BOUNDED_FLAT_TOLERANCE,
            ", ".join(f"{fmt_mib(p['traced_bytes'])} at {p['users_passed']:,}" for p in points)
            + f": {_x(r)}", _x(r))
    elif isinstance(bounded, dict) and "error" in bounded:
        add("bounded_entries", "f: bounded cache", None, bounded["error"], "error")


def _pct(r: float | None) -> str:
    return "n/a" if r is None else f"{r:.1%}"


def fmt_mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:.1f} MiB"


def fmt_count(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value >= 1e6:
        return f"{value / 1e6:.3g} M"
    if value >= 1e4:
        return f"{value / 1e3:.3g} k"
    return f"{value:.4g}"


def fmt_bytes(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value >= 1024:
        return f"{value / 1024:.2f} KiB"
    return f"{value:.0f} B"


# --- table ----------------------------------------------------------------------------------


def _met(goals: list[JSON], *gids: str) -> str:
    parts = []
    for gid in gids:
        for goal in goals:
            if goal["id"] == gid:
                verdict = {True: "yes", False: "NO", None: "n/a"}[goal["met"]]
                parts.append(verdict if goal["met"] is None else f"{verdict} ({goal['short']})")
    return "; ".join(parts)


def markdown_table(scenarios: JSON, goals: list[JSON]) -> str:
    """``scenario | aiomsal | msal (threads) | azure-identity aio | goal | met?``."""
    rows: list[list[str]] = []
    header = ["scenario", "aiomsal", "msal (threads)", "azure-identity aio", "goal", "met?"]

    hit = _dig(scenarios, "hit", "results") or {}
    sizes = _dig(scenarios, "hit", "sizes") or []
    for size in sizes:
        key = str(size)

        def us(c: JSON) -> str:
            return fmt_us(c["per_call_us"])

        msal = _cell_text(_dig(hit, "msal_threads", key), us)
        direct = _cell_text(_dig(hit, "msal_direct", key), us)
        if direct not in ("skipped", "—"):
            msal = f"{msal} (direct {direct})"
        goal, met = "", ""
        if size == 1:
            goal = "< peers (ratios: peer / aiomsal)"
            met = _met(goals, "hit_vs_msal_threads", "hit_vs_msal_direct", "hit_vs_azure")
        if size == sizes[-1]:
            goal, met = f"<= {FLAT_TOLERANCE}x the 1-token cost", _met(goals, "hit_flat")
        noun = "token" if size == 1 else "tokens"
        rows.append([f"a. hit cost, {size:,} cached {noun}",
                     _cell_text(_dig(hit, "aiomsal", key), us), msal,
                     _cell_text(_dig(hit, "azure", key), us), goal, met])

    obo_hit = _dig(scenarios, "obo_hit", "results") or {}
    obo_sizes = _dig(scenarios, "obo_hit", "sizes") or []
    for size in obo_sizes:
        key = str(size)

        def obo_us(c: JSON) -> str:
            text = fmt_us(c["per_call_us"])
            per_call = c.get("requests_per_call")
            return f"{text} ({per_call:.2g} req/call)" if per_call else text

        goal, met = "", ""
        if size == obo_sizes[0]:
            goal = f">= {OBO_HIT_FACTOR:g}x cheaper than MSAL (MSAL / aiomsal)"
            met = _met(goals, "obo_hit_vs_msal")
        if size == obo_sizes[-1]:
            goal, met = f"<= {FLAT_TOLERANCE}x the 1-user cost", _met(goals, "obo_hit_flat")
        rows.append([f"a-obo. OBO call, same assertion, {size:,} cached "
                     f"user{'s' * (size != 1)}",
                     *(_cell_text(_dig(obo_hit, k, key), obo_us) for k in ("aiomsal", *PEERS)),
                     goal, met])

    co = _dig(scenarios, "coalescing", "results") or {}
    for case, cells in co.items():
        keys, callers = case.split("x")

        def reqs(c: JSON) -> str:
            return f"{c['requests']:.0f} req, {fmt_ms(c['wall_ms'])}"

        rows.append([f"b. {keys} key{'s' if keys != '1' else ''} x {callers} cold callers: "
                     "requests, wall",
                     *(_cell_text(cells.get(k), reqs) for k in ("aiomsal", *PEERS)),
                     f"{keys} request{'s' if keys != '1' else ''}",
                     _met(goals, f"coalescing_{case}")])

    ex = _dig(scenarios, "expiry", "results") or {}
    for run, cells in ex.items():
        name = ("warm (3600-s tokens)" if run == "warm"
                else run.replace("lifetime_", "").replace("s", "-s") + " tokens")

        def lat(c: JSON) -> str:
            return f"{fmt_ms(c['p50_ms'])} / {fmt_ms(c['p99_ms'])} / {fmt_ms(c['max_ms'])}"

        def sent(c: JSON) -> str:
            return f"{c['requests']} ({c['requests_per_key']:.3g}/key)"

        rows.append([f"c. {name}: p50 / p99 / max",
                     *(_cell_text(cells.get(k), lat) for k in ("aiomsal", *PEERS)),
                     "" if run == "warm" else f"p99 <= {EXPIRY_P99_FACTOR:g}x warm p99",
                     "" if run == "warm" else _met(goals, f"expiry_p99_{run}")])
        rows.append([f"c. {name}: requests sent",
                     *(_cell_text(cells.get(k), sent) for k in ("aiomsal", *PEERS)),
                     "" if run == "warm" else "1 per key per refresh",
                     "" if run == "warm" else _met(goals, f"expiry_requests_{run}")])

    mem = _dig(scenarios, "memory", "results") or {}
    if mem:

        def per_token(c: JSON) -> str:
            text = fmt_bytes(c["bytes_per_token"])
            hot = c.get("bytes_per_token_after_one_hit")
            return f"{text} ({fmt_bytes(hot)} after a hit)" if isinstance(hot, float) else text

        rows.append(["d. memory per cached token",
                     *(_cell_text(mem.get(k), per_token) for k in ("aiomsal", *PEERS)),
                     f"<= {MEMORY_SHARE:.0%} of MSAL (aiomsal / MSAL)",
                     _met(goals, "memory", "memory_hot")])

    obo_mem = _dig(scenarios, "obo_memory", "results") or {}
    if obo_mem:
        users = next((c["users"] for c in obo_mem.values()
                      if isinstance(c, dict) and "users" in c), 0)

        def per_user(c: JSON) -> str:
            text = fmt_bytes(c["bytes_per_user"])
            hot = c.get("bytes_per_user_after_one_hit")
            return f"{text} ({fmt_bytes(hot)} after a hit)" if isinstance(hot, float) else text

        rows.append([f"d-obo. memory per cached OBO user ({users:,} users)",
                     *(_cell_text(obo_mem.get(k), per_user) for k in ("aiomsal", *PEERS)),
                     f"<= {OBO_MEMORY_SHARE:.0%} of MSAL (aiomsal / MSAL)",
                     _met(goals, "obo_memory", "obo_memory_hot")])

    tp = _dig(scenarios, "throughput", "results") or {}
    if tp:
        rows.append(["e. warm calls per second, 10,000 tasks",
                     *(_cell_text(tp.get(k), lambda c: fmt_count(c["calls_per_s"]))
                       for k in ("aiomsal", *PEERS)),
                     "> peers (ratio to best)", _met(goals, "throughput")])

    bounded = _dig(scenarios, "bounded", "results", "aiomsal")
    limit = _dig(scenarios, "bounded", "max_cache_entries")
    if isinstance(bounded, dict):
        points = bounded.get("points")
        if isinstance(points, list) and points:
            for i, point in enumerate(points):
                goal, met = "", ""
                if i == len(points) - 1:
                    goal = (f"<= {limit:,} entries; memory flat (<= {BOUNDED_FLAT_TOLERANCE}x "
                            "the first)")
                    met = _met(goals, "bounded_entries", "bounded_flat")
                rows.append([f"f. max_cache_entries={limit:,}: {point['users_passed']:,} OBO "
                             "users passed",
                             f"{point['cached_tokens']:,} tokens, "
                             f"{fmt_mib(point['traced_bytes'])}",
                             "no bound", "no bound", goal, met])
        else:
            rows.append([f"f. max_cache_entries={limit}: OBO users passed",
                         _cell_text(bounded, lambda c: "n/a"), "no bound", "no bound",
                         "bounded, flat memory", _met(goals, "bounded_entries")])

    fleet = _dig(scenarios, "fleet", "results") or {}
    if fleet:
        label = (f"g. fleet: {_dig(scenarios, 'fleet', 'processes')} processes x "
                 f"{_dig(scenarios, 'fleet', 'keys')} hot keys, "
                 f"{_dig(scenarios, 'fleet', 'lifetimes')} lifetimes: token requests")

        def sent(c: JSON) -> str:
            return f"{c['requests']:,}"

        rows.append([label,
                     f"{_cell_text(fleet.get('aiomsal_redis'), sent)} with Redis, "
                     f"{_cell_text(fleet.get('aiomsal'), sent)} without",
                     *(_cell_text(fleet.get(k), sent) for k in PEERS),
                     "Redis: what one process sends", _met(goals, "fleet")])

    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
              for r in rows]
    return "\n".join(lines)


# --- figure ---------------------------------------------------------------------------------

_COLORS = {"aiomsal": "#1f77b4", "aiomsal warm": "#9ecae1", "msal": "#ff7f0e",
           "msal_direct": "#fdae6b", "azure": "#2ca02c"}
_LABELS = {"aiomsal": "aiomsal", "aiomsal warm": "aiomsal, warm (3600-s tokens)",
           "msal": "msal (threads)", "msal_direct": "msal (direct, no executor)",
           "azure": "azure-identity aio"}


def _empty(ax: Any, title: str) -> None:
    ax.set_title(title, fontsize=9)
    ax.text(0.5, 0.5, "not measured in this run", ha="center", va="center",
            transform=ax.transAxes, color="gray")
    ax.set_xticks([])
    ax.set_yticks([])


def _label(value: float, unit: str) -> str:
    if unit == "ms":
        return fmt_ms(value)
    if unit == "B":
        return fmt_bytes(value)
    return fmt_count(value)


def _bars(ax: Any, title: str, groups: Sequence[str], series: dict[str, list[float | None]],
          ylabel: str, *, unit: str, log: bool = True) -> None:
    values_present = [v for vs in series.values() for v in vs if v]
    if not groups or not values_present:
        _empty(ax, title)
        return
    n = len(series)
    width = 0.8 / n
    for i, (key, values) in enumerate(series.items()):
        xs = [g + (i - (n - 1) / 2) * width for g in range(len(groups))]
        heights = [v if v else 0.0 for v in values]
        ax.bar(xs, heights, width, label=_LABELS.get(key, key), color=_COLORS.get(key))
        for x, v in zip(xs, values, strict=True):
            text = "n/a" if v is None else _label(v, unit)
            y = v if v else min(values_present)
            ax.text(x, y, text, ha="center", va="bottom", fontsize=6, rotation=90)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, fontsize=7)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
        ax.set_ylim(min(values_present) / 3, max(values_present) * 30)
    else:
        ax.set_ylim(0, max(values_present) * 1.3)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")


def plot(scenarios: JSON, path: Path, subtitle: str) -> None:
    """Write the figure (matplotlib, Agg backend) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ._report_cold import plot_fleet_and_cold  # it draws with this module's helpers

    fig, axes = plt.subplots(4, 3, figsize=(18, 20), layout="constrained")
    fig.suptitle("aiomsal vs MSAL Python vs azure-identity (client credentials; on-behalf-of "
                 f"in the third row; fleet, cold starts and imports in the fourth)\n{subtitle}",
                 fontsize=10)
    peers3 = ("aiomsal", *PEERS)

    ax = axes[0][0]
    hit = _dig(scenarios, "hit", "results") or {}
    drawn = False
    for key, column in (("aiomsal", "aiomsal"), ("msal", "msal_threads"),
                        ("msal_direct", "msal_direct"), ("azure", "azure")):
        points = sorted((int(size), v) for size, c in (hit.get(column) or {}).items()
                        if (v := _num(c, "per_call_us")) is not None)
        if points:
            drawn = True
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o",
                    label=_LABELS[key], color=_COLORS[key])
    title = "a. time per cache hit vs cached tokens (median of batches)"
    if drawn:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("cached tokens")
        ax.set_ylabel("µs per hit")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    else:
        _empty(ax, title)

    groups: list[str] = []
    series: dict[str, list[float | None]] = {k: [] for k in peers3}
    for case, cells in (_dig(scenarios, "coalescing", "results") or {}).items():
        keys, callers = case.split("x")
        groups.append(f"cold: {keys} key(s)\nx {callers} callers")
        for k in series:
            series[k].append(_num(cells.get(k), "requests"))
    ex = _dig(scenarios, "expiry", "results") or {}
    for run, cells in ex.items():
        if run != "warm":
            groups.append(f"expiry loop,\n{run.replace('lifetime_', '')} tokens")
            for k in series:
                series[k].append(_num(cells.get(k), "requests"))
    _bars(axes[0][1], "b, c. token requests sent", groups, series, "requests", unit="n")

    runs = [r for r in ex if r != "warm"]
    lat: dict[str, list[float | None]] = {}
    lat_groups: list[str] = []
    if runs:
        first = runs[0]
        fields = ("p50_ms", "p99_ms", "max_ms")
        lat = {k: [_num(_dig(ex, first, k), f) for f in fields] for k in peers3}
        if _dig(ex, "warm", "aiomsal") is not None:
            lat["aiomsal warm"] = [_num(_dig(ex, "warm", "aiomsal"), f) for f in fields]
        lat_groups = ["p50", "p99", "max"]
        title = f"c. call latency, 1,000 looping tasks, {first.replace('lifetime_', '')} tokens"
    else:
        title = "c. call latency across expiry"
    _bars(axes[0][2], title, lat_groups, lat, "ms", unit="ms")

    mem = _dig(scenarios, "memory", "results") or {}
    _bars(axes[1][0], "d. memory per cached token (10,000 tokens, tracemalloc)",
          ["as stored", "after one hit each"] if mem else [],
          {k: [_num(mem.get(k), "bytes_per_token"),
               _num(mem.get(k), "bytes_per_token_after_one_hit")] for k in peers3},
          "bytes", unit="B", log=False)

    tp = _dig(scenarios, "throughput", "results") or {}
    _bars(axes[1][1], "e. warm calls per second, 10,000 tasks on one event loop",
          ["calls / s"] if tp else [],
          {k: [_num(tp.get(k), "calls_per_s")] for k in peers3}, "calls / s", unit="n")

    wall_groups: list[str] = []
    wall: dict[str, list[float | None]] = {k: [] for k in peers3}
    for case, cells in (_dig(scenarios, "coalescing", "results") or {}).items():
        keys, callers = case.split("x")
        wall_groups.append(f"{keys} key(s) x {callers} callers")
        for k in wall:
            wall[k].append(_num(cells.get(k), "wall_ms"))
    _bars(axes[1][2], "b. time until every cold caller has its token", wall_groups, wall,
          "ms", unit="ms")

    _plot_obo(axes[2], scenarios, peers3)
    plot_fleet_and_cold(axes[3], scenarios)

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_obo(axes: Any, scenarios: JSON, peers3: Sequence[str]) -> None:
    """The bottom row: a-obo (cost per call vs users), d-obo (memory per user), f (bound)."""
    ax = axes[0]
    hit = _dig(scenarios, "obo_hit", "results") or {}
    title = "a-obo. time per OBO call, same assertion, vs cached users"
    drawn = False
    for key in peers3:
        curve = sorted((int(size), v) for size, c in (hit.get(key) or {}).items()
                       if (v := _num(c, "per_call_us")) is not None)
        if curve:
            drawn = True
            label = _LABELS[key] + (" (a request per call)" if key == "msal" else "")
            ax.plot([p[0] for p in curve], [p[1] for p in curve], marker="o", label=label,
                    color=_COLORS[key])
            for x, y in curve:
                ax.annotate(fmt_us(y), (x, y), textcoords="offset points", xytext=(0, 6),
                            ha="center", fontsize=6)
    if drawn:
        ax.set_xscale("symlog", linthresh=1)
        ax.margins(x=0.1)
        ax.set_yscale("log")
        ax.set_xlabel("distinct users cached")
        ax.set_ylabel("µs per call")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    else:
        _empty(ax, title)

    mem = _dig(scenarios, "obo_memory", "results") or {}
    users = next((c["users"] for c in mem.values() if isinstance(c, dict) and "users" in c), 0)
    _bars(axes[1], f"d-obo. memory per cached OBO user ({users:,} users, tracemalloc)",
          ["first call (as stored)", "after one hit each"] if mem else [],
          {k: [_num(mem.get(k), "bytes_per_user"),
               _num(mem.get(k), "bytes_per_user_after_one_hit")] for k in peers3},
          "bytes", unit="B", log=True)

    ax = axes[2]
    limit = _dig(scenarios, "bounded", "max_cache_entries")
    points = _dig(scenarios, "bounded", "results", "aiomsal", "points")
    title = f"f. aiomsal, max_cache_entries={limit if limit is None else f'{limit:,}'}"
    if isinstance(points, list) and points:
        xs = [p["users_passed"] for p in points]
        mib = [p["traced_bytes"] / 2**20 for p in points]
        ax.plot(xs, mib, marker="o", color=_COLORS["aiomsal"], label="memory (MiB, tracemalloc)")
        for x, y, p in zip(xs, mib, points, strict=True):
            ax.annotate(f"{y:.1f} MiB\n{p['cached_tokens']:,} tokens", (x, y),
                        textcoords="offset points", xytext=(0, 8), ha="center", fontsize=7)
        ax.set_xscale("log")
        ax.margins(x=0.2)
        ax.set_ylim(0, max(mib) * 1.5)
        ax.set_xlabel("distinct OBO users passed through")
        ax.set_ylabel("MiB")
        ax.set_title(title + ": memory as users pass through", fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
    else:
        _empty(ax, title)
