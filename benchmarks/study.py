"""Study workflow timings: trends, curate and hierarchy at N memes; the report with time chart,
hierarchy and neighbours (size, build time, open time in headless Chromium).

    python benchmarks/study.py ops --n 100000          # timestamps, trends, curate, hierarchy
    python benchmarks/study.py report --n 5000         # report with time, tree, neighbours
    python benchmarks/study.py report --n 50000

The store is synthetic and written directly (this measures the study steps, not captioning
or UMAP): N memes with one annotation each (theme words), a 384-d text space of clustered unit
vectors (one centre per cluster, ~10 % noise), a run whose clusters are those centres, and a
timestamp per meme over 52 weeks (5 % untimed). For the report, memes point at 300 real
demo-corpus images (`memeatlas.demo.corpus`), so thumbnails have realistic sizes without
writing N files; the report's usual caps (24 per cluster, 2,500 in all) sample them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

WORDS = ["cat", "dog", "monday", "coffee", "exam", "gym", "code", "bug", "frog", "rain",
         "pizza", "train", "boss", "meeting", "game", "phone", "music", "movie", "beach", "snow"]


def make_store(path: Path, n: int, n_clusters: int, dim: int, images: list[str] | None,
               seed: int = 0):
    import pyarrow as pa

    from memeatlas.provenance import utcnow
    from memeatlas.store import Store

    if path.exists():
        path.unlink()
    store = Store.open(path)
    rng = np.random.default_rng(seed)
    ids = [f"{i:064x}" for i in range(n)]
    lab = np.where(rng.random(n) < 0.1, -1, rng.integers(n_clusters, size=n))
    centres = rng.normal(size=(n_clusters, dim)).astype(np.float32)
    x = centres[np.maximum(lab, 0)] + 0.6 * rng.normal(size=(n, dim)).astype(np.float32)
    x[lab < 0] = rng.normal(size=(int((lab < 0).sum()), dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    c2 = rng.uniform(-30, 30, size=(n_clusters, 2))
    xy = np.where(lab[:, None] >= 0, c2[np.maximum(lab, 0)] + rng.normal(0, 1.2, (n, 2)),
                  rng.uniform(-35, 35, (n, 2)))
    texts = [" ".join([WORDS[c % 20], WORDS[(c * 7 + 3) % 20], WORDS[int(r) % 20]])
             if c >= 0 else WORDS[int(r) % 20] for c, r in zip(lab, rng.integers(20, size=n),
                                                                strict=True)]
    start = datetime(2024, 1, 1)
    # cluster 0 rises over the year, cluster 1 fades, the rest are uniform
    week = rng.integers(52, size=n)
    week[lab == 0] = (52 * np.sqrt(rng.random(int((lab == 0).sum())))).astype(int).clip(0, 51)
    week[lab == 1] = (52 * (1 - np.sqrt(rng.random(int((lab == 1).sum()))))).astype(int).clip(0, 51)
    dates = [(start + timedelta(days=int(w) * 7 + int(d))).date().isoformat()
             for w, d in zip(week, rng.integers(7, size=n), strict=True)]
    timed = rng.random(n) >= 0.05
    meta = [json.dumps({"posted": d}) if t else "{}" for d, t in zip(dates, timed, strict=True)]
    paths = [images[i % len(images)] if images else None for i in range(n)]
    run = "bench-run"
    now = utcnow()
    with store.transaction():
        tbl = pa.table({"meme_id": ids, "path": paths, "source_id": [f"post{i}" for i in range(n)],
                        "meta": meta, "text": texts})
        with store.registered("_b", tbl):
            store.execute("INSERT INTO memes (meme_id, path, source, source_id, has_image, meta) "
                          "SELECT meme_id, path, 'folder', source_id, path IS NOT NULL, meta::JSON "
                          "FROM _b")
            store.execute("INSERT INTO annotations (meme_id, annotator, prompt_hash, schema_hash, "
                          "description, intent, ocr_text) SELECT meme_id, 'bench', '', '', text, "
                          "'', '' FROM _b")
        store.execute("INSERT INTO embedding_spaces (space, kind, model, dim, params) VALUES "
                      "('text:bench', 'text', 'synthetic', ?, ?)",
                      [dim, json.dumps({"fields": ["description"], "annotator": "bench"})])
        vec = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1), pa.float32()), dim)
        with store.registered("_v", pa.table({"meme_id": ids, "vector": vec})):
            store.execute("INSERT INTO embeddings (meme_id, space, model, dim, vector, annotator) "
                          "SELECT meme_id, 'text:bench', 'synthetic', ?, vector::FLOAT[], 'bench' "
                          "FROM _v", [dim])
        store.execute(
            "INSERT INTO cluster_runs (run_id, space, spaces, algorithm, params, seed, n_items, "
            "n_clusters, noise_fraction, fingerprint, kind, created_at) VALUES (?, 'text:bench', "
            "?, 'kmeans', '{}', 0, ?, ?, ?, 'fp-bench', 'cluster', ?)",
            [run, json.dumps([{"space": "text:bench", "weight": 1.0}]), n, n_clusters,
             float((lab < 0).mean()), now])
        with store.registered("_a", pa.table({"meme_id": ids, "cluster": lab.astype(np.int32),
                                               "x": xy[:, 0], "y": xy[:, 1]})):
            store.execute("INSERT INTO cluster_assignments (run_id, meme_id, cluster, probability, "
                          "x, y) SELECT ?, meme_id, cluster, 1.0, x, y FROM _a", [run])
    return store, run, ids, lab


def timed(label: str, fn, out: dict):
    t = time.perf_counter()
    res = fn()
    out[label] = round(time.perf_counter() - t, 2)
    print(f"  {label}: {out[label]} s", file=sys.stderr)
    return res


def ops(args) -> dict:
    from memeatlas.cluster import LabelConfig, label
    from memeatlas.study.curate import curate
    from memeatlas.study.hierarchy import hierarchy
    from memeatlas.study.times import set_timestamps
    from memeatlas.study.trends import trends

    out: dict = {"n": args.n, "clusters": args.clusters, "dim": args.dim}
    store, run, ids, lab = timed("setup_s", lambda: make_store(
        args.work / f"ops-{args.n}.duckdb", args.n, args.clusters, args.dim, None), out)
    timed("timestamps_s", lambda: set_timestamps(store, "posted"), out)
    s = timed("trends_week_s", lambda: trends(store, run, period="week"), out)
    out["rising"], out["fading"] = s.rising, s.fading
    timed("trends_day_s", lambda: trends(store, run, period="day"), out)
    timed("label_s", lambda: label(store, LabelConfig(run_id=run)), out)
    movers = [ids[i] for i in np.nonzero(lab == 3)[0][:1000]]
    edits = [{"op": "merge", "clusters": [4, 5]}, {"op": "move", "memes": movers, "to": 6},
             {"op": "split", "cluster": 7, "k": 3}, {"op": "rename", "cluster": 8, "name": "x"},
             {"op": "discard", "clusters": [9]}]
    timed("curate_5_edits_no_relabel_s", lambda: curate(store, run, edits, relabel=False), out)
    timed("curate_5_edits_relabel_s", lambda: curate(store, run, edits, force=True), out)
    timed("curate_rename_only_s", lambda: curate(store, run, [edits[3]]), out)
    timed("hierarchy_centroid_s", lambda: hierarchy(store, run), out)
    store.close()
    return out


def open_times(html: Path, repeat: int) -> list[float]:
    from helpers_report import launch_browser
    from playwright.sync_api import sync_playwright

    out = []
    with sync_playwright() as p:
        b = launch_browser(p)
        for _ in range(repeat):
            ctx = b.new_context(viewport={"width": 1400, "height": 900})
            page = ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
            page.goto(html.resolve().as_uri())
            page.wait_for_selector("body[data-ready='1']", timeout=120_000)
            out.append(page.evaluate("() => performance.now()") / 1000)
            if errors:
                raise SystemExit(f"page errors: {errors}")
            ctx.close()
        b.close()
    return out


def report(args) -> dict:
    from memeatlas.demo.corpus import write_corpus
    from memeatlas.report import build
    from memeatlas.study.hierarchy import hierarchy
    from memeatlas.study.times import set_timestamps
    from memeatlas.study.trends import trends

    img = args.work / "images-300"
    if not (img / "manifest.csv").exists():
        write_corpus(img, n=300)
    images = sorted(str(p) for p in img.iterdir() if p.suffix in (".png", ".jpg"))
    out: dict = {"n": args.n, "clusters": args.clusters, "dim": args.dim}
    store, run, _ids, _lab = timed("setup_s", lambda: make_store(
        args.work / f"report-{args.n}.duckdb", args.n, args.clusters, args.dim, images), out)
    set_timestamps(store, "posted")
    trends(store, run, period="week")
    hierarchy(store, run)
    html = args.work / f"study-report-{args.n}.html"
    s = timed("build_s", lambda: build(store, run, html, neighbours=args.neighbours), out)
    store.close()
    out.update({"thumbnails": s.n_thumbnails, "neighbours": args.neighbours,
                "size_mb": round(html.stat().st_size / 1e6, 2)})
    times = open_times(html, args.repeat)
    out["open_s_median"] = round(statistics.median(times), 2)
    out["open_s_all"] = [round(t, 2) for t in times]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["ops", "report"])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--clusters", type=int, default=100)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--neighbours", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--work", type=Path,
                    default=Path(tempfile.gettempdir()) / "memeatlas-bench-study")
    args = ap.parse_args()
    os.environ.setdefault("MEMEATLAS_NO_PROGRESS", "1")
    args.work.mkdir(parents=True, exist_ok=True)
    res = ops(args) if args.what == "ops" else report(args)
    res["load_average"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
