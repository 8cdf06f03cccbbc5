"""`memeatlas trends`: counts and shares per cluster per day, week or month, and which clusters
rise or fade.

Every meme of the run is counted: timed memes in their period, untimed ones (no `meme_times`
row) in one row per cluster with `period_start` NULL. A cluster's share of a period is its
memes over all timed memes of the run in that period (noise, −1, included as a cluster).
Memes are counted where the run's one membership puts them (`cluster_membership`: core and
assigned-from-noise memes in their cluster, the rest as noise), as the report and
`cluster_members` count them.

Rising / fading: the periods that hold memes are split into an early and a late window (by
default the first and the last half of them, the middle period left out when their number is
odd; `window=k` compares the first k with the last k). The cluster's share of the late window
minus its share of the early window is the change; its 95 % interval is Newcombe's hybrid score
interval for a difference of two independent proportions (method 10 of Newcombe 1998, built from
the two Wilson score intervals), which stays inside [−1, 1] and behaves at small counts. A cluster
is *rising* when the whole interval is above 0, *fading* when it is below 0, else *steady*.
No correction for the number of clusters is made: at 95 % about one steady cluster in twenty is
flagged by chance, so with many clusters pass a stricter `confidence` (e.g. 1 − 0.05/k).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from memeatlas.errors import InputError
from memeatlas.provenance import new_run_id, short_hash, software, stable_json, utcnow
from memeatlas.ranges import Range

PERIODS = ("day", "week", "month")
WINDOW = Range(1, 10_000, integer=True)  # --window: periods compared at each end
CONFIDENCE = Range(0.5, 1, hi_open=True)  # --confidence: level of the Δshare interval
Z95 = 1.959963984540054


@dataclass
class TrendSummary:
    """What `trends` did."""

    trend_id: str
    run_id: str
    period: str
    n_memes: int = 0
    n_timed: int = 0
    n_untimed: int = 0
    n_periods: int = 0
    first: str | None = None
    last: str | None = None
    rising: list[int] = field(default_factory=list)
    fading: list[int] = field(default_factory=list)
    note: str | None = None
    seconds: float = 0.0
    skipped: bool = False


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials ((0, 1) when n is 0)."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_diff(k1: int, n1: int, k2: int, n2: int, z: float = Z95
                  ) -> tuple[float, float, float]:
    """p2 − p1 with Newcombe's (1998, method 10) score interval: (delta, low, high)."""
    p1 = k1 / n1 if n1 else 0.0
    p2 = k2 / n2 if n2 else 0.0
    l1, u1 = wilson(k1, n1, z)
    l2, u2 = wilson(k2, n2, z)
    d = p2 - p1
    low = d - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2)
    high = d + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2)
    return d, max(-1.0, low), min(1.0, high)


def _finer(period: str) -> str:
    """The advice to bin finer, where a finer period exists (day is the finest)."""
    return "" if period == "day" else " or a finer --by"


def _windows(periods: list, window: int | None, period: str = "week") -> tuple[list, list]:
    n = len(periods)
    if window is None:
        h = n // 2
        return periods[:h], periods[n - h:]
    if 2 * window > n:
        raise InputError(f"--window {window} needs at least {2 * window} periods with "
                         f"memes; this run has {n} (use a smaller --window{_finer(period)})")
    return periods[:window], periods[n - window:]


