"""The report's study data: time bins, the cluster tree, nearest neighbours, corpus ids.

Kept apart from `collect` so each part of the page has its own reader. Everything is indexed
by the meme's position in the report's meme arrays, so the page needs no id lookups. Strings
stay raw here (the page renders them with textContent).
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from memeatlas.store import Store

DEFAULT_NEIGHBOURS = 5
TREE_KEYWORDS = 6
MAX_BARS = 260


def _period_for(span_days: float) -> str:
    """A bin width that gives a readable chart: days up to 2 months, weeks up to 2 years."""
    if span_days <= 62:
        return "day"
    if span_days <= 730:
        return "week"
    return "month"


def time_data(store: Store, run_id: str, meme_ids: list[str]) -> dict[str, Any] | None:
    """Per-meme period index and the period starts, plus the newest trend flags (or None when
    no meme of the run has a timestamp)."""
    if not store.table_exists("meme_times"):
        return None
    span = store.fetchone(
        "SELECT min(t.ts), max(t.ts), count(*) FROM cluster_assignments ca JOIN meme_times t "
        "USING (meme_id) WHERE ca.run_id = ?", [run_id])
    if not span or not span[2]:
        return None
    trend = store.fetch_dict(
        "SELECT trend_id, period FROM trend_runs WHERE run_id = ? AND params->>'$.level' IS NULL "
        "ORDER BY created_at DESC, trend_id DESC LIMIT 1", [run_id])  # cluster-level flags if store.table_exists("trend_runs") else None
    period = trend["period"] if trend else _period_for((span[1] - span[0]).total_seconds() / 86400)
    # `period` is day/week/month (from PERIODS or the stored trend row checked below).
    if period not in ("day", "week", "month"):
        period = "week"
    import pyarrow as pa

    shown = pa.table({"meme_id": pa.array(meme_ids, type=pa.string())})
    while True:
        # The periods span every meme of the run; per-meme bins only for the memes shown.
        starts = [r[0] for r in store.fetchall(
            f"SELECT DISTINCT CAST(date_trunc('{period}', t.ts) AS DATE) AS p FROM "
            f"cluster_assignments ca JOIN meme_times t USING (meme_id) WHERE ca.run_id = ? "
            f"ORDER BY p", [run_id])]
        # Every period between the first and the last, so gaps show as gaps.
        periods = _fill(starts, period)
        # A chart of more than MAX_BARS bars is unreadable (and slow): bin coarser.
        if len(periods) <= MAX_BARS or period == "month":
            break
        period = "week" if period == "day" else "month"
    index = {p: k for k, p in enumerate(periods)}
    with store.registered("_report_time_ids", shown):
        rows = store.fetchall(
            f"SELECT t.meme_id, CAST(date_trunc('{period}', t.ts) AS DATE) FROM meme_times t "
            f"JOIN _report_time_ids USING (meme_id)")
    of = {m: index[p] for m, p in rows}
    per_meme = [of.get(m) for m in meme_ids]
    flags: dict[str, Any] = {}
    if trend:
        for c, t, d, lo, hi in store.fetchall(
                "SELECT cluster, trend, delta, ci_low, ci_high FROM cluster_trend_flags WHERE "
                "trend_id = ?", [trend["trend_id"]]):
            flags[str(c)] = {"trend": t, "delta": round(d, 4), "ci_low": round(lo, 4),
                             "ci_high": round(hi, 4)}
    return {"period": period, "periods": [p.isoformat() for p in periods],
            "meme_period": per_meme, "n_untimed": sum(1 for v in per_meme if v is None),
            "trend_id": trend["trend_id"] if trend else None, "flags": flags}


def _fill(starts: list[date], period: str) -> list[date]:
    from datetime import timedelta

    if not starts:
        return []
    out, cur, last = [], starts[0], starts[-1]
    if len(starts) > 5000:  # a corpus over decades binned by day: keep the observed ones only
        return starts
    while cur <= last:
        out.append(cur)
        if period == "day":
            cur = cur + timedelta(days=1)
        elif period == "week":
            cur = cur + timedelta(days=7)
        else:
            cur = date(cur.year + (cur.month == 12), cur.month % 12 + 1, 1)
    return out


def tree_data(store: Store, run_id: str) -> dict[str, Any] | None:
    """The run's stored cluster tree (None until `memeatlas hierarchy` has run)."""
    from memeatlas.study.hierarchy import load_tree

    rows = load_tree(store, run_id)
    if not rows:
        return None
    return {"method": rows[0]["method"],
            "nodes": [{"node": int(r["node"]), "parent": None if r["parent"] is None
                       else int(r["parent"]), "level": int(r["level"]), "leaf": bool(r["is_leaf"]),
                       "size": int(r["size"]), "label": r["label"] or "",
                       "keywords": list(r["keywords"] or [])[:TREE_KEYWORDS]} for r in rows]}


