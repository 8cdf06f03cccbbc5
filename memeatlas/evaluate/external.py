"""Agreement of clusterings with known categories: ARI, NMI, V-measure (+ homogeneity, completeness), purity.

Each run is scored twice:

* ``all`` — every meme with a known category; noise points (−1) count as singletons by default
  (each in a cluster of its own, matching CQ's "in no cluster"), or as one cluster with
  ``noise='cluster'``.
* ``clustered`` — noise points left out; ``coverage`` says what share of memes that keeps.

Purity = Σ_clusters max_category |cluster ∩ category| / N. The truth is a column of `memes`
(e.g. ``source``), a key of `memes.meta` (manifest columns, e.g. ``theme``), a column of the latest
human or model annotation (``annotation.template``), or any SQL returning (meme_id, label).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from memeatlas.corpus.runs import get_run_info
from memeatlas.errors import InputError
from memeatlas.evaluate.common import (
    NOISE,
    load_assignments,
    new_eval_id,
    resolve_runs,
    store_evaluations,
)

METRICS = ("ari", "nmi", "v_measure", "homogeneity", "completeness", "purity")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def purity(truth, pred) -> float:
    """Share of items whose cluster's most common category is their own."""
    truth = np.asarray(truth)
    pred = np.asarray(pred)
    if len(truth) == 0:
        return float("nan")
    _, t = np.unique(truth, return_inverse=True)
    _, p = np.unique(pred, return_inverse=True)
    table = np.zeros((p.max() + 1, t.max() + 1), dtype=np.int64)
    np.add.at(table, (p, t), 1)
    return float(table.max(axis=1).sum() / len(truth))


def scores(truth, pred) -> dict[str, float]:
    """ARI, NMI (arithmetic normalisation, scikit-learn's default), V-measure, homogeneity, completeness, purity."""
    from sklearn import metrics

    truth = np.asarray(truth)
    pred = np.asarray(pred)
    if len(truth) == 0:
        return {m: float("nan") for m in METRICS}
    h, c, v = metrics.homogeneity_completeness_v_measure(truth, pred)
    return {"ari": float(metrics.adjusted_rand_score(truth, pred)),
            "nmi": float(metrics.normalized_mutual_info_score(truth, pred)),
            "v_measure": float(v), "homogeneity": float(h), "completeness": float(c),
            "purity": purity(truth, pred)}


def noise_as_singletons(pred) -> np.ndarray:
    """Give every noise point (−1) its own cluster id (max+1, max+2, ...)."""
    pred = np.asarray(pred, dtype=np.int64).copy()
    is_noise = pred == NOISE
    start = (pred.max() + 1) if len(pred) else 0
    pred[is_noise] = start + np.arange(int(is_noise.sum()))
    return pred