def trends(store, run_id: str, *, period: str = "week", window: int | None = None,
           confidence: float = 0.95, level: int | None = None, force: bool = False
           ) -> TrendSummary:
    """Bin run `run_id` by `period`, store counts/shares and rising/fading flags.

    `confidence` is the level of the Δshare interval (0.95: about 1 in 20 steady clusters is
    flagged by chance; with many clusters use a stricter level, e.g. 1 − 0.05/k). Skips
    (returning the stored result) when the same run, period, window, level and timestamps
    were already computed, unless `force`. With `level`, the run's clusters are first grouped
    by their ancestor at that depth of the stored hierarchy (`memeatlas hierarchy`), so the
    `cluster` column holds tree nodes (inner nodes from 100000).
    """
    from memeatlas.corpus.runs import get_run_info

    t0 = time.perf_counter()
    if period not in PERIODS:
        raise InputError(f"unknown --by {period!r}; choose one of {', '.join(PERIODS)}")
    CONFIDENCE.check("--confidence", confidence)  # e.g. 0.95 or 0.99
    if window is not None:
        WINDOW.check("--window", window)
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + confidence / 2))
    get_run_info(store, run_id)  # NotFoundError naming recent runs
    # `period` is one of PERIODS (checked above), so it may be spliced into the SQL.
    rows = store.fetchall(
        f"SELECT ca.cluster, CAST(date_trunc('{period}', t.ts) AS DATE) AS p, count(*) "
        f"FROM cluster_membership ca LEFT JOIN meme_times t USING (meme_id) "
        f"WHERE ca.run_id = ? GROUP BY ALL ORDER BY 2 NULLS LAST, 1", [run_id])
    if level is not None:
        group = _level_groups(store, run_id, level)
        merged: dict[tuple[int, Any], int] = {}
        for c, p, n in rows:
            key = (group.get(int(c), int(c)), p)
            merged[key] = merged.get(key, 0) + int(n)
        rows = [(c, p, n) for (c, p), n in merged.items()]
    times_hash = store.scalar(
        "SELECT coalesce(bit_xor(hash(ca.meme_id || '|' || CAST(t.ts AS VARCHAR))), 0) "
        "FROM cluster_assignments ca JOIN meme_times t USING (meme_id) WHERE ca.run_id = ?",
        [run_id])
    params: dict[str, Any] = {"window": window or "halves", "interval": "newcombe-wilson",
                              "confidence": confidence, "times": str(times_hash),
                              "membership": "core+assigned"}
    if level is not None:
        params["level"] = level
    key = short_hash({"run": run_id, "period": period, "params": params})
    old = store.scalar("SELECT trend_id FROM trend_runs WHERE run_id = ? AND period = ? AND "
                       "params->>'$.key' = ? ORDER BY created_at DESC LIMIT 1",
                       [run_id, period, key])
    if old and not force:
        s = stored_summary(store, old)
        s.skipped = True
        s.seconds = time.perf_counter() - t0
        return s
    params["key"] = key

    untimed: dict[int, int] = {}
    counts: dict[tuple[int, Any], int] = {}
    totals: dict[Any, int] = {}
    clusters: set[int] = set()
    for c, p, n in rows:
        c, n = int(c), int(n)
        clusters.add(c)
        if p is None:
            untimed[c] = untimed.get(c, 0) + n
        else:
            counts[(c, p)] = n
            totals[p] = totals.get(p, 0) + n
    periods = sorted(totals)
    trend_id = new_run_id("trend")
    s = TrendSummary(trend_id, run_id, period)
    s.n_untimed = sum(untimed.values())
    s.n_timed = sum(totals.values())
    s.n_memes = s.n_timed + s.n_untimed
    s.n_periods = len(periods)
    if periods:
        s.first, s.last = str(periods[0]), str(periods[-1])

    # The full cluster × period grid (zeros included) so shares plot and sum without gaps.
    trend_rows = []
    for p in periods:
        for c in sorted(clusters):
            n = counts.get((c, p), 0)
            trend_rows.append((trend_id, run_id, c, p, n, totals[p], n / totals[p]))
    for c in sorted(untimed):
        trend_rows.append((trend_id, run_id, c, None, untimed[c], 0, None))

    flag_rows = []
    if len(periods) >= 2:
        early, late = _windows(periods, window, period)
        e_tot = sum(totals[p] for p in early)
        l_tot = sum(totals[p] for p in late)
        params["early"] = [str(early[0]), str(early[-1])]
        params["late"] = [str(late[0]), str(late[-1])]
        for c in sorted(clusters):
            ke = sum(counts.get((c, p), 0) for p in early)
            kl = sum(counts.get((c, p), 0) for p in late)
            d, lo, hi = newcombe_diff(ke, e_tot, kl, l_tot, z)
            trend = "rising" if lo > 0 else "fading" if hi < 0 else "steady"
            if c >= 0 and trend == "rising":
                s.rising.append(c)
            elif c >= 0 and trend == "fading":
                s.fading.append(c)
            flag_rows.append((trend_id, run_id, c, trend, ke / e_tot if e_tot else None,
                              kl / l_tot if l_tot else None, d, lo, hi, ke, kl, e_tot, l_tot))
    else:
        s.note = (f"{len(periods)} {period}(s) with timed memes: no rising/fading flags "
                  f"(need at least 2"
                  + ("; try a finer --by)" if period != "day" else ")"))
    now = utcnow()
    with store.transaction():
        store.execute(
            "INSERT INTO trend_runs (trend_id, run_id, period, params, n_memes, n_timed, "
            "n_untimed, n_periods, software, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [trend_id, run_id, period, stable_json(params), s.n_memes, s.n_timed, s.n_untimed,
             s.n_periods, stable_json(software()), now])
        store.insert_rows("cluster_trends", ("trend_id", "run_id", "cluster", "period_start", "n",
                                             "period_total", "share"), trend_rows)
        store.insert_rows("cluster_trend_flags", (
            "trend_id", "run_id", "cluster", "trend", "share_early", "share_late", "delta",
            "ci_low", "ci_high", "n_early", "n_late", "early_total", "late_total"), flag_rows)
    s.seconds = time.perf_counter() - t0
    return s


def _level_groups(store, run_id: str, level: int) -> dict[int, int]:
    """cluster → its ancestor at depth `level` of the run's stored tree (a leaf above stays)."""
    rows = store.fetchall("SELECT node, parent, level, is_leaf FROM latest_cluster_tree WHERE "
                          "run_id = ?", [run_id])
    if not rows:
        raise InputError(f"--level needs the run's hierarchy; run `memeatlas hierarchy --run "
                         f"{run_id}` first")
    depth = max(r[2] for r in rows)
    if not 0 <= level <= depth:
        raise InputError(f"--level {level} is outside the tree of run {run_id} (levels 0..{depth})")
    parent = {r[0]: r[1] for r in rows}
    lvl = {r[0]: r[2] for r in rows}
    out = {}
    for node, _p, _l, leaf in rows:
        if leaf:
            n = node
            while lvl[n] > level and parent[n] is not None:
                n = parent[n]
            out[int(node)] = int(n)
    return out


def stored_summary(store, trend_id: str) -> TrendSummary:
    """A `TrendSummary` read back from the tables."""
    row = store.fetch_dict("SELECT * FROM trend_runs WHERE trend_id = ?", [trend_id])
    s = TrendSummary(trend_id, row["run_id"], row["period"], row["n_memes"], row["n_timed"],
                     row["n_untimed"], row["n_periods"])
    span = store.fetchone("SELECT min(period_start), max(period_start) FROM cluster_trends "
                          "WHERE trend_id = ?", [trend_id])
    if span and span[0] is not None:
        s.first, s.last = str(span[0]), str(span[1])
    for c, t in store.fetchall("SELECT cluster, trend FROM cluster_trend_flags WHERE trend_id = ? "
                               "AND cluster >= 0 AND trend <> 'steady' ORDER BY cluster",
                               [trend_id]):
        (s.rising if t == "rising" else s.fading).append(int(c))
    return s

