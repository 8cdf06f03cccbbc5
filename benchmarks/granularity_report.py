"""The report's granularity panel on real data, as a figure for docs/cluster.md.

    python benchmarks/granularity_report.py [--set imgflip-title-box] [--stability 3]
                                            [--out docs/img/cluster-granularity.png]

Needs the cache of benchmarks/granularity_data.py. Builds a store from the cached ImgFlip
vectors (template in memes.meta), runs the default cluster with `--stability`, two fixed-size
runs, scores all three against the template (`evaluate labels`), writes the report and
screenshots its "granularity" panel in Debian's headless chromium.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

from granularity import _store_with  # noqa: E402
from granularity_data import DEFAULT_CACHE, load  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--set", default="imgflip-title-box")
    ap.add_argument("--stability", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "cluster-granularity.png")
    a = ap.parse_args()
    from helpers_report import launch_browser
    from playwright.sync_api import sync_playwright

    from memeatlas.cluster import ClusterConfig, run
    from memeatlas.evaluate.external import labels
    from memeatlas.report import build

    d = load(a.cache, a.set)
    with tempfile.TemporaryDirectory() as tmp:
        store, ids = _store_with(Path(tmp) / "g.duckdb", d["vectors"])
        for mid, t in zip(ids, d["labels"], strict=True):
            store.execute("UPDATE memes SET meta = ? WHERE meme_id = ?",
                          [json.dumps({"template": str(t)}), mid])
        [auto] = run(store, ClusterConfig(spaces=["text:bench"], stability=a.stability))
        fixed = [run(store, ClusterConfig(spaces=["text:bench"], min_cluster_size=s,
                                          layout=False))[0] for s in (40, 100)]
        res = labels(store, [auto, *fixed], "meta.template")
        for r in res.rows:
            if r["scope"] == "all":
                print(r["run"], r["clusters"], round(r["ari"], 3), round(r["nmi"], 3))
        html = Path(tmp) / "report.html"
        build(store, auto, html, max_thumbs=0)
        store.close()
        a.out.parent.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as p:
            b = launch_browser(p)
            page = b.new_page(viewport={"width": 1360, "height": 1000})
            page.goto(html.as_uri())
            page.wait_for_selector("body[data-ready='1']")
            page.locator("#granularity-panel").screenshot(path=str(a.out))
            b.close()
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
