"""Where the 2-D map layout's time goes, and what starting it from the reduction saves.

    python benchmarks/cluster_layout.py --n 20000 [--dim 384] [--out benchmarks/results/scale.md]

On N synthetic 384-d unit vectors (benchmarks/cluster.py's generator) with one k-NN: the 5-D
UMAP reduction, then the 2-D layout twice, (a) as today, a second full UMAP with spectral init,
and (b) started from the reduction's principal components (`reduce.init_from`), same graph,
epochs and seed. Quality of each layout: the share of each point's 15 nearest neighbours in
the vectors that stay among its 15 nearest on the map, and the adjusted Rand index between
HDBSCAN on the reduction and the synthetic truth (unchanged: the layout does not cluster).
A third layout starts from the reduction with `--short-epochs` (50) epochs: an arrangement that
starts optimised needs fewer epochs to settle.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def synthetic(n: int, dim: int, n_clusters: int = 50, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    lab = rng.integers(0, n_clusters, n)
    latent = 8
    basis = rng.normal(size=(n_clusters, latent, dim)) / np.sqrt(dim)
    z = rng.normal(size=(n, latent))
    x = centres[lab] + 0.35 * np.einsum("nl,nld->nd", z, basis[lab]) * np.sqrt(dim / latent) \
        + 0.05 * rng.normal(size=(n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), lab


def knn_kept(x: np.ndarray, xy: np.ndarray, idx: np.ndarray, k: int = 15, sample: int = 2000
             ) -> float:
    rng = np.random.default_rng(1)
    rows = rng.choice(x.shape[0], size=min(sample, x.shape[0]), replace=False)
    d = ((xy[rows, None, :] - xy[None, :, :]) ** 2).sum(-1)
    near = np.argsort(d, axis=1)[:, 1:k + 1]
    return float(np.mean([len(set(near[i]) & set(idx[r, 1:k + 1])) / k
                          for i, r in enumerate(rows)]))


def spectral_only(x: np.ndarray) -> None:
    """Seconds of the pieces UMAP runs before its epochs: the graph and the spectral init."""
    from memeatlas.cluster.knn import knn
    from memeatlas.cluster.numba_cache import import_umap

    import_umap()
    from umap.spectral import spectral_layout
    from umap.umap_ import fuzzy_simplicial_set

    t0 = time.perf_counter()
    (idx, d), method = knn(x, 15)
    print(f"knn ({method}) {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    g, _, _ = fuzzy_simplicial_set(x, 15, 42, "cosine", knn_indices=idx, knn_dists=d)
    print(f"fuzzy graph {time.perf_counter() - t0:.1f} s")
    for dim in (5, 2):
        t0 = time.perf_counter()
        spectral_layout(x, g, dim, np.random.RandomState(42))
        print(f"spectral init {dim}-D {time.perf_counter() - t0:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--short-epochs", type=int, default=50)
    ap.add_argument("--spectral-only", action="store_true",
                    help="only time the fuzzy graph and umap's spectral_layout (5-D, 2-D)")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    from sklearn.metrics import adjusted_rand_score

    from memeatlas.cluster import algorithms
    from memeatlas.cluster.knn import knn
    from memeatlas.cluster.numba_cache import import_umap
    from memeatlas.cluster.reduce import init_from, umap_reduce

    x, truth = synthetic(a.n, a.dim)
    if a.spectral_only:
        spectral_only(x)
        return
    t = {}
    t0 = time.perf_counter()
    import_umap()
    t["import"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    (idx, dist), method = knn(x, 16)
    t[f"knn ({method})"] = time.perf_counter() - t0
    kw = dict(n_neighbors=15, seed=42, n_epochs=200)
    t0 = time.perf_counter()
    red = umap_reduce(x, (idx, dist), n_components=5, min_dist=0.0, **kw)
    t["umap 5-D"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    labels, _, _ = algorithms.run_hdbscan(red, {"min_cluster_size": max(5, min(50, a.n // 100))},
                                          idx, 42)
    t["hdbscan"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    xy_spec = umap_reduce(x, (idx, dist), n_components=2, min_dist=0.1, **kw)
    t["layout, spectral init"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    xy_red = umap_reduce(x, (idx, dist), n_components=2, min_dist=0.1,
                         init=init_from(red, 2), **kw)
    t["layout, init from reduction"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    xy_short = umap_reduce(x, (idx, dist), n_components=2, min_dist=0.1,
                           init=init_from(red, 2), n_neighbors=15, seed=42,
                           n_epochs=a.short_epochs)
    t[f"layout, init from reduction, {a.short_epochs} epochs"] = time.perf_counter() - t0
    q_spec, q_red = knn_kept(x, xy_spec, idx), knn_kept(x, xy_red, idx)
    q_short = knn_kept(x, xy_short, idx)
    ari = adjusted_rand_score(truth, labels)
    lines = [f"### Layout init, n = {a.n:,} × {a.dim} (synthetic, 50 clusters)", "",
             f"`python benchmarks/cluster_layout.py --n {a.n}`", "",
             "| step | seconds |", "| --- | ---: |"]
    lines += [f"| {k} | {v:.1f} |" for k, v in t.items()]
    lines += ["", f"15-NN kept on the map (share of each point's 15 nearest neighbours in the "
                  f"vectors that are among its 15 nearest on the map, 2,000 points): spectral "
                  f"init {q_spec:.3f}, init from reduction {q_red:.3f}, init from reduction "
                  f"with {a.short_epochs} epochs {q_short:.3f}. HDBSCAN ARI vs the synthetic "
                  f"truth {ari:.3f} (the layout does not change the labels).", ""]
    text = "\n".join(lines)
    print(text)
    if a.out:
        with a.out.open("a") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
