"""Everything a report shows, read from the store into plain JSON-able structures.

Kept apart from HTML assembly so the data can be tested (and fingerprinted) without
making thumbnails. All meme-derived strings stay raw here; the page renders them
with `textContent`, and `memeatlas.report.html.json_for_script` escapes the JSON.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memeatlas.errors import InputError, NotFoundError
from memeatlas.evaluate.sweep import find_param
from memeatlas.report.coverage import coverage
from memeatlas.store import Store

# Per-meme strings are capped so a 5,000-meme report stays a few MB.
SNIPPET_CHARS = 140
FIELD_CHARS = 1200
ANNOTATION_FIELDS = ("description", "ocr_text", "intent", "template", "tone")


def _clip(text: Any, n: int) -> str:
    if text is None:
        return ""
    s = str(text)
    return s if len(s) <= n else s[: n - 1] + "…"


def _json(value: Any) -> Any:
    """DuckDB JSON columns arrive as str; decode them (leave anything else)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _plain(value: Any) -> Any:
    """Make numpy / datetime / NaN values JSON-safe."""
    if value is None:
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat(sep=" ", timespec="seconds")
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass
class ReportData:
    """The report's content before thumbnails: `payload` is what the page's JSON holds."""

    run_id: str
    payload: dict[str, Any]
    # meme index -> image path for the memes that get a gallery thumbnail
    thumb_paths: dict[int, str | None] = field(default_factory=dict)


def latest_run_id(store: Store) -> str:
    """The newest cluster run, or NotFoundError telling the user to cluster first."""
    from memeatlas.cluster.api import latest_run

    run_id = latest_run(store, kind=None)
    if run_id is None:
        raise NotFoundError("no cluster runs in this database; run `memeatlas cluster` first")
    return run_id


def run_info(store: Store, run_id: str) -> dict[str, Any]:
    """One cluster_runs row as a dict with JSON columns decoded (NotFoundError if absent)."""
    from memeatlas.cluster.api import get_run_info

    return _plain(get_run_info(store, run_id))


def _assignments(store: Store, run_id: str, noise: str = "apart"):
    if noise == "assigned" and store.table_exists("cluster_granularity"):  # soft columns exist
        return store.df(
            "SELECT ca.meme_id, coalesce(ca.soft_cluster, ca.cluster) AS cluster, CASE WHEN "
            "ca.cluster >= 0 THEN ca.probability ELSE coalesce(ca.soft_probability, "
            "ca.probability) END AS probability, ca.x, ca.y, m.path, m.source_id, "
            "ca.cluster AS hard_cluster FROM cluster_assignments ca LEFT JOIN memes m "
            "USING (meme_id) WHERE ca.run_id = ? ORDER BY 2, 3 DESC NULLS LAST, ca.meme_id",
            [run_id])
    return store.df(
        "SELECT ca.meme_id, ca.cluster, ca.probability, ca.x, ca.y, m.path, m.source_id "
        "FROM cluster_assignments ca LEFT JOIN memes m USING (meme_id) "
        "WHERE ca.run_id = ? ORDER BY ca.cluster, ca.probability DESC NULLS LAST, ca.meme_id",
        [run_id])


def _annotations(store: Store, run_id: str, space: str) -> dict[str, dict[str, Any]]:
    """One annotation per meme of the run: the one its text embedding used, else the newest."""
    if not store.table_exists("annotations"):
        return {}
    has_emb = store.table_exists("embeddings")
    pref = ("LEFT JOIN (SELECT meme_id, annotator AS pref FROM embeddings WHERE space = ?) p "
            "USING (meme_id)") if has_emb else "LEFT JOIN (SELECT NULL::VARCHAR AS meme_id, NULL::VARCHAR AS pref) p USING (meme_id)"
    sql = f"""
        WITH m AS (SELECT meme_id FROM cluster_assignments WHERE run_id = ?)
        SELECT a.meme_id, a.annotator, a.description, a.ocr_text, a.intent, a.template, a.tone,
               a.entities
        FROM annotations a JOIN m USING (meme_id) {pref}
        QUALIFY row_number() OVER (PARTITION BY a.meme_id
                                   ORDER BY (a.annotator = p.pref) DESC NULLS LAST,
                                            a.created_at DESC, a.annotator) = 1
    """
    params = [run_id, space] if has_emb else [run_id]
    out: dict[str, dict[str, Any]] = {}
    for row in store.fetchall(sql, params):
        meme_id, annotator, *vals, entities = row
        ann = {k: _clip(v, FIELD_CHARS) for k, v in zip(ANNOTATION_FIELDS, vals, strict=False) if v}
        ann["annotator"] = annotator
        ents = _json(entities)
        if isinstance(ents, list) and ents:
            ann["entities"] = [
                {k: _clip(e.get(k), 200) for k in ("name", "role", "stands_for") if e.get(k)}
                for e in ents[:12] if isinstance(e, dict)
            ]
        out[meme_id] = ann
    return out


