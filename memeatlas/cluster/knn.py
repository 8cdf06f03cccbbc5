"""k nearest neighbours under cosine distance, exact (blocked numpy) or approximate (NN-descent).

UMAP accepts these as `precomputed_knn`, which (a) makes the neighbour graph exact and (b)
skips NN-descent, whose run-time-built numba closures cannot be cached on disk (see
`numba_cache.py`). The same k-NN also feeds the per-meme modality weighting and `assign`.
"""

from __future__ import annotations

import numpy as np


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), float32, C-contiguous."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(x / norms, dtype=np.float32)


def exact_knn(x: np.ndarray, k: int, *, queries: np.ndarray | None = None,
              include_self: bool = True, max_block_entries: int = 1 << 24
              ) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine k-NN of unit rows: (indices int32 [n, k], distances float32 [n, k]).

    Distances are 1 − cosine, sorted ascending; ties broken by index so results are
    deterministic. Without `queries` the points query themselves and, with `include_self`, each
    point is its own first neighbour at distance 0 (the convention UMAP's k-NN uses). Queries go
    in row blocks of at most `max_block_entries` similarities (64 MiB), so memory stays
    O(n) whatever N; time is O(n² d) in BLAS plus an O(n²) partial sort.
    """
    xs = normalise(x)
    self_query = queries is None
    q = xs if self_query else normalise(queries)
    n = xs.shape[0]
    k_eff = min(k, n)
    block = max(16, min(4096, max_block_entries // max(n, 1)))
    out_i = np.empty((q.shape[0], k_eff), dtype=np.int32)
    out_d = np.empty((q.shape[0], k_eff), dtype=np.float32)
    for start in range(0, q.shape[0], block):
        stop = min(start + block, q.shape[0])
        neg = q[start:stop] @ xs.T
        np.negative(neg, out=neg)                 # partition ascending = most similar first
        if self_query:
            rows = np.arange(stop - start)
            # Self first (UMAP convention), or excluded entirely.
            neg[rows, np.arange(start, stop)] = -np.inf if include_self else np.inf
        if k_eff < n:
            part = np.argpartition(neg, k_eff - 1, axis=1)[:, :k_eff]
        else:
            part = np.tile(np.arange(n), (stop - start, 1))
        pneg = np.take_along_axis(neg, part, axis=1)
        del neg
        # Sort by similarity desc, then index asc: lexsort keys are last-primary.
        order = np.lexsort((part, pneg), axis=1)
        idx = np.take_along_axis(part, order, axis=1)
        d = 1.0 + np.take_along_axis(pneg, order, axis=1)
        if self_query and include_self:
            d[:, 0] = 0.0
        out_i[start:stop] = idx
        out_d[start:stop] = np.clip(d, 0.0, 2.0)
    return out_i, out_d


def nndescent_knn(x: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Approximate cosine k-NN with pynndescent (for N too large for the exact O(n²) route)."""
    from memeatlas.cluster.numba_cache import import_umap

    import_umap()  # configures numba's cache before pynndescent compiles
    import warnings

    from pynndescent import NNDescent

    with warnings.catch_warnings():
        # "Cannot cache compiled function nn_descent ... dynamic globals": numba's own note that
        # NN-descent's closures stay uncached (see numba_cache.py); not the user's concern.
        warnings.simplefilter("ignore")
        index = NNDescent(normalise(x), n_neighbors=k, metric="cosine", random_state=seed,
                          n_jobs=1, low_memory=True, compressed=True, verbose=False)
        idx, d = index.neighbor_graph
    return idx.astype(np.int32), d.astype(np.float32)


def knn(x: np.ndarray, k: int, *, method: str = "auto", exact_max: int = 20_000,
        seed: int = 42) -> tuple[tuple[np.ndarray, np.ndarray], str]:
    """k-NN (self included) by `method` ('auto' = exact up to `exact_max` points)."""
    n = x.shape[0]
    use_exact = method == "exact" or (method == "auto" and n <= exact_max)
    if use_exact:
        return exact_knn(x, k), "exact"
    return nndescent_knn(x, k, seed), "nndescent"