def neighbour_data(store: Store, run: dict[str, Any], meme_ids: list[str], k: int
                   ) -> dict[str, Any] | None:
    """The k nearest memes of every meme in the run's space (cosine), as report indices.

    None when `k` is 0 or the run's space has no vectors here. Exact up to 20,000 memes,
    the inverted-file search above (memeatlas.cluster.knn).
    """
    import numpy as np

    from memeatlas.errors import MemeatlasError
    from memeatlas.study.vectors import nearest_neighbours, run_vectors

    if k <= 0 or len(meme_ids) < 2:
        return None
    try:
        ids, x = run_vectors(store, run, meme_ids=meme_ids)
    except MemeatlasError:
        return None
    if len(ids) < 2:
        return None
    idx, sim = nearest_neighbours(x, k, exact_max=20_000)
    pos = {m: i for i, m in enumerate(meme_ids)}
    to_report = np.array([pos[m] for m in ids], dtype=np.int64)
    kk = idx.shape[1]
    # numpy, not a loop per meme and neighbour: the page may hold 50,000 memes
    nb = np.full((len(meme_ids), kk), -1, dtype=np.int64)
    nb_sim = np.full((len(meme_ids), kk), np.nan)
    nb[to_report] = to_report[idx]
    nb_sim[to_report] = np.round(np.asarray(sim, dtype=np.float64), 3)
    flat_idx = [None if v < 0 else v for v in nb.ravel().tolist()]
    flat_sim = [None if v != v else v for v in nb_sim.ravel().tolist()]
    return {"k": kk, "space": run.get("space"), "idx": flat_idx, "sim": flat_sim}


def edit_log(store: Store, run_id: str) -> list[dict[str, Any]]:
    """The curation edits behind a curated run, oldest first, over its chain of curated
    parents (empty for a run that is not curated)."""
    if not store.table_exists("curation_edits"):
        return []
    chain, rid = [], run_id
    while rid:
        row = store.fetchone("SELECT kind, parent_run FROM cluster_runs WHERE run_id = ?", [rid])
        if not row or row[0] != "curated":
            break
        chain.append(rid)
        rid = row[1]
    out = []
    for r in reversed(chain):
        for seq, parent, op, args, n, editor, note, at in store.fetchall(
                "SELECT seq, parent_run, op, args, n_changed, editor, note, edited_at FROM "
                "curation_edits WHERE run_id = ? ORDER BY seq", [r]):
            a = json.loads(args) if isinstance(args, str) else (args or {})
            if "memes" in a:  # a long id list would bloat the page: keep the count
                a["memes"] = f"{len(a['memes'])} memes"
            out.append({"run_id": r, "seq": seq, "parent_run": parent, "op": op, "args": a,
                        "n_changed": n, "editor": editor, "note": note,
                        "edited_at": at.isoformat(sep=" ", timespec="seconds") if at else None})
    return out


def study_payload(store: Store, run: dict[str, Any], meme_ids: list[str], source_ids: list,
                  *, neighbours: int = DEFAULT_NEIGHBOURS) -> dict[str, Any]:
    """Everything the page's time chart, tree, selection CSV and neighbour panel read."""
    return {
        "time": time_data(store, run["run_id"], meme_ids),
        "tree": tree_data(store, run["run_id"]),
        "neighbours": neighbour_data(store, run, meme_ids, neighbours),
        "source_id": [s if isinstance(s, str) and s else None for s in source_ids],
        "edits": edit_log(store, run["run_id"]),
    }