def _labels(store: Store, run_id: str) -> dict[int, dict[str, Any]]:
    if not store.table_exists("cluster_labels"):
        return {}
    cur = store.execute("SELECT * FROM cluster_labels WHERE run_id = ?", [run_id])
    cols = [d[0] for d in cur.description]
    out = {}
    for row in cur.fetchall():
        d = dict(zip(cols, row, strict=False))
        out[int(d["cluster"])] = {
            "label": d.get("label"),
            "keywords": _plain(d.get("keywords")) or [],
            "keyword_scores": _plain(d.get("keyword_scores")) or [],
            "representatives": _plain(d.get("representatives")) or [],
            "labeler": d.get("labeler"),
            "representation": d.get("representation"),
        }
    return out


def _eval_rows(store: Store, where: str, params: list) -> list[dict[str, Any]]:
    cur = store.execute(f"SELECT * FROM evaluations WHERE {where} ORDER BY created_at, metric", params)
    cols = [d[0] for d in cur.description]
    out = []
    for r in cur.fetchall():
        d = dict(zip(cols, r, strict=False))
        det = _json(d.get("details"))
        d["details"] = det if isinstance(det, dict) else ({} if det is None else {"value": det})
        # Older rows keep pair set / dimension only in details; newer ones have columns too.
        d["pair_set"] = d.get("pair_set") or d["details"].get("pair_set")
        d["dimension"] = d.get("dimension") or d["details"].get("dimension")
        out.append(d)
    return out


def _evaluations(store: Store, run_ids: list[str]) -> list[dict[str, Any]]:
    """Evaluations of these runs (also as the other side of a ΔCQ), plus pair-set metrics
    (agreement) of the pair sets they were rated on or drawn for."""
    if not store.table_exists("evaluations"):
        return []
    marks = ",".join("?" for _ in run_ids)
    rows = _eval_rows(store, f"run_id IN ({marks})", run_ids)
    for d in _eval_rows(store, f"run_id IS NOT NULL AND run_id NOT IN ({marks})", run_ids):
        if any(d["details"].get(k) in run_ids for k in ("run_b", "vs", "other_run")):
            rows.append(d)
    pair_sets = {r["pair_set"] for r in rows if r["pair_set"]}
    if store.table_exists("pair_sets"):
        for name, runs in store.fetchall("SELECT pair_set, runs FROM pair_sets"):
            runs = _json(runs)
            if isinstance(runs, list) and any(r in runs for r in run_ids):
                pair_sets.add(name)
    if pair_sets:
        rows += [d for d in _eval_rows(store, "run_id IS NULL", []) if d["pair_set"] in pair_sets]
    return [_plain(r) for r in rows]


def _sweep(store: Store, run: dict[str, Any], param: str = "min_cluster_size") -> list[dict[str, Any]]:
    """CQ against min_cluster_size: every CQ evaluation of a run whose params hold that key,
    one series per (space, dimension[, pair set]); the current run's space comes first."""
    if not store.table_exists("evaluations"):
        return []
    rows = _eval_rows(store, "metric = 'cq' AND run_id IS NOT NULL", [])
    if not rows:
        return []
    info = {r: (space, _json(params)) for r, space, params in store.fetchall(
        "SELECT run_id, space, params FROM cluster_runs WHERE run_id IN "
        "(SELECT DISTINCT run_id FROM evaluations WHERE metric = 'cq')")}
    n_sets = len({r["pair_set"] for r in rows})
    points: dict[tuple, dict[str, Any]] = {}
    for e in rows:
        if e["run_id"] not in info or e["value"] is None:
            continue
        space, params = info[e["run_id"]]
        x = e["details"].get(param, find_param(params or {}, param))
        if x is None:
            continue
        series = f"{space} · {e['dimension'] or 'all'}"
        if n_sets > 1 and e["pair_set"]:
            series += f" · {e['pair_set']}"
        points[(series, e["run_id"])] = _plain({  # the newest evaluation of a (series, run) wins
            "series": series, "space": space, "run_id": e["run_id"], "min_cluster_size": x,
            "value": e["value"], "ci_low": e["ci_low"], "ci_high": e["ci_high"], "n": e["n"],
            "current": e["run_id"] == run["run_id"]})
    by_series: dict[str, set] = {}
    for p in points.values():
        by_series.setdefault(p["series"], set()).add(p["min_cluster_size"])
    keep = {s for s, v in by_series.items() if len(v) >= 2}  # a curve needs two settings

    def key(p):
        try:
            x = float(p["min_cluster_size"])
        except (TypeError, ValueError):
            x = 0.0
        return (p["space"] != run.get("space"), p["series"], x)

    return sorted((p for p in points.values() if p["series"] in keep), key=key)


