"""`memeatlas cluster` side by side with bare umap-learn + hdbscan on real caption vectors.

    python benchmarks/cluster_bare.py --n 200000 [--out benchmarks/results/scale.md]
    python benchmarks/cluster.py --bare --n 200000             # the same, through cluster.py
    python benchmarks/cluster_bare.py --data real-scaled --n 1000000 --ours-runs 1
    python benchmarks/cluster_bare.py --data interpolated --n 1000000   # the stress case

Data (`--data`):
- `real` (the default): the first N distinct ImgFlip captions of
  ../shared/data/imgflip/captions-200k.jsonl.gz (title + boxes as the file gives them; 200,000
  in all), embedded once with the bundled all-MiniLM-L6-v2 and cached OUTSIDE the repository
  in ~/.cache/memeatlas/bench (MEMEATLAS_BENCH_CACHE overrides) as
  captions200k-minilm-N.npy; the template of each caption is its label for ARI.
- `real-scaled`: the 200,000 real captions, and above 200,000 points placed between
  neighbouring real captions (`scaled_up` on the real base): the 10⁶ measurement of issue 26.
- `interpolated`: a STRESS CASE, not real captions. 20,000 ImgFlip captions
  (captions.jsonl.gz) embedded with MiniLM; above 20,000 the rest lie between neighbouring
  captions (`scaled_up`), each keeping its caption's template. umap-learn's spectral init is
  unusually slow on that structure, so bare times on it overstate what users see on real
  data (the 0.20× quoted before issue 26 came from it).

Per N, each in a fresh process, peak RSS by /usr/bin/time, the 1-minute load average
recorded before each run:
- `memeatlas cluster` (once or twice, `--ours-runs`) on a DuckDB store holding the vectors (a
  second process has the numba cache warm, as every run after a machine's first does);
  defaults: automatic min_cluster_size, 5-D reduction, 2-D map.
- bare: `umap.UMAP(n_components=5, min_dist=0, metric="cosine")`, `hdbscan.HDBSCAN(
  min_cluster_size=<what memeatlas chose>, min_samples=5, prediction_data=True)`, then
  `umap.UMAP(n_components=2, min_dist=0.1, metric="cosine")`: the same outputs, from a .npy
  file (no database). ALWAYS both modes: `seeded` (random_state=42: umap-learn's
  reproducible, single-threaded SGD) and `unseeded` (no random_state: umap-learn's
  multi-threaded, non-reproducible SGD; BERTopic's default path, what most users run).

Quality beside time: ARI of each clustering against the caption templates and between the
two, and the share of each point's 15 nearest neighbours (cosine, in the vectors) that stay
among its 15 nearest on the 2-D map (2,000 points).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CACHE = Path.home() / ".cache" / "memeatlas-bench" / "scale"
BASE_N = 20_000

BARE = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np, umap, hdbscan
x = np.load(sys.argv[1]); mcs = int(sys.argv[2]); seeded = sys.argv[3] == "seeded"
kw = dict(metric="cosine", n_neighbors=15, n_epochs=200)
if seeded:
    kw["random_state"] = 42
t1 = time.perf_counter()
print(f"STAGE load {t1 - t0:.1f}", flush=True)
r5 = umap.UMAP(n_components=5, min_dist=0.0, **kw).fit_transform(x)
t2 = time.perf_counter()
print(f"STAGE umap {t2 - t1:.1f}", flush=True)
cl = hdbscan.HDBSCAN(min_cluster_size=mcs, min_samples=5, prediction_data=True).fit(r5)
t3 = time.perf_counter()
print(f"STAGE hdbscan {t3 - t2:.1f}", flush=True)
r2 = umap.UMAP(n_components=2, min_dist=0.1, **kw).fit_transform(x)
t4 = time.perf_counter()
np.savez(sys.argv[4], labels=cl.labels_, xy=r2)
print("BARE " + json.dumps({"load": t1 - t0, "umap": t2 - t1, "hdbscan": t3 - t2,
                            "layout": t4 - t3}))
"""


CAPTIONS = ("imgflip", "captions-200k.jsonl.gz")
REAL_CACHE = Path(os.environ.get("MEMEATLAS_BENCH_CACHE",
                                 Path.home() / ".cache" / "memeatlas" / "bench"))
CHUNK = 2_000
REAL_N = 200_000  # distinct captions in captions-200k.jsonl.gz


