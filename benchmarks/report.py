"""Report size, build time and open time in headless Chromium, for N memes.

    python benchmarks/report.py --n 5000            # synthetic corpus of 5,000 memes
    python benchmarks/report.py --html memeatlas-demo/report.html   # time an existing report

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
    args = ap.parse_args()
    os.environ.setdefault("MEMEATLAS_NO_PROGRESS", "1")
    result: dict = {}
    if args.html:
        html = args.html
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