def _compare(store: Store, other: str, meme_ids: list[str], clusters: list[int]) -> dict[str, Any]:
    """How a second run groups the same memes: its cluster per meme, ARI/NMI against this run
    (noise counted as one more group), and for each cluster here the largest overlaps there."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    info = run_info(store, other)
    rows = dict(store.fetchall(
        "SELECT meme_id, cluster FROM cluster_assignments WHERE run_id = ?", [other]))
    per_meme = [rows.get(m) for m in meme_ids]
    pairs = [(a, b) for a, b in zip(clusters, per_meme, strict=True) if b is not None]
    ari = nmi = None
    if len(pairs) >= 2:
        a_lab, b_lab = zip(*pairs, strict=True)
        ari = round(float(adjusted_rand_score(a_lab, b_lab)), 4)
        nmi = round(float(normalized_mutual_info_score(a_lab, b_lab)), 4)
    cross: dict[int, dict[int, int]] = {}
    for a, b in pairs:
        cross.setdefault(a, {}).setdefault(b, 0)
        cross[a][b] += 1
    labels_b = _labels(store, other)
    return _plain({
        "run": info, "per_meme": per_meme, "n_shared": len(pairs), "ari": ari, "nmi": nmi,
        "labels": {str(k): {"label": v["label"], "keywords": v["keywords"][:8]}
                   for k, v in labels_b.items()},
        "crosswalk": {str(a): sorted(([b, n] for b, n in d.items()), key=lambda t: -t[1])[:5]
                      for a, d in cross.items()},
    })


def _granularity(store: Store, run: dict[str, Any]) -> dict[str, Any]:
    """Issue 10 in the report: the automatic size choice's curve, stability across seeds, and
    evaluation scores (CQ, ARI, NMI) against the number of clusters for runs of this space."""
    rid = run["run_id"]
    out: dict[str, Any] = {"curve": [], "stability": None, "clusters": [], "scores": []}
    if store.table_exists("cluster_granularity"):
        out["curve"] = [_plain({"min_cluster_size": m, "value": v, "n_clusters": k,
                                "noise_fraction": nf, "chosen": bool(ch), "criterion": cr})
                        for m, v, k, nf, ch, cr in store.fetchall(
            "SELECT min_cluster_size, value, n_clusters, noise_fraction, chosen, criterion "
            "FROM cluster_granularity WHERE run_id = ? ORDER BY min_cluster_size", [rid])]
    params = run.get("params") if isinstance(run.get("params"), dict) else {}
    st = params.get("stability") if isinstance(params.get("stability"), dict) else None
    if st and st.get("mean_ari") is not None:
        out["stability"] = _plain(st)
        if store.table_exists("cluster_stability"):
            out["clusters"] = [_plain({"cluster": c, "size": n, "jaccard": j, "together": t})
                               for c, n, j, t in store.fetchall(
                "SELECT cluster, size, jaccard, together FROM cluster_stability WHERE run_id = ? "
                "ORDER BY jaccard, cluster", [rid])]
    if store.table_exists("evaluations"):
        rows = store.fetchall(
            "SELECT e.run_id, e.metric, e.value, e.dimension, e.details, r.n_clusters, "
            "r.noise_fraction, r.created_at, e.created_at FROM evaluations e JOIN cluster_runs r "
            "USING (run_id) WHERE r.space = ? AND e.metric IN ('cq', 'ari', 'nmi') "
            "AND e.value IS NOT NULL ORDER BY e.created_at", [run.get("space")])
        pts: dict[tuple, dict[str, Any]] = {}
        for r_id, metric, value, dim, det, k, nf, _, _ in rows:
            det = _json(det) if not isinstance(det, dict) else det
            det = det if isinstance(det, dict) else {}
            if metric in ("ari", "nmi") and det.get("scope", "all") != "all":
                continue
            series = f"{metric} · {dim or 'all'}" + (f" · noise {det['noise']}"
                                                    if det.get("noise") else "")
            pts[(series, r_id)] = _plain({"series": series, "metric": metric, "run_id": r_id,
                                          "n_clusters": k, "noise_fraction": nf,
                                          "value": value, "current": r_id == rid})
        out["scores"] = sorted(pts.values(), key=lambda p: (p["series"], p["n_clusters"] or 0))
    return out


def collect(store: Store, run_id: str | None = None, *, compare: str | None = None,
            thumbs_per_cluster: int = 24, max_thumbs: int = 2500,
            neighbours: int = 5, noise: str = "assigned") -> ReportData:
    """Read a run and everything about it into a `ReportData` (no images decoded yet).

    `noise` 'assigned' puts HDBSCAN noise memes in their most likely cluster; 'apart' keeps −1.
    """
    from memeatlas.cluster.config import NOISE_MODES

    if noise not in NOISE_MODES:
        raise InputError(f"--noise must be one of {', '.join(NOISE_MODES)}, got {noise!r}")
    run_id = run_id or latest_run_id(store)
    run = run_info(store, run_id)
    df = _assignments(store, run_id, noise)
    if df.empty:
        raise NotFoundError(f"cluster run {run_id!r} has no assignments; re-run `memeatlas cluster`")
    anns = _annotations(store, run_id, run.get("space") or "")
    labels = _labels(store, run_id)

    meme_ids = df["meme_id"].tolist()
    clusters = [int(c) for c in df["cluster"].tolist()]
    paths = df["path"].tolist()
    names = []
    for p, sid, mid in zip(paths, df["source_id"].tolist(), meme_ids, strict=False):
        if isinstance(p, str) and p:
            names.append(Path(p).name)
        elif isinstance(sid, str) and sid:
            names.append(sid)
        else:
            names.append(mid[:12])
    snippets = []
    for mid in meme_ids:
        a = anns.get(mid, {})
        snippets.append(_clip(a.get("ocr_text") or a.get("description") or "", SNIPPET_CHARS))

    def _num(v):
        return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else round(float(v), 4)

    xs = [_num(v) for v in df["x"].tolist()]
    ys = [_num(v) for v in df["y"].tolist()]
    probs = [_num(v) for v in df["probability"].tolist()]

    # Cluster table: members in the order read (cluster, probability desc).
    members: dict[int, list[int]] = {}
    for i, c in enumerate(clusters):
        members.setdefault(c, []).append(i)
    index_of = {m: i for i, m in enumerate(meme_ids)}
    cluster_rows = []
    for c in sorted(members, key=lambda c: (c == -1, -len(members[c]), c)):
        lab = labels.get(c, {})
        reps = [index_of[m] for m in lab.get("representatives", []) if m in index_of]
        rep_set = set(reps)
        ordered = reps + [i for i in members[c] if i not in rep_set]
        cluster_rows.append({
            "cluster": c,
            "label": lab.get("label") or ("noise" if c == -1 else f"cluster {c}"),
            "keywords": (lab.get("keywords") or [])[:12],
            "size": len(members[c]),
            "members": ordered,
            "gallery": [],
        })

    # Thumbnails: the first N of each cluster (representatives first), capped overall
    # by shrinking the per-cluster cap until it fits.
    per = thumbs_per_cluster
    while per > 1 and sum(min(per, r["size"]) for r in cluster_rows) > max_thumbs:
        per -= 1
    thumb_paths: dict[int, str | None] = {}
    for r in cluster_rows:
        r["gallery"] = r["members"][:per]
        for i in r["gallery"]:
            thumb_paths[i] = paths[i] if isinstance(paths[i], str) else None

    # Full annotations only for gallery memes; everyone else gets the snippet.
    details = {}
    for i in thumb_paths:
        a = anns.get(meme_ids[i])
        if a:
            details[str(i)] = a

    evaluations = _evaluations(store, [run_id] + ([compare] if compare else []))
    sizes = [{"cluster": r["cluster"], "size": r["size"], "label": r["label"]} for r in cluster_rows]

    payload: dict[str, Any] = {
        "run": run,
        "memes": {"id": meme_ids, "name": names, "snippet": snippets, "cluster": clusters,
                  "x": xs, "y": ys, "prob": probs},
        "clusters": cluster_rows,
        "details": details,
        "evaluations": evaluations,
        "sweep": _sweep(store, run),
        "sizes": sizes,
        "annotators": sorted({a["annotator"] for a in anns.values()}),
        "compare": None,
        "coverage": coverage(store, run, len(meme_ids)),
    }
    payload["granularity"] = _granularity(store, run)
    n_hard_noise = int((df["hard_cluster"] < 0).sum()) if "hard_cluster" in df else None
    payload["granularity"]["noise"] = {
        "mode": noise, "hdbscan_noise": n_hard_noise if n_hard_noise is not None
        else int(sum(c == -1 for c in clusters)),
        "shown_as_noise": int(sum(c == -1 for c in clusters))}
    if compare:
        payload["compare"] = _compare(store, compare, meme_ids, clusters)
    from memeatlas.report.study_data import study_payload

    payload["study"] = study_payload(store, run, meme_ids, df["source_id"].tolist(),
                                     neighbours=neighbours)
    from memeatlas.images.report_section import image_structure

    images = image_structure(store, meme_ids, paths, thumb_paths)
    if images:
        payload["images"] = images
    return ReportData(run_id=run_id, payload=payload, thumb_paths=thumb_paths)