def truth_sql(store, truth: str) -> str:
    """SQL returning (meme_id, label) for a --truth spec."""
    spec = truth.strip()
    low = spec.lower()
    if low.startswith(("select", "with", "from")):
        return spec if not low.startswith("from") else f"SELECT * {spec}"
    if low.startswith(("annotation.", "annotations.")):
        col = spec.split(".", 1)[1]
        if not _IDENT.match(col):
            raise InputError(f"--truth {truth!r}: {col!r} is not a column name")
        return (f"SELECT meme_id, CAST({col} AS VARCHAR) AS label FROM latest_annotations "
                f"WHERE {col} IS NOT NULL QUALIFY row_number() OVER (PARTITION BY meme_id "
                f"ORDER BY (annotator LIKE 'human:%') DESC, created_at DESC) = 1")
    key = spec[5:] if low.startswith("meta.") else spec
    if not _IDENT.match(key.replace("-", "_").replace(" ", "_")):
        raise InputError(f"--truth {truth!r}: give a memes column, a meta key, annotation.<column>, "
                         f"or a SQL query returning (meme_id, label)")
    cols = {r[0] for r in store.fetchall(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'memes'")}
    if not low.startswith("meta.") and key in cols:
        return f'SELECT meme_id, CAST("{key}" AS VARCHAR) AS label FROM memes WHERE "{key}" IS NOT NULL'
    safe = key.replace("'", "''")
    return (f"SELECT meme_id, json_extract_string(meta, '$.\"{safe}\"') AS label FROM memes "
            f"WHERE json_extract_string(meta, '$.\"{safe}\"') IS NOT NULL")


def load_truth(store, truth: str) -> dict[str, str]:
    """{meme_id: label} from a --truth spec (labels as strings; NULL/empty left out)."""
    sql = truth_sql(store, truth)
    if sql.lstrip().lower().startswith(("select", "with")) and truth.strip().lower().startswith(
            ("select", "with", "from")):
        # The user's own query: never on the store's connection (memeatlas.corpus.where).
        from memeatlas.corpus.where import user_query

        cols, rows = user_query(store, sql, f"--truth {truth!r}")
        if len(cols) < 2:
            raise InputError(f"--truth {truth!r} must return two columns: meme_id, label")
    else:
        try:
            cur = store.execute(sql)
            rows = cur.fetchall()
        except Exception as exc:  # duckdb errors: bad column
            raise InputError(f"--truth {truth!r} failed: {str(exc).splitlines()[0]}") from None
        if cur.description is None or len(cur.description) < 2:
            raise InputError(f"--truth {truth!r} must return two columns: meme_id, label")
    out = {str(m): str(v) for m, v, *_ in rows if v is not None and str(v) != ""}
    if not out:
        raise InputError(f"--truth {truth!r} gave no labels (is the column/key spelled right?)")
    return out


@dataclass
class LabelsResult:
    truth: str
    noise: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    eval_id: str | None = None
    columns: tuple[str, ...] = ("run", "scope", "n", "coverage", "clusters", "categories") + METRICS


def labels(store, runs, truth: str, *, noise: str = "assigned", save: bool = True) -> LabelsResult:
    """Score runs against known categories, with noise points in (`all`) and out (`clustered`)."""
    if noise not in ("assigned", "singletons", "cluster"):
        raise InputError(f"--noise for labels must be 'assigned', 'singletons' or 'cluster', "
                         f"got {noise!r}")
    run_ids = resolve_runs(store, runs)
    gold = load_truth(store, truth)
    assigns = load_assignments(store, run_ids)
    soft = load_assignments(store, run_ids, assigned=True) if noise == "assigned" else None
    res = LabelsResult(truth=truth, noise=noise)
    res.notes.append("scope all: noise points " + (
        "assigned from noise in their cluster (the run's membership), the rest as singletons"
        if noise == "assigned" else "count as singleton clusters" if noise == "singletons"
        else "form one cluster (-1)")
                     + "; scope clustered: noise points left out")
    store_rows = []
    for r in run_ids:
        a = assigns[r]
        memes = sorted(m for m in a if m in gold)
        no_truth = len(a) - len(memes)
        if no_truth:
            res.notes.append(f"run {r}: {no_truth} of {len(a)} memes have no known category and are left out")
        if not memes:
            raise InputError(f"run {r}: none of its memes has a label in --truth {truth!r}")
        t = np.array([gold[m] for m in memes])
        p = np.array([a[m] for m in memes], dtype=np.int64)
        if soft is not None:
            p_all = noise_as_singletons(np.array([soft[r][m] for m in memes], dtype=np.int64))
        else:
            p_all = noise_as_singletons(p) if noise == "singletons" else p
        keep = p != NOISE
        for scope, tt, pp in (("all", t, p_all), ("clustered", t[keep], p[keep])):
            s = scores(tt, pp)
            row = {"run": r, "scope": scope, "n": int(len(tt)), "coverage": float(len(tt) / len(t)),
                   "clusters": int(len(set(p[keep].tolist()))), "categories": int(len(set(tt.tolist()))),
                   **s, "space": get_run_info(store, r).get("space")}
            res.rows.append(row)
            for m in METRICS:
                store_rows.append({"run_id": r, "metric": m, "value": s[m], "n": row["n"],
                                   "dimension": truth,
                                   "details": {"truth": truth, "scope": scope, "noise": noise,
                                               "coverage": row["coverage"], "clusters": row["clusters"],
                                               "categories": row["categories"], "no_truth": no_truth}})
    if save:
        res.eval_id = new_eval_id("labels")
        store_evaluations(store, res.eval_id, "labels", store_rows)
    return res
