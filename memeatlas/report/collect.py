"""Everything a report shows, read from the store into plain JSON-able structures.

Kept apart from HTML assembly so the data can be tested (and fingerprinted) without
making thumbnails. All meme-derived strings stay raw here; the page renders them
with `textContent`, and `memeatlas.report.html.json_for_script` escapes the JSON.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memeatlas.cluster.config import member_cluster_sql
from memeatlas.errors import InputError, NotFoundError
from memeatlas.evaluate.sweep import find_param
from memeatlas.report.coverage import coverage
from memeatlas.report.sample import DEFAULT_MAP_POINTS, stratified_sample
from memeatlas.store import Store

# Per-meme strings are capped so a 5,000-meme report stays a few MB.
SNIPPET_CHARS = 140
FIELD_CHARS = 1200
# Find searches every annotation text field; each meme's searchable text is capped at
# FIND_CHARS, and lower where the page holds many memes, so Find's text stays within
# FIND_BUDGET characters in all (a 50,000-point map: 160 a meme).
FIND_CHARS = 2000
FIND_BUDGET = 8_000_000
TITLE_CHARS = 300
URL_CHARS = 2000
# Every cluster gets at least this many gallery thumbnails, even past --max-thumbs.
MIN_THUMBS_PER_CLUSTER = 3
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
    from memeatlas.corpus.runs import latest_run

    run_id = latest_run(store, kind=None)
    if run_id is None:
        raise NotFoundError("no cluster runs in this database; run `memeatlas cluster` first")
    return run_id


def run_info(store: Store, run_id: str) -> dict[str, Any]:
    """One cluster_runs row as a dict with JSON columns decoded (NotFoundError if absent)."""
    from memeatlas.corpus.runs import get_run_info

    return _plain(get_run_info(store, run_id))


def _assignments(store: Store, run_id: str, noise: str = "apart"):
    """The run's rows from `cluster_membership`, sorted by (cluster, core first, probability
    desc, meme_id). Only narrow columns: at 10⁶ memes paths and source ids would double the
    peak memory; `_files` reads them for the memes the page shows."""
    return store.df(
        f"SELECT meme_id, {member_cluster_sql(noise)} AS cluster, probability, x, y, "
        f"hard_cluster, membership = 'assigned' AS assigned FROM cluster_membership "
        f"WHERE run_id = ? ORDER BY 2, membership <> 'core', probability DESC NULLS LAST, "
        f"meme_id", [run_id])


def _sources(store: Store, meme_ids: list[str]) -> tuple[list, list]:
    """Source title and link of each of `meme_ids` (`meme_links`; None where the corpus has
    none). Links are passed as stored; the page makes a link only of an http(s) URL."""
    import pyarrow as pa

    if not store.table_exists("meme_links"):
        return [None] * len(meme_ids), [None] * len(meme_ids)
    ids = pa.table({"meme_id": pa.array(meme_ids, type=pa.string())})
    with store.registered("_report_link_ids", ids):
        got = {m: (t, u) for m, t, u in store.fetchall(
            "SELECT l.meme_id, l.source_title, l.source_url FROM meme_links l "
            "JOIN _report_link_ids USING (meme_id) "
            "WHERE l.source_title IS NOT NULL OR l.source_url IS NOT NULL")}
    titles, urls = [], []
    for m in meme_ids:
        t, u = got.get(m, (None, None))
        titles.append(_clip(t, TITLE_CHARS) or None)
        # A clipped URL would lead somewhere else: an over-long one is dropped.
        urls.append(u if isinstance(u, str) and u and len(u) <= URL_CHARS else None)
    return titles, urls


def _files(store: Store, meme_ids: list[str]) -> tuple[list, list]:
    """Image path and source id of each of `meme_ids` (None where the store has none)."""
    import pyarrow as pa

    ids = pa.table({"meme_id": pa.array(meme_ids, type=pa.string())})
    with store.registered("_report_file_ids", ids):
        got = {m: (p, sid) for m, p, sid in store.fetchall(
            "SELECT m.meme_id, m.path, m.source_id FROM memes m JOIN _report_file_ids "
            "USING (meme_id)")}
    rows = [got.get(m, (None, None)) for m in meme_ids]
    return [r[0] for r in rows], [r[1] for r in rows]


def _chosen_annotation_sql(space_pref: bool, members: str, cols: str = "a.*") -> str:
    """SQL for one annotation per meme of `members` (a relation with a meme_id column): the
    annotation its text embedding used, else the newest. `cols`: the columns kept (fewer
    columns through the window keep the query's memory small at 10⁶ memes)."""
    pref = ("LEFT JOIN (SELECT meme_id, annotator AS pref FROM embeddings WHERE space = ?) p "
            "USING (meme_id)") if space_pref else (
        "LEFT JOIN (SELECT NULL::VARCHAR AS meme_id, NULL::VARCHAR AS pref) p USING (meme_id)")
    return f"""
        SELECT {cols} FROM annotations a JOIN {members} m USING (meme_id) {pref}
        QUALIFY row_number() OVER (PARTITION BY a.meme_id
                                   ORDER BY (a.annotator = p.pref) DESC NULLS LAST,
                                            a.created_at DESC, a.annotator) = 1
    """


def _annotations(store: Store, run_id: str, space: str,
                 meme_ids: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """One annotation per meme of the run (or of `meme_ids` only): the one its text embedding
    used, else the newest."""
    if not store.table_exists("annotations"):
        return {}
    import pyarrow as pa

    has_emb = store.table_exists("embeddings")
    ids = pa.table({"meme_id": pa.array(
        meme_ids if meme_ids is not None else [], type=pa.string())})
    members = ("_report_ann_ids" if meme_ids is not None
               else "(SELECT meme_id FROM cluster_assignments WHERE run_id = ?)")
    sql = (f"SELECT meme_id, annotator, description, ocr_text, intent, template, tone, entities "
           f"FROM ({_chosen_annotation_sql(has_emb, members)})")
    params = ([] if meme_ids is not None else [run_id]) + ([space] if has_emb else [])
    with store.registered("_report_ann_ids", ids):
        rows = store.fetchall(sql, params)
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
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


def _entity_text(entities: Any) -> str:
    """Names and meanings of an annotation's entities, as searchable text."""
    ents = _json(entities)
    if not isinstance(ents, list):
        return ""
    return " ".join(str(e.get(k)) for e in ents if isinstance(e, dict)
                    for k in ("name", "stands_for") if e.get(k))


def _find_texts(store: Store, space: str, meme_ids: list[str], titles: list) -> list[str]:
    """What Find searches for each of `meme_ids`: every text field of its shown annotation
    (description, OCR text, intent, template, tone, entity names and what they stand for) and
    its source title, lower-cased, whitespace collapsed, capped at FIND_CHARS (less above
    FIND_BUDGET / FIND_CHARS memes)."""
    out = [" ".join(str(t).lower().split()) if t else "" for t in titles]
    if not store.table_exists("annotations"):
        return out
    import pyarrow as pa

    has_emb = store.table_exists("embeddings")
    ids = pa.table({"meme_id": pa.array(meme_ids, type=pa.string())})
    cols = ", ".join(ANNOTATION_FIELDS)
    with store.registered("_report_find_ids", ids):
        rows = store.fetchall(
            f"SELECT meme_id, {cols}, entities FROM "
            f"({_chosen_annotation_sql(has_emb, '_report_find_ids')})",
            [space] if has_emb else [])
    pos = {m: i for i, m in enumerate(meme_ids)}
    cap = max(160, min(FIND_CHARS, FIND_BUDGET // max(1, len(meme_ids))))
    for meme_id, *vals, entities in rows:
        parts = [str(v) for v in vals if v] + [_entity_text(entities)]
        i = pos[meme_id]
        text = " ".join(" ".join(parts).lower().split())
        out[i] = (out[i] + " " + text).strip()[:cap]
    return out


def _snippets(store: Store, run_id: str, space: str, meme_ids: list[str]
              ) -> tuple[list[str], list[str]]:
    """The list snippet of each of `meme_ids` (OCR text, else description, clipped), and the
    annotators behind the run's shown annotations (over every meme of the run)."""
    if not store.table_exists("annotations"):
        return [""] * len(meme_ids), []
    import pyarrow as pa

    has_emb = store.table_exists("embeddings")
    sp = [space] if has_emb else []
    # left(…, n + 1) then _clip gives exactly what clipping the whole text gives
    text = (f"left(coalesce(nullif(ocr_text, ''), nullif(description, ''), ''), "
            f"{SNIPPET_CHARS + 1})")
    ids = pa.table({"meme_id": pa.array(meme_ids, type=pa.string())})
    with store.registered("_report_snip_ids", ids):
        got = dict(store.fetchall(
            f"SELECT meme_id, {text} FROM ({_chosen_annotation_sql(has_emb, '_report_snip_ids')})",
            sp))
    run_memes = "(SELECT meme_id FROM cluster_assignments WHERE run_id = ?)"
    annotators = [r[0] for r in store.fetchall(
        f"SELECT DISTINCT annotator FROM ({_chosen_annotation_sql(has_emb, run_memes, 'a.annotator')}) "
        "ORDER BY 1",
        [run_id] + sp)]
    return [_clip(got.get(m) or "", SNIPPET_CHARS) for m in meme_ids], annotators


def _labels(store: Store, run_id: str) -> dict[int, dict[str, Any]]:
    if not store.table_exists("cluster_labels"):
        return {}
    cur = store.execute("SELECT * FROM latest_cluster_labels WHERE run_id = ?", [run_id])
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


def _compare(store: Store, other: str, meme_ids: Any, clusters: Any, shown: Any,
             noise: str = "assigned") -> dict[str, Any]:
    """How a second run groups the same memes (under the same membership rule as this run's):
    its cluster per shown meme (`shown`: row positions of the map sample), and over every meme
    of this run: ARI/NMI against this run (noise counted as one more group), its cluster sizes,
    and for each cluster here the largest overlaps there."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    info = run_info(store, other)
    b = store.df(f"SELECT meme_id, {member_cluster_sql(noise)} AS b FROM cluster_membership "
                 f"WHERE run_id = ?", [other])
    both = pd.DataFrame({"meme_id": np.asarray(meme_ids), "a": np.asarray(clusters)}).merge(
        b, on="meme_id", how="left", sort=False)
    have = both["b"].notna().to_numpy()
    bvals = both["b"].to_numpy()
    per_meme = [None if v != v else int(v) for v in bvals[np.asarray(shown)].tolist()]
    pairs = both[have]
    ari = nmi = None
    if len(pairs) >= 2:
        a_lab, b_lab = pairs["a"].to_numpy(), pairs["b"].astype(np.int64).to_numpy()
        ari = round(float(adjusted_rand_score(a_lab, b_lab)), 4)
        nmi = round(float(normalized_mutual_info_score(a_lab, b_lab)), 4)
    counts = pairs.groupby(["a", "b"], sort=False).size()
    cross: dict[int, list[list[int]]] = {}
    for (a, bb), n in counts.items():
        cross.setdefault(int(a), []).append([int(bb), int(n)])
    labels_b = _labels(store, other)
    sizes_b = pairs["b"].astype(np.int64).value_counts()
    return _plain({
        "run": info, "per_meme": per_meme, "n_shared": int(len(pairs)), "ari": ari, "nmi": nmi,
        "labels": {str(k): {"label": v["label"], "keywords": v["keywords"][:8]}
                   for k, v in labels_b.items()},
        "crosswalk": {str(a): sorted(v, key=lambda t: (-t[1], t[0]))[:5] for a, v in cross.items()},
        "sizes": {str(int(k)): int(v) for k, v in sizes_b.items()},
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


def _thumbs_per_cluster(sizes: Any, per_cluster: int, max_thumbs: int, floor: int) -> int:
    """Gallery memes per cluster: the most (up to `per_cluster`) that keeps the total within
    `max_thumbs`, but never fewer than `floor` (so a run of many clusters still shows each
    one; the total then exceeds the cap by what the floor needs)."""
    import numpy as np

    sizes = np.asarray(sizes)
    if per_cluster <= 0 or max_thumbs <= 0:
        return 0
    low = max(1, min(floor, per_cluster))
    per = per_cluster
    while per > low and int(np.minimum(sizes, per).sum()) > max_thumbs:
        per -= 1
    return per


def _names(paths: list, source_ids: list, meme_ids: list[str]) -> list[str]:
    out = []
    for p, sid, mid in zip(paths, source_ids, meme_ids, strict=False):
        if isinstance(p, str) and p:
            out.append(os.path.basename(p) or Path(p).name)  # basename: 10x cheaper than Path
        elif isinstance(sid, str) and sid:
            out.append(sid)
        else:
            out.append(mid[:12])
    return out


def collect(store: Store, run_id: str | None = None, *, compare: str | None = None,
            thumbs_per_cluster: int = 24, max_thumbs: int = 2500,
            min_thumbs_per_cluster: int = MIN_THUMBS_PER_CLUSTER,
            neighbours: int = 5, noise: str = "assigned",
            map_points: int = DEFAULT_MAP_POINTS) -> ReportData:
    """Read a run and everything about it into a `ReportData` (no images decoded yet).

    `noise` 'assigned' shows memes assigned from noise (`cluster_membership`) in their cluster;
    'apart' shows only core members in clusters. Panels count what `members_sql` returns.
    Above `map_points` memes (0: never) the per-meme arrays hold a stratified sample by cluster
    (`memeatlas.report.sample`); cluster sizes, counts and statistics still cover every meme.
    """
    import numpy as np

    from memeatlas.cluster.config import NOISE_MODES

    if noise not in NOISE_MODES:
        raise InputError(f"--noise must be one of {', '.join(NOISE_MODES)}, got {noise!r}")
    run_id = run_id or latest_run_id(store)
    run = run_info(store, run_id)
    df = _assignments(store, run_id, noise)
    if df.empty:
        raise NotFoundError(f"cluster run {run_id!r} has no assignments; re-run `memeatlas cluster`")
    labels = _labels(store, run_id)
    n_all = len(df)

    # Rows arrive sorted by cluster, so each cluster is one contiguous block of rows.
    cl_all = df["cluster"].to_numpy(dtype=np.int64)
    assigned_all = df["assigned"].to_numpy(dtype=bool)
    ids_all = df["meme_id"]
    uniq, starts, counts = np.unique(cl_all, return_index=True, return_counts=True)
    size_of = {int(c): int(n) for c, n in zip(uniq, counts, strict=True)}
    n_assigned_in = {int(c): int(n) for c, n in zip(uniq, np.add.reduceat(
        assigned_all.astype(np.int64), starts) if len(starts) else [], strict=True)}
    block = {int(c): (int(s), int(s + n)) for c, s, n in zip(uniq, starts, counts, strict=True)}
    order = sorted(size_of, key=lambda c: (c == -1, -size_of[c], c))

    # Representatives (from the labels) and gallery memes, as rows of the whole run.
    per = _thumbs_per_cluster(counts, thumbs_per_cluster, max_thumbs, min_thumbs_per_cluster)
    reps_rows: dict[int, list[int]] = {}
    gallery_rows: dict[int, list[int]] = {}
    required = np.zeros(n_all, dtype=bool)
    all_reps = [(c, m) for c in order for m in labels.get(c, {}).get("representatives", [])]
    if all_reps:
        # rows of the representatives: a hash lookup of the few ids, not an index over 10⁶
        import pyarrow as pa
        import pyarrow.compute as pc

        want = list(dict.fromkeys(m for _, m in all_reps))
        hit = pc.index_in(pa.array(ids_all, type=pa.string()),
                          value_set=pa.array(want, type=pa.string()))
        rows = np.flatnonzero(hit.is_valid().to_numpy(zero_copy_only=False))
        row_of = dict(zip((want[k] for k in hit.filter(hit.is_valid()).to_pylist()),
                          rows.tolist(), strict=True))
        for c, m in all_reps:
            if m in row_of:
                reps_rows.setdefault(c, []).append(row_of[m])
    for c in order:
        reps_c = reps_rows.get(c, [])
        rep_set = set(reps_c)
        s0, s1 = block[c]
        gal = reps_c[:per]
        r = s0
        while len(gal) < per and r < s1:
            if r not in rep_set:
                gal.append(r)
            r += 1
        reps_rows[c], gallery_rows[c] = reps_c, gal
        required[reps_c] = True
        required[gal] = True

    sample = stratified_sample(cl_all, required, map_points)
    idx = sample.index
    sub = df.iloc[idx].reset_index(drop=True) if sample.sampled else df
    at = np.full(n_all, -1, dtype=np.int64)  # run row -> position in the page's arrays
    at[idx] = np.arange(len(idx))

    meme_ids = sub["meme_id"].tolist()
    clusters = sub["cluster"].astype(np.int64).tolist()
    # 1: assigned from noise (shown apart from the core members of its cluster)
    assigned = sub["assigned"].astype(np.int8).tolist()
    paths, source_ids = _files(store, meme_ids)
    names = _names(paths, source_ids, meme_ids)
    snippets, annotators = _snippets(store, run_id, run.get("space") or "", meme_ids)
    titles, urls = _sources(store, meme_ids)
    find = _find_texts(store, run.get("space") or "", meme_ids, titles)

    def _col(name: str) -> list:
        v = sub[name].to_numpy(dtype=np.float64).round(4)
        return [None if x != x or x in (np.inf, -np.inf) else x for x in v.tolist()]

    xs, ys, probs = _col("x"), _col("y"), _col("probability")

    # Cluster table: size over the whole run; members are the cluster's memes in the page's
    # arrays (representatives first, then by probability).
    cluster_rows = []
    shown_per: dict[int, int] = {}
    thumb_paths: dict[int, str | None] = {}
    for c in order:
        lab = labels.get(c, {})
        reps = [int(at[r]) for r in reps_rows[c]]
        s0, s1 = block[c]
        mine = at[s0:s1]
        mine = mine[mine >= 0]
        shown_per[c] = len(mine)
        rep_set = set(reps)
        ordered = reps + [i for i in mine.tolist() if i not in rep_set]
        gallery = [int(at[r]) for r in gallery_rows[c]]
        for i in gallery:
            thumb_paths[i] = paths[i] if isinstance(paths[i], str) else None
        row = {
            "cluster": c,
            "label": lab.get("label") or ("noise" if c == -1 else f"cluster {c}"),
            "keywords": (lab.get("keywords") or [])[:12],
            "size": size_of[c],
            "n_assigned": n_assigned_in.get(c, 0) if c != -1 else 0,
            "members": ordered,
            "gallery": gallery,
        }
        if sample.sampled:
            row["shown"] = len(mine)
        cluster_rows.append(row)

    # Full annotations only for gallery memes; everyone else gets the snippet.
    anns = _annotations(store, run_id, run.get("space") or "",
                        [meme_ids[i] for i in thumb_paths])
    details = {str(i): anns[meme_ids[i]] for i in thumb_paths if meme_ids[i] in anns}

    evaluations = _evaluations(store, [run_id] + ([compare] if compare else []))
    sizes = [{"cluster": r["cluster"], "size": r["size"], "label": r["label"]} for r in cluster_rows]

    payload: dict[str, Any] = {
        "run": run,
        "memes": {"id": meme_ids, "name": names, "snippet": snippets, "cluster": clusters,
                  "x": xs, "y": ys, "prob": probs, "assigned": assigned, "find": find,
                  "source_title": titles, "source_url": urls},
        "clusters": cluster_rows,
        "details": details,
        "evaluations": evaluations,
        "sweep": _sweep(store, run),
        "sizes": sizes,
        "annotators": annotators,
        "compare": None,
        "coverage": coverage(store, run, n_all),
    }
    payload["members_sql"] = _members_sql(run_id, noise)
    if sample.sampled:
        payload["sample"] = sample.info(size_of, shown_per)
        payload["sample"]["members_sql"] = payload["members_sql"]["cluster"]
    payload["granularity"] = _granularity(store, run)
    payload["membership"] = membership_counts(df, run, noise)
    n_noise = int(size_of.get(-1, 0))
    payload["granularity"]["noise"] = {
        "mode": noise, "hdbscan_noise": payload["membership"]["hdbscan_noise"],
        "shown_as_noise": n_noise}
    if compare:
        payload["compare"] = _compare(store, compare, ids_all, cl_all, idx, noise)
    from memeatlas.report.study_data import study_payload

    payload["study"] = study_payload(store, run, meme_ids, source_ids, neighbours=neighbours)
    from memeatlas.images.report_section import image_structure

    images = image_structure(store, meme_ids, paths, thumb_paths)
    if images:
        payload["images"] = images
    return ReportData(run_id=run_id, payload=payload, thumb_paths=thumb_paths)


def membership_counts(df, run: dict[str, Any], noise: str) -> dict[str, Any]:
    """The header's counts over every meme of the run: the memes the fit left as noise (the
    stored noise_fraction; for a --reassign-noise run the memes it moved), the memes assigned
    from them, and what the page shows as noise."""
    n = int(len(df))
    n_assigned = int(df["assigned"].sum())
    core = int(((df["hard_cluster"] >= 0) & ~df["assigned"].astype(bool)).sum())
    hard_noise = n - core
    shown_noise = int((df["cluster"] < 0).sum())
    params = run.get("params") if isinstance(run.get("params"), dict) else {}
    return {"total": n, "hdbscan_noise": hard_noise, "assigned": n_assigned,
            "noise": shown_noise, "mode": noise, "assign_floor": params.get("assign_floor"),
            "reassigned_run": run.get("kind") == "reassign_noise"}


def _members_sql(run_id: str, noise: str) -> dict[str, str]:
    """Ready `memeatlas sql` queries for all members of one cluster (CLUSTER is replaced by the
    page) and of the noise: they count exactly what the page's panels count. The run id is a
    store key (hex and dashes), quoted here for SQL."""
    rid = run_id.replace("'", "''")
    cols = ("SELECT meme_id, source_id, path, cluster, membership, probability, label, "
            "source_title, source_url, ocr_text, description FROM cluster_members "
            f"WHERE run_id = '{rid}' AND ")
    order = " ORDER BY membership DESC, probability DESC"  # core first, as the panel lists
    if noise == "assigned":
        return {"cluster": cols + "cluster = CLUSTER" + order,
                "noise": cols + "cluster = -1" + order}
    return {"cluster": cols + "cluster = CLUSTER AND membership = 'core'" + order,
            "noise": cols + "membership <> 'core'" + order}
