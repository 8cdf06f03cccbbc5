"""k nearest neighbours under cosine distance: exact (blocked numpy) or approximate (an
inverted-file search with faiss plus neighbour-of-neighbour passes, or NN-descent).

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


#: Inverted lists per √n points, lists probed, k-means iterations and training points per
#: list of `ivf_knn`. Chosen on 100,000 and 200,000 real caption vectors
#: (benchmarks/results/scale.md): with the refinement passes recall@15 ≥ NN-descent's at a
#: fraction of its time, and no compilation. More lists (3–4·√n) were slower at 200,000.
IVF_LISTS_PER_SQRT = 2.0
IVF_NPROBE = 24
IVF_NITER = 10
IVF_TRAIN_PER_LIST = 32
#: Neighbour-of-neighbour passes after the search (knn_kernels.refine): on 50,000 real
#: captions recall@15 0.886 after one pass and 0.893 after two (NN-descent: 0.876), and the
#: 2-D map kept as many true neighbours as with NN-descent's graph only after two.
IVF_REFINE_PASSES = 2


def _unit_rows(x: np.ndarray) -> bool:
    """x is C-contiguous float32 with rows of unit length (to float32 precision)."""
    if x.dtype != np.float32 or not x.flags.c_contiguous or x.ndim != 2:
        return False
    norms = np.einsum("ij,ij->i", x, x)
    return bool(np.all(np.abs(norms - 1.0) < 1e-4))


def _self_first(idx: np.ndarray, sims: np.ndarray, own: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Rows with the query point itself first (distance 0), then the others ascending by
    1 − cosine: exact duplicates can push a point out of its own first place, or out of its
    list."""
    n, k = idx.shape
    own = (np.arange(n, dtype=np.int64) if own is None else own.astype(np.int64))[:, None]
    is_self = idx == own
    d = np.clip(1.0 - sims, 0.0, 2.0).astype(np.float32)
    d[is_self] = -1.0  # sorts first
    missing = ~is_self.any(axis=1)
    idx = idx.copy()
    idx[missing, -1] = own[missing, 0]  # drop the farthest, make room for self
    d[missing, -1] = -1.0
    d[idx < 0] = np.inf  # lists too short to fill k (not reached with the defaults)
    order = np.lexsort((idx, d), axis=1)
    idx = np.take_along_axis(idx, order, axis=1).astype(np.int32)
    d = np.take_along_axis(d, order, axis=1)
    d[:, 0] = 0.0
    return idx, d


