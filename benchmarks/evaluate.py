"""Timing of the evaluate step at corpus scale (no models): sampling, import, agreement, quality.

    python benchmarks/evaluate.py [--memes 100000] [--pairs 5000] [--runs 3] [--bootstrap 2000]

Builds a temp database with `--memes` memes and `--runs` planted clusterings (clusters of ~200,
10 % noise), samples a stratified pair set, writes two coders' filled sheets, imports them, and times
agreement and quality (CQ + every ΔCQ with B bootstrap resamples).
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from memeatlas.evaluate import agreement, import_ratings, quality, sample_pairs
from memeatlas.store import Store


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--memes", type=int, default=100_000)
    ap.add_argument("--pairs", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bootstrap", type=int, default=2000)
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="memeatlas-evalbench-"))
    store = Store.open(work / "bench.duckdb")
    rng = np.random.default_rng(0)
    n = args.memes
    ids = [f"{i:064x}" for i in range(n)]
    truth = rng.integers(0, max(2, n // 200), n)
    con = store.con
    con.register("_m", pa.table({"meme_id": ids, "path": [f"/x/{i}.png" for i in range(n)]}))
    store.execute("INSERT INTO memes (meme_id, path, source, has_image) SELECT meme_id, path, 'folder', true FROM _m")
    runs = []
    for r in range(args.runs):
        lab = truth.copy()
        flip = rng.random(n) < 0.1 * (r + 1)
        lab[flip] = rng.integers(0, truth.max() + 1, flip.sum())
        lab[rng.random(n) < 0.1] = -1
        rid = f"run{r}"
        store.execute("INSERT INTO cluster_runs (run_id, space, algorithm) VALUES (?, 'bench', 'planted')", [rid])
        con.register("_a", pa.table({"meme_id": ids, "cluster": lab.astype(np.int32)}))
        store.execute(f"INSERT INTO cluster_assignments (run_id, meme_id, cluster) SELECT '{rid}', meme_id, cluster FROM _a")
        con.unregister("_a")
        runs.append(rid)
    t = {}
    t0 = time.perf_counter()
    sample_pairs(store, runs, n=args.pairs, strategy="stratified", pair_set="b", sheet=work / "sheet.csv")
    t["sample + sheet"] = time.perf_counter() - t0
    idx = {m: i for i, m in enumerate(ids)}
    rows = list(csv.reader((work / "sheet.csv").open()))
    t0 = time.perf_counter()
    for coder in ("c1", "c2"):
        with (work / f"{coder}.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(rows[0])
            for row in rows[1:]:
                same = truth[idx[row[1]]] == truth[idx[row[2]]]
                v = 3 if same else 1
                v = 2 if rng.random() < 0.2 else v
                w.writerow(row[:5] + [v, v])
        import_ratings(store, work / f"{coder}.csv", pair_set="b", coder=coder)
    t["import 2 sheets"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    agreement(store, "b", bootstrap=1000)
    t["agreement (B=1000)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    q = quality(store, runs, "b", bootstrap=args.bootstrap)
    t[f"quality ({len(runs)} runs, {len(runs) * (len(runs) - 1) // 2} deltas, 2 dims, B={args.bootstrap})"] = (
        time.perf_counter() - t0)
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"memes {n}, pairs {args.pairs}, runs {args.runs}; load average {' '.join(load)}")
    for k, v in t.items():
        print(f"  {k:55s} {v:7.2f} s")
    print("  CQ " + ", ".join(f"{r['run']} {r['value']:.3f}" for r in q.rows
                              if r["metric"] == "cq" and r["dimension"] == "connotative"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
