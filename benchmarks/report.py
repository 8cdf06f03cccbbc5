"""Report size, build time, peak memory and open time in headless Chromium, for N memes.

    python benchmarks/report.py --n 5000            # synthetic corpus of 5,000 memes
    python benchmarks/report.py --html memeatlas-demo/report.html   # time an existing report
    python benchmarks/report.py --n 1000000 --clusters 1000 --repeat 2   # rows by SQL (see below)

Above --rows-above memes (default 20,000), or with --sql-rows, the store is made of synthetic
rows inserted directly with SQL/Arrow instead: memes (each pointing at one of --images demo
images, so every gallery meme has a real thumbnail), one annotation each, a cluster run with
a 2-D layout (Gaussian blobs of Zipf-like sizes, ~10 % noise) and labels with representatives.
That builds 10⁶ memes in well under a minute. The report is then built by the real CLI
(`memeatlas report`) in a child process, so build time and peak RSS are the command's own.

The corpus is `memeatlas.demo.corpus` image macros (480x400, PNG/JPEG), ingested with the
real ingest step; annotations, a 2-D layout (Gaussian blobs, one per cluster, ~10 % noise)
and labels are written directly, because this measures the report, not UMAP. Open time is
from navigation start to the moment the page's script has drawn everything
(`body[data-ready]`), median of --repeat fresh page loads, with Debian's chromium.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def make_store(work: Path, n: int, n_clusters: int, seed: int = 0):
    from memeatlas.demo.corpus import write_corpus
    from memeatlas.ingest import ingest_paths
    from memeatlas.store import Store

    img = work / f"corpus-{n}"
    if not (img / "manifest.csv").exists():
        t = time.perf_counter()
        write_corpus(img, n=n, seed=seed)
        print(f"wrote {n} images in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    db = work / f"bench-{n}.duckdb"
    if db.exists():
        db.unlink()
    store = Store.open(db)
    ingest_paths(store, manifest=img / "manifest.csv")
    rows = store.fetchall("SELECT meme_id, meta->>'top', meta->>'bottom', meta->>'theme' FROM memes "
                          "ORDER BY path")
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-20, 20, size=(n_clusters, 2))
    run = "bench-run"
    with store.transaction():
        store.con.executemany(
            "INSERT INTO annotations (meme_id, annotator, prompt_hash, schema_hash, description, ocr_text,"
            " intent, tone, entities) VALUES (?,?,?,?,?,?,?,?,?)",
            [(m, "bench", "", "", f"An image macro with bold white text about {th} on a coloured "
              f"background with shapes.", f"{top} {bot}", f"Jokes about {th}: {bot.lower()}", "humorous",
              json.dumps([{"name": th, "role": "other", "stands_for": "everyday life"}]))
             for m, top, bot, th in rows])
        store.execute("INSERT INTO cluster_runs (run_id, space, algorithm, params, seed, n_items, n_clusters,"
                      " noise_fraction) VALUES (?,?,?,?,?,?,?,?)",
                      [run, "text:description+intent", "hdbscan",
                       json.dumps({"min_cluster_size": 25}), seed, n, n_clusters, 0.1])
        assign = []
        members: dict[int, list[str]] = {}
        for m, *_ in rows:
            c = -1 if rng.random() < 0.1 else int(rng.integers(n_clusters))
            if c == -1:
                x, y = rng.uniform(-25, 25, size=2)
            else:
                x, y = centres[c] + rng.normal(0, 1.2, size=2)
            assign.append((run, m, c, float(rng.random()), float(x), float(y)))
            members.setdefault(c, []).append(m)
        store.con.executemany("INSERT INTO cluster_assignments (run_id, meme_id, cluster, probability, x, y)"
                              " VALUES (?,?,?,?,?,?)", assign)
        store.con.executemany(
            "INSERT INTO cluster_labels (run_id, cluster, size, keywords, label, representatives)"
            " VALUES (?,?,?,?,?,?)",
            [(run, c, len(v), [f"word{c}", "monday", "coffee", "cat"], f"cluster {c}: monday coffee",
              v[:5]) for c, v in members.items() if c >= 0])
    return store, run


def make_sql_store(work: Path, n: int, n_clusters: int, n_images: int, seed: int = 0):
    """A store of `n` synthetic memes written by SQL/Arrow (no ingest, no images decoded)."""
    import pyarrow as pa

    from memeatlas.demo.corpus import write_corpus
    from memeatlas.store import Store

    img = work / f"pool-{n_images}"
    if not (img / "manifest.csv").exists():
        t = time.perf_counter()
        write_corpus(img, n=n_images, seed=seed)
        print(f"wrote {n_images} images in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    pool = sorted(str(p) for p in img.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    db = work / f"bench-sql-{n}.duckdb"
    for f in (db, db.with_name(db.name + ".wal")):
        if f.exists():
            f.unlink()
    store = Store.open(db)
    rng = np.random.default_rng(seed)
    # Zipf-like cluster sizes (a few big clusters, a long tail), ~10 % noise
    share = 1.0 / np.arange(1, n_clusters + 1) ** 0.8
    share /= share.sum()
    cl = rng.choice(n_clusters, size=n, p=share)
    cl[rng.random(n) < 0.1] = -1
    centres = rng.uniform(-60, 60, size=(n_clusters, 2))
    spread = 0.6 + 2.0 * np.sqrt(np.bincount(cl[cl >= 0], minlength=n_clusters) / n * n_clusters) ** 0.5
    xy = np.where((cl >= 0)[:, None], centres[np.maximum(cl, 0)]
                  + rng.normal(0, 1, size=(n, 2)) * spread[np.maximum(cl, 0)][:, None],
                  rng.uniform(-70, 70, size=(n, 2)))
    prob = np.where(cl >= 0, rng.beta(5, 1.5, size=n), 0.0)
    themes = ["cats", "monday", "exams", "gym", "coffee", "weekend", "school", "dogs"]
    run = "bench-run"
    rows = pa.table({"i": np.arange(n, dtype=np.int64), "cluster": cl.astype(np.int32),
                     "probability": prob, "x": xy[:, 0], "y": xy[:, 1]})
    paths = pa.table({"k": np.arange(len(pool), dtype=np.int64), "path": pool})
    t = time.perf_counter()
    with store.transaction(), store.registered("_rows", rows), store.registered("_pool", paths):
        store.execute(
            "INSERT INTO memes (meme_id, path, source, source_id, has_image, width, height, format) "
            "SELECT sha256('bench:' || i), p.path, 'bench', 'post-' || i, true, 480, 400, 'PNG' "
            f"FROM _rows JOIN _pool p ON p.k = i % {len(pool)}")
        store.execute(
            "INSERT INTO annotations (meme_id, annotator, prompt_hash, schema_hash, description, "
            "ocr_text, intent, tone, entities) SELECT sha256('bench:' || i), 'bench', '', '', "
            "'An image macro with bold white text about ' || t || ' on a coloured background with "
            "shapes, number ' || i || '.', upper('when the ' || t || ' happens again ' || i || "
            "' times, nobody expects it'), 'Jokes about ' || t || ' in cluster ' || cluster, "
            "'humorous', '[{\"name\": \"' || t || '\", \"role\": \"other\"}]' FROM "
            "(SELECT *, (?::VARCHAR[])[1 + (CASE WHEN cluster < 0 THEN i ELSE cluster END) % ?] AS t "
            "FROM _rows)", [themes, len(themes)])
        store.execute(
            "INSERT INTO cluster_runs (run_id, space, algorithm, params, seed, n_items, n_clusters, "
            "noise_fraction) VALUES (?,?,?,?,?,?,?,?)",
            [run, "text:description+intent", "hdbscan", json.dumps({"min_cluster_size": 25}), seed,
             n, n_clusters, float((cl < 0).mean())])
        store.execute(
            "INSERT INTO cluster_assignments (run_id, meme_id, cluster, probability, x, y) "
            "SELECT ?, sha256('bench:' || i), cluster, probability, x, y FROM _rows", [run])
        store.execute(
            "INSERT INTO cluster_labels (run_id, cluster, size, keywords, label, representatives) "
            "SELECT ?, cluster, count(*), ['word' || cluster, 'monday', 'coffee', 'cat'], "
            "'cluster ' || cluster || ': monday coffee', "
            "list(sha256('bench:' || i) ORDER BY probability DESC, i)[1:5] FROM _rows "
            "WHERE cluster >= 0 GROUP BY cluster", [run])
    print(f"inserted {n} memes by SQL in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    return store, run, db


def build_cli(db: Path, run: str, html: Path, extra: list[str]) -> dict:
    """`memeatlas report` in a child process: its summary, wall seconds and peak RSS."""
    import resource
    import subprocess

    cmd = [sys.executable, "-m", "memeatlas.cli", "report", "--db", str(db), "--run", run,
           "-o", str(html), *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MEMEATLAS_NO_PROGRESS": "1"}
    t = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t
    if res.returncode:
        raise SystemExit(f"report failed: {res.stdout}{res.stderr}")
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = {"cli_wall_s": round(wall, 1), "peak_rss_mb": round(peak_kb / 1024, 1)}
    for line in res.stderr.splitlines():  # the summary block: "  key   value"
        k, _, v = line.strip().partition("  ")
        if k in ("memes", "map points", "clusters", "thumbnails", "size", "seconds"):
            out[k.replace(" ", "_")] = v.strip()
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
            errors = []
            page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
            page.goto(html.resolve().as_uri())
            page.wait_for_selector("body[data-ready='1']", timeout=60_000)
            # ms from navigation start until the script finished drawing
            ms = page.evaluate("() => performance.now()")
            out.append(ms / 1000)
            if errors:
                raise SystemExit(f"page errors: {errors}")
            ctx.close()
        b.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=5000, help="memes in the synthetic corpus")
    ap.add_argument("--clusters", type=int, default=50)
    ap.add_argument("--html", type=Path, help="time an existing report instead of building one")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "memeatlas-bench-report")
    ap.add_argument("--sql-rows", action="store_true", help="synthetic rows by SQL even for small --n")
    ap.add_argument("--rows-above", type=int, default=20_000,
                    help="use SQL rows above this many memes (ingesting images is too slow)")
    ap.add_argument("--images", type=int, default=1000, help="image pool for SQL rows")
    ap.add_argument("--map-points", default=None, help="passed to `memeatlas report --map-points`")
    ap.add_argument("--keep", action="store_true", help="keep the SQL store (default: delete it)")
    args = ap.parse_args()
    os.environ.setdefault("MEMEATLAS_NO_PROGRESS", "1")
    result: dict = {}
    if args.html:
        html = args.html
    elif args.sql_rows or args.n > args.rows_above:
        args.work.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        store, run, db = make_sql_store(args.work, args.n, args.clusters, args.images)
        store.close()
        result["setup_s"] = round(time.perf_counter() - t, 1)
        result["db_mb"] = round(db.stat().st_size / 1e6, 1)
        html = args.work / f"report-sql-{args.n}.html"
        extra = ["--map-points", str(args.map_points)] if args.map_points is not None else []
        result.update(build_cli(db, run, html, extra))
        if not args.keep:
            db.unlink()
    else:
        from memeatlas.report import build

        args.work.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        store, run = make_store(args.work, args.n, args.clusters)
        result["setup_s"] = round(time.perf_counter() - t, 1)
        html = args.work / f"report-{args.n}.html"
        s = build(store, run, html)
        result.update({"memes": s.n_memes, "clusters": s.n_clusters, "thumbnails": s.n_thumbnails,
                       "build_s": round(s.seconds, 2)})
        store.close()
    result["report"] = str(html)
    result["size_mb"] = round(html.stat().st_size / 1e6, 2)
    times = open_times(html, args.repeat)
    result["open_s_median"] = round(statistics.median(times), 2)
    result["open_s_all"] = [round(t, 2) for t in times]
    result["load_average"] = os.getloadavg()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