def _scan_lists(xs: np.ndarray, k: int, nlist: int, nprobe: int, bounds: np.ndarray,
                by_list: np.ndarray, qbounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each point's k best (indices int32, similarities float32; empty places int32 max and
    −inf) among the points of the lists it probes: one matrix product per list. The rows of
    `xs` are in list order (list j is rows bounds[j]:bounds[j + 1]).

    One Python thread per core scans every T-th list with single-threaded BLAS, into its own
    k-best arrays (knn_kernels.merge_block, without the GIL), and the parts are merged at the
    end. Measured on 200,000 real caption vectors: multi-threaded BLAS alternating with a
    numba kernel made each slow the other (BLAS threads spin between products): 14 s for the
    scan then, about 7 s this way."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    from memeatlas.cluster.knn_kernels import merge_best, merge_block, numba

    n = xs.shape[0]
    none = np.iinfo(np.int32).max
    # numba's thread count: the number NUMBA_NUM_THREADS sets for every kernel of the run
    n_threads = max(1, min(numba.config.NUMBA_NUM_THREADS, nlist))
    parts_i = np.full((n_threads, n, k), none, dtype=np.int32)
    parts_s = np.full((n_threads, n, k), -np.inf, dtype=np.float32)

    def scan(t: int) -> None:
        for lst in range(t, nlist, n_threads):
            a, b = bounds[lst], bounds[lst + 1]
            slots = by_list[qbounds[lst]:qbounds[lst + 1]]
            if a == b or slots.size == 0:
                continue
            pts = (slots // nprobe).astype(np.int32)
            merge_block(xs[pts] @ xs[a:b].T, pts, np.arange(a, b, dtype=np.int32), parts_i[t],
                        parts_s[t])

    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(n_threads) as pool:
        for f in [pool.submit(scan, t) for t in range(n_threads)]:
            f.result()
    best_i, best_s = parts_i[0], parts_s[0]
    if n_threads > 1:
        merge_best(parts_i[1:], parts_s[1:], best_i, best_s)
    return best_i, best_s


def ivf_knn(x: np.ndarray, k: int, seed: int, *, refine: bool = True
            ) -> tuple[np.ndarray, np.ndarray]:
    """Approximate cosine k-NN (self first) by an inverted-file search done as matrix
    products: seeded spherical k-means (faiss) splits the points into about 2·√n lists; each
    point is compared with the points of the `IVF_NPROBE` lists whose centres are nearest it,
    list by list (all the points probing one list form one matrix product), and keeps the k
    best; then `IVF_REFINE_PASSES` neighbour-of-neighbour passes (knn_kernels.py). No
    per-process compilation, and each row's answer does not depend on the number of
    threads."""
    import faiss

    xs = x if _unit_rows(x) else normalise(x)  # no second copy of 10⁶ × 384 floats
    n, dim = xs.shape
    k_eff = min(k, n)
    # at least 39 points per list: faiss's floor for training a centre
    nlist = int(max(1, min(n // 39, round(IVF_LISTS_PER_SQRT * np.sqrt(n)))))
    km = faiss.Kmeans(dim, nlist, niter=IVF_NITER, seed=int(seed), spherical=True,
                      max_points_per_centroid=IVF_TRAIN_PER_LIST, min_points_per_centroid=1)
    km.train(xs)
    nprobe = min(nlist, IVF_NPROBE)
    _, probes = km.index.search(xs, nprobe)  # each point's nearest list centres
    assign = probes[:, 0].astype(np.int64)
    # Work in list order: the points of one list are one contiguous block (a slice, not a
    # gather, in every product), and the neighbour-of-neighbour passes, which read rows of
    # neighbours at random, mostly read nearby rows. On 200,000 real captions the passes'
    # kernel took about 7 s in the original order and 2.2 s in list order.
    order = np.argsort(assign, kind="stable")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    xl = xs[order]
    probes = probes[order]
    bounds = np.concatenate([[0], np.cumsum(np.bincount(assign, minlength=nlist))])
    flat = probes.ravel().astype(np.int64)
    by_list = np.argsort(flat, kind="stable")  # (point, probe) slots grouped by list
    qbounds = np.concatenate([[0], np.cumsum(np.bincount(flat, minlength=nlist))])
    del flat, probes, assign
    best_i, best_s = _scan_lists(xl, k_eff, nlist, nprobe, bounds, by_list, qbounds)
    del by_list
    idx = best_i.astype(np.int64)
    del best_i
    idx[idx == np.iinfo(np.int32).max] = -1
    idx, d = _self_first(idx, best_s)
    del best_s
    short = (idx < 0).any(axis=1)
    if short.any():  # probed lists held fewer than k points: search those exactly
        rows = np.flatnonzero(short)
        ei, ed = exact_knn(xl, k_eff, queries=xl[rows])
        idx[rows], d[rows] = _self_first(ei.astype(np.int64), 1.0 - ed, own=rows)
    if refine and n > k_eff:
        from memeatlas.cluster.knn_kernels import refine as refine_pass

        idx, d = refine_pass(xl, idx, d, passes=IVF_REFINE_PASSES)
    del xl
    # Back to the caller's numbering: row of point p is row rank[p], and ties (equal
    # distances, e.g. exact duplicates) are ordered by the caller's index again.
    idx = order[idx[rank]]
    d = d[rank]
    key = d.copy()
    key[idx == np.arange(n)[:, None]] = -1.0  # self first, ahead of a duplicate at distance 0
    o = np.lexsort((idx, key), axis=1)
    return np.take_along_axis(idx, o, axis=1).astype(np.int32), np.take_along_axis(d, o, axis=1)


def resolve(method: str, n: int, exact_max: int = 20_000) -> str:
    """The k-NN method `knn` runs for `method` on n points ('auto': exact up to `exact_max`,
    else ivf)."""
    if method == "auto":
        return "exact" if n <= exact_max else "ivf"
    return method


def knn(x: np.ndarray, k: int, *, method: str = "auto", exact_max: int = 20_000,
        seed: int = 42) -> tuple[tuple[np.ndarray, np.ndarray], str]:
    """k-NN (self included) by `method`: exact, ivf, nndescent, or 'auto' (see `resolve`)."""
    how = resolve(method, x.shape[0], exact_max)
    if how == "exact":
        return exact_knn(x, k), how
    if how == "ivf":
        return ivf_knn(x, k, seed), how
    return nndescent_knn(x, k, seed), how
