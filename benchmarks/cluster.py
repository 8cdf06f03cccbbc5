"""Benchmark `memeatlas cluster`: wall time and peak memory per N, cold vs second process.

    python benchmarks/cluster.py --n 5000 50000 200000 [--dim 384] [--clusters 50]
                                 [--cold] [--vanilla-umap] [--out benchmarks/results/cluster.md]
    python benchmarks/cluster.py --bare --n 200000 [--bare-timeout S] [--data interpolated]
        # side by side with bare umap-learn (seeded and unseeded) + hdbscan on the first N
        # real distinct captions of captions-200k (cluster_bare.py; `--data interpolated`:
        # the stress case of points between 20,000 captions)

For each N a DuckDB file with N synthetic 384-d unit vectors (clusters with low-rank in-cluster
spread, like sentence embeddings) is written once; then `memeatlas cluster --force` runs as a
NEW process (via /usr/bin/time for peak RSS), twice. With `--cold` the first process gets an
empty numba cache dir (MEMEATLAS_NUMBA_CACHE_DIR), so it pays the one-off compilation; the
second process reuses that cache. The split comes from the run's own `timings` column:
umap (reduction), layout (2-D UMAP), hdbscan, knn, and the rest (imports, load, fuse, write).
`--vanilla-umap` also times plain `umap.UMAP(metric="cosine").fit` (NN-descent, no cache
fix) in two fresh processes, to show what the fix removes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from cluster_bare import side_by_side, timed, write_store  # noqa: E402


def make_db(path: Path, n: int, dim: int, n_clusters: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    lab = rng.integers(0, n_clusters, n)
    latent = 8
    basis = rng.normal(size=(n_clusters, latent, dim)) / np.sqrt(dim)
    x = np.empty((n, dim), dtype=np.float32)
    for a in range(0, n, 20000):
        b = min(n, a + 20000)
        z = rng.normal(size=(b - a, latent))
        blk = centres[lab[a:b]] + 0.35 * np.einsum("nl,nld->nd", z, basis[lab[a:b]]) * np.sqrt(
            dim / latent) + 0.05 * rng.normal(size=(b - a, dim))
        x[a:b] = blk / np.linalg.norm(blk, axis=1, keepdims=True)
    write_store(path, x, model="synthetic")


def same_assignments(db: Path) -> bool:
    """Whether the two newest runs put every meme in the same cluster at the same x, y."""
    from memeatlas.store import Store

    with Store.open(db, read_only=True) as s:
        runs = [r[0] for r in s.execute("SELECT run_id FROM cluster_runs ORDER BY created_at "
                                        "DESC LIMIT 2").fetchall()]
        if len(runs) < 2:
            return False
        a, b = (s.execute("SELECT meme_id, cluster, x, y FROM cluster_assignments WHERE "
                          "run_id = ? ORDER BY meme_id", [r]).fetchall() for r in runs)
    return a == b


def last_timings(db: Path) -> dict:
    from memeatlas.store import Store

    with Store.open(db, read_only=True) as s:
        rows = s.execute("SELECT timings, n_clusters, noise_fraction FROM cluster_runs "
                         "ORDER BY created_at DESC LIMIT 1").fetchall()
    t = json.loads(rows[0][0])
    t["n_clusters"], t["noise_fraction"] = rows[0][1], rows[0][2]
    return t


VANILLA = """
import sys, time, numpy as np, duckdb
t0 = time.perf_counter()
import umap
con = duckdb.connect(sys.argv[1], read_only=True)
x = np.asarray(con.execute("SELECT vector FROM embeddings ORDER BY meme_id").df()["vector"].tolist(), dtype=np.float32)
t1 = time.perf_counter()
umap.UMAP(n_components=5, metric="cosine", min_dist=0.0, random_state=42).fit(x)
print(f"VANILLA import={t1 - t0:.1f} fit={time.perf_counter() - t1:.1f}")
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[5000, 50000])
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--clusters", type=int, default=50)
    ap.add_argument("--cold", action="store_true", help="first process with an empty numba cache")
    ap.add_argument("--vanilla-umap", action="store_true")
    ap.add_argument("--bare", action="store_true",
                    help="compare with bare umap-learn + hdbscan on real caption vectors "
                         "(benchmarks/cluster_bare.py; both bare modes)")
    ap.add_argument("--data", choices=["real", "interpolated"], default="real",
                    help="with --bare: real captions (default) or the interpolated stress case")
    ap.add_argument("--bare-timeout", type=float, default=None)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None, help="append a markdown table here")
    args = ap.parse_args()
    if args.bare:
        side_by_side(args.n, workdir=args.workdir, out=args.out, data=args.data,
                     bare_timeout=args.bare_timeout)
        return

    work = args.workdir or Path(tempfile.mkdtemp(prefix="memeatlas-bench-cluster-"))
    work.mkdir(parents=True, exist_ok=True)
    exe = str(Path(sys.executable).with_name("memeatlas"))
    env = dict(os.environ, MEMEATLAS_NO_PROGRESS="1", HF_HUB_OFFLINE="1")
    if args.cold:
        cache = work / "numba-cache"
        shutil.rmtree(cache, ignore_errors=True)
        env["MEMEATLAS_NUMBA_CACHE_DIR"] = str(cache)
    lines = [f"load average before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} "
             f"{os.getloadavg()[2]:.2f}; cpus: {os.cpu_count()}", "",
             "| N | process | wall s | umap s | layout s | hdbscan s | knn s | rest s | "
             "peak RSS MiB | clusters | noise | same result as previous process |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for n in args.n:
        db = work / f"bench-{n}.duckdb"
        if not db.exists():
            t0 = time.perf_counter()
            make_db(db, n, args.dim, args.clusters)
            print(f"# wrote {db} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        for which in ("first", "second"):
            cmd = [exe, "cluster", "--db", str(db), "--space", "text:bench", "--force"]
            wall, rss, _, _ = timed(cmd, env)
            t = last_timings(db)
            rest = wall - t.get("umap", 0) - t.get("layout", 0) - t.get("cluster", 0) - t.get(
                "knn", 0)
            label = ("cold (empty cache)" if which == "first" and args.cold else
                     f"{which} process")
            line = (f"| {n:,} | {label} | {wall:.1f} | {t.get('umap', 0):.1f} | "
                    f"{t.get('layout', 0):.1f} | {t.get('cluster', 0):.1f} | "
                    f"{t.get('knn', 0):.1f} | {rest:.1f} | {rss:,.0f} | {t['n_clusters']} | "
                    f"{t['noise_fraction']:.2f} | "
                    f"{'yes' if same_assignments(db) else 'no'} |")
            lines.append(line)
            print(line, flush=True)
        if args.vanilla_umap:
            venv = dict(env, NUMBA_CACHE_DIR=str(work / "vanilla-numba-cache"))
            venv.pop("MEMEATLAS_NUMBA_CACHE_DIR", None)
            for which in ("first", "second"):
                wall, rss, err, _ = timed([sys.executable, "-c", VANILLA, str(db)], venv)
                v = [ln for ln in err.splitlines() if ln.startswith("VANILLA")]
                out = (f"| {n:,} | vanilla umap.UMAP(cosine).fit, {which} process | {wall:.1f} "
                       f"| {v[-1] if v else ''} | | | | | {rss:,.0f} | | | |")
                lines.append(out)
                print(out, flush=True)
    lines.append("")
    lines.append(f"load average after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} "
                 f"{os.getloadavg()[2]:.2f}")
    if args.out:
        with args.out.open("a") as f:
            f.write(f"\n`{' '.join(['python', 'benchmarks/cluster.py', *sys.argv[1:]])}` "
                    f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n\n")
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