def caption_text(row: dict) -> str:
    """A caption as the file gives it: the template title, then each non-empty box."""
    return (f"{row.get('title') or ''}\n"
            + "\n".join(b for b in row.get("boxes") or [] if b)).strip()


def real_captions(n: int) -> tuple[list[str], np.ndarray]:
    """The first n distinct captions of ../shared/data/imgflip/captions-200k.jsonl.gz (file
    order; a caption whose text repeats an earlier one is skipped) and their templates."""
    import gzip

    from memeatlas.testing.shared_data import shared_path

    p = shared_path(*CAPTIONS)
    if p is None:
        raise SystemExit("needs ../shared/data/" + "/".join(CAPTIONS)
                         + " (or MEMEATLAS_SHARED_DATA); use --data interpolated without it")
    texts: list[str] = []
    templates: list[str] = []
    seen: set[str] = set()
    with gzip.open(p, "rt", encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            row = json.loads(line)
            t = caption_text(row)
            if not t or t in seen:
                continue
            seen.add(t)
            texts.append(t)
            templates.append(row["template"])
            if len(texts) >= n:
                break
    if len(texts) < n:
        raise SystemExit(f"the file has only {len(texts):,} distinct captions, asked for {n:,}")
    return texts, np.array(templates, dtype=object)


def real_vectors(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(n × 384 MiniLM vectors of the first n distinct real captions, their templates).

    Embedded once with the bundled all-MiniLM-L6-v2 and cached outside the repository in
    REAL_CACHE (~/.cache/memeatlas/bench; MEMEATLAS_BENCH_CACHE overrides): chunks of 2,000
    rows (so an interrupted embedding resumes, and a larger N reuses a smaller one's rows, the
    captions being a prefix of the file), and the whole as captions200k-minilm-N.npy.
    """
    texts, templates = real_captions(n)
    whole = REAL_CACHE / f"captions200k-minilm-{n}.npy"
    if whole.exists():
        return np.load(whole), templates
    chunks = REAL_CACHE / "captions200k-minilm-chunks"
    chunks.mkdir(parents=True, exist_ok=True)
    parts = []
    enc = None
    t0 = time.perf_counter()
    for c, a in enumerate(range(0, n, CHUNK)):
        f = chunks / f"{c:05d}.npy"
        if f.exists() and np.load(f, mmap_mode="r").shape[0] == len(texts[a:a + CHUNK]):
            parts.append(np.load(f))
            continue
        if enc is None:
            from memeatlas.embed.text import get_text_encoder
            enc = get_text_encoder(None)
        v = enc.encode(texts[a:a + CHUNK], batch_size=64).astype(np.float32)
        np.save(f, v)
        parts.append(v)
        print(f"# embedded rows {a:,}-{a + v.shape[0]:,} ({time.perf_counter() - t0:.0f}s)",
              file=sys.stderr, flush=True)
    x = np.concatenate(parts)[:n]
    np.save(whole, x)
    return x, templates


def base_vectors() -> tuple[np.ndarray, np.ndarray]:
    """(20,000 × 384 MiniLM vectors of ImgFlip captions, their templates), cached."""
    path = CACHE / f"imgflip-title-box-{BASE_N}.npz"
    if not path.exists():
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from granularity_data import _imgflip

        from memeatlas.embed.text import get_text_encoder

        rows, templates = _imgflip(BASE_N, 0)
        texts = [(f"{r.get('title') or ''}\n" + "\n".join(b for b in r["boxes"] if b)).strip()
                 for r in rows]
        t0 = time.perf_counter()
        vec = get_text_encoder(None).encode(texts, batch_size=64)
        print(f"# embedded {len(texts)} captions in {time.perf_counter() - t0:.0f}s",
              file=sys.stderr)
        CACHE.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, texts=np.array(texts, dtype=object), vectors=vec,
                            labels=np.array(templates, dtype=object))
    d = np.load(path, allow_pickle=True)
    return d["vectors"].astype(np.float32), d["labels"]


def scaled_up(n: int, seed: int = 0, base: tuple[np.ndarray, np.ndarray] | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """n unit vectors that fill the real captions' manifold; and their templates.

    The first m are the real vectors of `base` (default: 20,000 captions, `base_vectors`). Each further point starts from a real caption i and
    moves part of the way toward one of its 15 nearest captions j: normalise(a·v_i + (1−a)·v_j),
    a ~ U(0.5, 1), plus a little Gaussian noise (σ = 0.01 per dimension), and keeps i's
    template. Plain jittered copies (the first attempt) made each caption's copies a tight
    clique of their own: HDBSCAN then finds one cluster per caption and the graph falls into
    thousands of components, which measures a degenerate case, not a corpus.
    """
    from memeatlas.cluster.knn import exact_knn, ivf_knn

    base, labels = base if base is not None else base_vectors()
    m = base.shape[0]
    if m <= 50_000:
        nb, _ = exact_knn(base, 16, include_self=False)
    else:  # approximate neighbours are enough to place new points between captions
        nb = ivf_knn(base, 16, seed)[0][:, 1:]
    rng = np.random.default_rng(seed)
    src = np.arange(n) % m
    x = np.empty((n, base.shape[1]), dtype=np.float32)
    x[:min(n, m)] = base[:min(n, m)]
    for a in range(m, n, 50_000):
        b = min(n, a + 50_000)
        i = src[a:b]
        j = nb[i, rng.integers(0, nb.shape[1], b - a)]
        w = rng.uniform(0.5, 1.0, size=(b - a, 1)).astype(np.float32)
        blk = w * base[i] + (1 - w) * base[j] + rng.normal(
            scale=0.01, size=(b - a, base.shape[1])).astype(np.float32)
        x[a:b] = blk / np.linalg.norm(blk, axis=1, keepdims=True)
    return x, labels[src]


def write_store(path: Path, x: np.ndarray, model: str = "all-MiniLM-L6-v2") -> None:
    """A new store at `path` whose memes have the rows of `x` in space text:bench."""
    import pyarrow as pa

    from memeatlas.store import Store

    n, dim = x.shape
    ids = [f"{i:064x}" for i in range(n)]  # sorted like the rows of x
    with Store.open(path, create=True) as s:
        s.execute("INSERT INTO embedding_spaces (space, kind, model, dim, params) VALUES "
                  "('text:bench', 'text', ?, ?, '{}')", [model, dim])
        for a in range(0, n, 100_000):
            b = min(n, a + 100_000)
            tbl = pa.table({"meme_id": ids[a:b], "vector": pa.FixedSizeListArray.from_arrays(
                pa.array(x[a:b].reshape(-1)), dim).cast(pa.list_(pa.float32()))})
            with s.registered("_bench", tbl):
                s.execute("INSERT INTO memes (meme_id, source, has_image) SELECT meme_id, "
                          "'bench', false FROM _bench")
                s.execute("INSERT INTO embeddings (meme_id, space, model, dim, vector) SELECT "
                          "meme_id, 'text:bench', ?, ?, vector FROM _bench", [model, dim])


def timed(cmd: list[str], env: dict[str, str], timeout: float | None = None
          ) -> tuple[float, float, str, bool]:
    """(wall seconds, peak RSS MiB, stdout + stderr, finished) of a fresh process; one that
    runs past `timeout` is killed (finished False, RSS unknown)."""
    t0 = time.perf_counter()
    try:
        p = subprocess.run(["/usr/bin/time", "-f", "MAXRSS_KB=%M", *cmd], env=env,
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        subprocess.run(["pkill", "-f", cmd[-1]], check=False)  # the child under /usr/bin/time
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        return time.perf_counter() - t0, float("nan"), out, False
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{p.stderr[-3000:]}")
    rss = [ln for ln in p.stderr.splitlines() if ln.startswith("MAXRSS_KB=")]
    return (wall, int(rss[-1].split("=")[1]) / 1024 if rss else float("nan"),
            p.stdout + p.stderr, True)


def newest_run(db: Path) -> dict:
    from memeatlas.store import Store

    with Store.open(db, read_only=True) as s:
        run_id, params, timings = s.execute(
            "SELECT run_id, params, timings FROM cluster_runs ORDER BY created_at DESC "
            "LIMIT 1").fetchone()
        rows = s.execute("SELECT cluster, x, y FROM cluster_assignments WHERE run_id = ? "
                         "ORDER BY meme_id", [run_id]).fetchall()
    a = np.array(rows, dtype=np.float64)
    return {"run_id": run_id, "params": json.loads(params), "timings": json.loads(timings),
            "labels": a[:, 0].astype(np.int64), "xy": a[:, 1:3]}


def map_kept(x: np.ndarray, xy: np.ndarray, k: int = 15, sample: int = 2000) -> float:
    """Share of each sampled point's k nearest (cosine) neighbours kept among its k nearest
    on the map."""
    rng = np.random.default_rng(1)
    rows = rng.choice(x.shape[0], size=min(sample, x.shape[0]), replace=False)
    true = np.empty((rows.size, k), dtype=np.int64)
    for a in range(0, rows.size, 100):  # 100 × N similarities at a time
        sims = x[rows[a:a + 100]] @ x.T
        sims[np.arange(sims.shape[0]), rows[a:a + 100]] = -np.inf
        true[a:a + 100] = np.argpartition(-sims, k, axis=1)[:, :k]
    d = ((xy[rows, None, :] - xy[None, :, :]) ** 2).sum(-1) if x.shape[0] <= 50_000 else None
    kept = []
    for i, r in enumerate(rows):
        dr = d[i] if d is not None else ((xy - xy[r]) ** 2).sum(1)
        dr[r] = np.inf
        near = np.argpartition(dr, k)[:k]
        kept.append(len(set(near.tolist()) & set(true[i].tolist())) / k)
    return float(np.mean(kept))


BARE_MODES = ("seeded", "unseeded")
DATA = {"real": "the first N distinct real ImgFlip captions of captions-200k.jsonl.gz "
                "(title + boxes), MiniLM",
        "real-scaled": "the 200,000 real captions of captions-200k (MiniLM), and above that "
                       "points interpolated between neighbouring real captions (scaled_up)",
        "interpolated": "STRESS CASE: 20,000 real ImgFlip captions + points interpolated "
                        "between neighbouring captions (scaled_up), MiniLM"}


def vectors(data: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(n × 384 vectors, their templates) for `--data real`, `real-scaled` or `interpolated`."""
    if data == "real":
        return real_vectors(n)
    if data == "real-scaled":
        base = real_vectors(REAL_N)
        return base if n <= REAL_N else scaled_up(n, base=base)
    if data == "interpolated":
        return scaled_up(n)
    raise ValueError(f"unknown data {data!r}; choose from {sorted(DATA)}")


def load1() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def side_by_side(ns: list[int], *, workdir: Path | None, out: Path | None,
                 data: str = "real", ours_runs: int = 2,
                 bare_timeout: float | None = None, bare_timeout_ratio: float | None = None,
                 bare_modes: tuple[str, ...] = BARE_MODES) -> None:
    """Run the table for each N (see the module docstring); append it to `out`. A bare run
    past `bare_timeout` seconds (or `bare_timeout_ratio` × memeatlas's time) is stopped and
    reported as "> seconds": enough to show a ratio without waiting for the end. Both bare
    modes (seeded, unseeded) run for every N."""
    from sklearn.metrics import adjusted_rand_score as ari

    work = workdir or Path(tempfile.mkdtemp(prefix="memeatlas-bench-bare-"))
    work.mkdir(parents=True, exist_ok=True)
    exe = str(Path(sys.executable).with_name("memeatlas"))
    env = dict(os.environ, MEMEATLAS_NO_PROGRESS="1", HF_HUB_OFFLINE="1")
    lines = [f"data: {DATA[data]} (`--data {data}`); cpus: {os.cpu_count()}; "
             "load average before: " + " ".join(f"{v:.2f}" for v in os.getloadavg()), "",
             "| N | process | load 1-min before | wall s | reduce 5-D s | hdbscan s | "
             "map 2-D s | k-NN s | peak RSS MiB | clusters | noise | ARI vs templates | "
             "ARI vs memeatlas | map 15-NN kept | time / memeatlas |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    print("\n".join(lines), flush=True)
    for n in ns:
        x, templates = vectors(data, n)
        db = work / f"bare-{data}-{n}.duckdb"
        npy = work / f"bare-{data}-{n}.npy"
        if not db.exists():
            t0 = time.perf_counter()
            write_store(db, x)
            print(f"# wrote {db} in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
        np.save(npy, x)
        ours_wall = None
        for which in ("first", "second")[:ours_runs]:
            load = load1()
            wall, rss, _, _ = timed([exe, "cluster", "--db", str(db), "--space",
                                     "text:bench", "--force"], env)
            run = newest_run(db)
            t = run["timings"]
            lab = run["labels"]
            ours_wall = wall
            lines.append(
                f"| {n:,} | memeatlas, {which} process | {load} | {wall:.0f} | {t.get('umap', 0):.0f} | "
                f"{t.get('cluster', 0):.0f} | {t.get('layout', 0):.0f} | {t.get('knn', 0):.0f} "
                f"| {rss:,.0f} | {lab.max() + 1} | {np.mean(lab < 0):.2f} | "
                f"{ari(templates, lab):.3f} | | {map_kept(x, run['xy']):.3f} | 1.00 |")
            print(lines[-1], flush=True)
        mcs = int(run["params"]["min_cluster_size"])
        for mode in bare_modes:
            res = work / f"bare-{data}-{n}-{mode}.npz"
            load = load1()
            wall, rss, text, done = timed([sys.executable, "-c", BARE, str(npy), str(mcs),
                                           mode, str(res)], env,
                                          timeout=bare_timeout or (
                                              bare_timeout_ratio * ours_wall
                                              if bare_timeout_ratio else None))
            if not done:
                stages = [ln.split() for ln in text.splitlines() if ln.startswith("STAGE ")]
                got = {st[1]: float(st[2]) for st in stages}
                lines.append(
                    f"| {n:,} | bare umap-learn + hdbscan, {mode} | {load} | > {wall:.0f} (stopped) | "
                    f"{got.get('umap', float('nan')):.0f} | {got.get('hdbscan', float('nan')):.0f}"
                    f" | | (in UMAP) | | | | | | | > {wall / ours_wall:.2f} |")
                print(lines[-1], flush=True)
                continue
            t = json.loads(next(ln for ln in text.splitlines() if ln.startswith("BARE "))[5:])
            b = np.load(res)
            bl = b["labels"]
            lines.append(
                f"| {n:,} | bare umap-learn + hdbscan, {mode} | {load} | {wall:.0f} | "
                f"{t['umap']:.0f} | "
                f"{t['hdbscan']:.0f} | {t['layout']:.0f} | (in UMAP) | {rss:,.0f} | "
                f"{bl.max() + 1} | {np.mean(bl < 0):.2f} | {ari(templates, bl):.3f} | "
                f"{ari(lab, bl):.3f} | {map_kept(x, b['xy']):.3f} | "
                f"{wall / ours_wall:.2f} |")
            print(lines[-1], flush=True)
        npy.unlink(missing_ok=True)
    lines += ["", "memeatlas's 2-D map runs in a thread beside HDBSCAN (fit._Background): its "
              "'map 2-D s' and 'hdbscan s' overlap, and the wall time is less than the stages' sum.",
              "", "load average after: " + " ".join(f"{v:.2f}" for v in os.getloadavg()),
              f"min_cluster_size for bare: memeatlas's automatic choice; data: {DATA[data]}"]
    if out:
        with out.open("a") as f:
            f.write(f"\n`python benchmarks/cluster_bare.py {' '.join(sys.argv[1:])}` "
                    f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n\n")
            f.write("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[200_000])
    ap.add_argument("--data", choices=sorted(DATA), default="real",
                    help="real: the first N distinct captions of captions-200k (default); "
                         "interpolated: the stress case (points between 20,000 captions)")
    ap.add_argument("--ours-runs", type=int, default=2, choices=[1, 2],
                    help="memeatlas processes per N (1: only the first; the numba cache is "
                         "warm when an earlier run on this machine compiled it)")
    ap.add_argument("--bare-timeout", type=float, default=None,
                    help="stop a bare run after this many seconds and report a lower bound")
    ap.add_argument("--bare-timeout-ratio", type=float, default=None,
                    help="stop a bare run after this multiple of memeatlas's time")
    ap.add_argument("--bare-modes", nargs="*", choices=BARE_MODES, default=list(BARE_MODES),
                    help="bare runs to make (default both; none: memeatlas alone, e.g. at 10^6 "
                         "where the bare runs take far longer than the question needs)")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None, help="append a markdown table here")
    a = ap.parse_args()
    side_by_side(a.n, workdir=a.workdir, out=a.out, data=a.data,
                 ours_runs=a.ours_runs, bare_timeout=a.bare_timeout,
                 bare_timeout_ratio=a.bare_timeout_ratio, bare_modes=tuple(a.bare_modes))


if __name__ == "__main__":
    main()
