"""UMAP reductions: the few-dimensional space that is clustered and the 2-D map layout.

Both fits reuse one precomputed cosine k-NN (see knn.py) and one fuzzy graph and spectral init
(umap_sgd.SharedGraph), and run UMAP's SGD on every core while staying reproducible: the same
inputs and seed give the same coordinates, whatever the number of threads (umap_sgd.py).
numba's disk cache (numba_cache.py) keeps compilation out of all but the first process.
"""

from __future__ import annotations

import warnings

import numpy as np


def init_from(reduction: np.ndarray, n_components: int) -> np.ndarray:
    """A starting layout taken from an already optimised UMAP reduction: its first principal
    components, scaled into the [0, 10] box umap-learn puts its spectral init in.

    The 2-D map then starts from the clustered reduction's arrangement instead of solving a
    second spectral embedding of the same graph, which at 10^5+ points is the larger part of
    the layout's time (benchmarks/cluster_layout.py)."""
    p = _pca(np.asarray(reduction, dtype=np.float64), n_components).astype(np.float64)
    p -= p.min(axis=0, keepdims=True)
    span = p.max(axis=0, keepdims=True)
    span[span == 0] = 1.0
    return np.ascontiguousarray(10.0 * p / span, dtype=np.float32)


def umap_reduce(x: np.ndarray, knn: tuple[np.ndarray, np.ndarray], *, n_components: int,
                n_neighbors: int, min_dist: float, seed: int, n_epochs: int | None,
                init: np.ndarray | None = None, shared=None) -> np.ndarray:
    """UMAP (cosine) of unit rows `x` to `n_components` dims; float32 [n, n_components].

    `init`: starting coordinates [n, n_components] (see `init_from`) instead of the spectral
    init. `shared`: a `umap_sgd.SharedGraph` of the same points and k-NN, so that several
    reductions build the graph and spectral init once. Tiny inputs (fewer than
    n_components + 2 points, where the spectral init cannot work) are returned as the first
    components of a PCA instead.
    """
    n = x.shape[0]
    if n < max(n_components + 2, 4):
        return _pca(x, n_components)
    from memeatlas.cluster.numba_cache import import_umap

    import_umap()
    from memeatlas.cluster import umap_sgd

    k = max(2, min(n_neighbors, n - 1))
    if shared is None or shared.n_neighbors != k:
        idx, dist = knn
        shared = umap_sgd.SharedGraph(x, (idx[:, :k], dist[:, :k]), k)
    with warnings.catch_warnings():
        # umap-learn's spectral init warns (and falls back to a random start) when the
        # eigensolver does not converge; the run still records its parameters.
        warnings.simplefilter("ignore")
        emb = umap_sgd.embed(shared, n_components=n_components, min_dist=min_dist, seed=seed,
                             n_epochs=n_epochs, init=init)
    return np.ascontiguousarray(emb, dtype=np.float32)


def _pca(x: np.ndarray, n_components: int) -> np.ndarray:
    xc = x - x.mean(axis=0, keepdims=True)
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    out = np.zeros((x.shape[0], n_components), dtype=np.float32)
    m = min(n_components, u.shape[1])
    out[:, :m] = u[:, :m] * s[:m]
    return out
