"""UMAP's embedding step, reproducible and multi-threaded.

umap-learn offers two kinds of SGD for the embedding: single-threaded and reproducible (what it
runs whenever `random_state` is set) or multi-threaded and not reproducible (lock-free
"Hogwild" updates whose order depends on thread timing). A research tool needs the same
coordinates from the same inputs and seed, and at 10^5–10^6 points the single-threaded epochs
are most of a `cluster` run (docs/SCALE.md). This module runs the same objective with the
same schedule in parallel and deterministically:

- each epoch reads the other points' positions from a snapshot taken at the epoch's start,
  and each thread writes only the rows of the vertices it owns (every vertex processes its own
  edges, the graph's CSR rows), so no two threads touch the same row;
- negative samples come from a counter-based random stream keyed by (seed, vertex, epoch),
  not from a shared generator, so they do not depend on which thread ran which vertex.

The result does not depend on the number of threads. Everything else is umap-learn's own
code or its algorithm: the fuzzy graph (`fuzzy_simplicial_set`), the spectral init
(`spectral_layout`, with a faster solve of the same eigenproblem, see `_eigen_layout`), the
edge pruning and sampling schedule (`make_epochs_per_sample`), the curve (`find_ab_params`),
the gradients, the clipping and the learning-rate decay. Two differences from umap-learn's
sequential loop, both in how updates are ordered, not in what is optimised:

1. umap-learn moves both ends of a sampled edge (head toward tail, tail toward head). Here a
   vertex takes both of those steps when it processes its own edge; the graph is symmetric,
   so each pair is still pulled together twice per sample, as in umap-learn.
2. Positions of other points are at most one epoch old (Jacobi- rather than Gauss–Seidel-
   style); umap-learn's parallel mode reads positions of unknown age.

`benchmarks/cluster.py --bare` compares the maps and clusters with umap-learn's on real
caption vectors (benchmarks/results/scale.md).

The graph and the spectral init do not depend on the output dimension or on `min_dist`, so
the cluster step builds them once and reuses them for the clustered reduction and the 2-D map
(`SharedGraph`); umap-learn called twice builds each twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from memeatlas.cluster.numba_cache import configure_cache_dir

configure_cache_dir()  # before numba is imported: the kernels below are cached on disk

import math  # noqa: E402

import numba  # noqa: E402

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@numba.njit(inline="always")
def _mix(z):
    """splitmix64's finaliser: a well-mixed 64-bit value from any 64-bit counter."""
    z = (z ^ (z >> numba.uint64(30))) * _M1
    z = (z ^ (z >> numba.uint64(27))) * _M2
    return z ^ (z >> numba.uint64(31))


def _mix_py(z: int) -> int:
    """`_mix` in Python integers (for the per-run key, always passed to numba as uint64)."""
    mask = (1 << 64) - 1
    z &= mask
    z = ((z ^ (z >> 30)) * int(_M1)) & mask
    z = ((z ^ (z >> 27)) * int(_M2)) & mask
    return z ^ (z >> 31)


@numba.njit(inline="always")
def _clip32(v):
    """UMAP's gradient clip to [-4, 4], in float32."""
    if v > numba.float32(4.0):
        return numba.float32(4.0)
    if v < numba.float32(-4.0):
        return numba.float32(-4.0)
    return v


@numba.njit(parallel=True, nogil=True, cache=True)
def _epoch(emb, snap, indptr, tail, eps, eps_neg, next_s, next_neg, n, a, b, gamma, alpha,
           key):
    """One epoch of UMAP's SGD over every vertex's own edges (see the module docstring).

    Not `fastmath`: with it a freshly compiled kernel and the same kernel loaded from numba's
    disk cache gave different coordinates (measured), so the first run on a machine did not
    reproduce; without it the epoch is as fast.

    All arithmetic is float32 (the coordinates are float32), d²ᵇ is exp(b·log d²) (100
    epochs of 50,000 points took 10 CPU-seconds against 17 with numba's float32 `**`), an
    attractive step takes one power (d²ᵇ⁻¹ = d²ᵇ / d²), and a negative sample's vertex is
    drawn by multiply-shift (Lemire 2019) instead of a 64-bit modulo. At 200,000 real captions
    the 2-D map's 200 epochs took 35 s against 43 s with the float64 kernel before
    (benchmarks/results/scale.md)."""
    n_vertices = emb.shape[0]
    dim = emb.shape[1]
    a = numba.float32(a)
    b = numba.float32(b)
    two_ab = numba.float32(2.0) * a * b
    two_gb = numba.float32(2.0) * numba.float32(gamma) * b
    alpha = numba.float32(alpha)
    zero = numba.float32(0.0)
    one = numba.float32(1.0)
    small = numba.float32(0.001)
    nv = numba.uint64(n_vertices)
    for j in numba.prange(n_vertices):
        cur = emb[j]
        # Counter-based stream for this (seed, vertex, epoch): independent of thread timing.
        ctr = _mix(key ^ (numba.uint64(j) * _GOLDEN)) ^ (numba.uint64(n) * _M1)
        for e in range(indptr[j], indptr[j + 1]):
            if next_s[e] > n:
                continue
            k = tail[e]
            other = snap[k]
            # The head step and the tail step umap-learn takes for the pair (j, k).
            for _ in range(2):
                d2 = zero
                for d in range(dim):
                    diff = cur[d] - other[d]
                    d2 += diff * diff
                if d2 > zero:
                    pb = math.exp(b * math.log(d2))
                    gc = -two_ab * (pb / d2) / (a * pb + one)
                    for d in range(dim):
                        cur[d] += _clip32(gc * (cur[d] - other[d])) * alpha
            next_s[e] += eps[e]
            n_neg = int((n - next_neg[e]) / eps_neg[e])
            for _p in range(n_neg):
                ctr += _GOLDEN
                k = int(((_mix(ctr) >> numba.uint64(32)) * nv) >> numba.uint64(32))
                if k == j:
                    continue
                other = snap[k]
                d2 = zero
                for d in range(dim):
                    diff = cur[d] - other[d]
                    d2 += diff * diff
                if d2 > zero:
                    gc = two_gb / ((small + d2) * (a * math.exp(b * math.log(d2)) + one))
                    for d in range(dim):
                        cur[d] += _clip32(gc * (cur[d] - other[d])) * alpha
            next_neg[e] += n_neg * eps_neg[e]


@numba.njit(nogil=True, cache=True)
def _epochs(emb, snap, indptr, tail, eps, eps_neg, next_s, next_neg, n_epochs, a, b, gamma,
            initial_alpha, key):
    """All epochs of `optimize`, without the GIL: the 2-D map can run in a thread while
    HDBSCAN, which holds the GIL, runs in another (fit.py)."""
    alpha = initial_alpha
    for n in range(n_epochs):
        snap[:] = emb
        _epoch(emb, snap, indptr, tail, eps, eps_neg, next_s, next_neg, n, a, b, gamma, alpha,
               key)
        alpha = initial_alpha * (1.0 - float(n) / float(n_epochs))


def optimize(init: np.ndarray, graph, *, n_epochs: int, a: float, b: float, seed: int,
             gamma: float = 1.0, initial_alpha: float = 1.0,
             negative_sample_rate: float = 5.0) -> np.ndarray:
    """UMAP's SGD from `init` (float32 [n, d], already in umap-learn's [0, 10] box) on the
    pruned fuzzy `graph` (scipy sparse, symmetric); float32 [n, d], the same for any number of
    threads."""
    from umap.umap_ import make_epochs_per_sample

    csr = graph.tocsr()
    csr.sum_duplicates()
    csr.sort_indices()
    emb = np.ascontiguousarray(init, dtype=np.float32).copy()
    snap = np.empty_like(emb)
    eps = make_epochs_per_sample(csr.data, n_epochs)
    eps_neg = eps / negative_sample_rate
    next_s = eps.copy()
    next_neg = eps_neg.copy()
    indptr = csr.indptr.astype(np.int64)
    tail = csr.indices.astype(np.int32)
    key = np.uint64(_mix_py(int(seed) + int(_GOLDEN)))
    _epochs(emb, snap, indptr, tail, eps, eps_neg, next_s, next_neg, int(n_epochs), float(a),
            float(b), float(gamma), float(initial_alpha), key)
    return emb


#: Above this many connected pieces of the graph the start is PCA, not spectral (see
#: SharedGraph.spectral).
MAX_COMPONENTS = 1000


def default_epochs(n: int) -> int:
    """umap-learn's default: 500 epochs up to 10,000 points, 200 above."""
    return 500 if n <= 10_000 else 200


@dataclass
class SharedGraph:
    """The fuzzy graph and spectral inits of one k-NN, built once for every UMAP of a run."""

    x: np.ndarray
    knn: tuple[np.ndarray, np.ndarray]
    n_neighbors: int
    _graph: object = None
    _pruned: dict[int, object] = field(default_factory=dict)
    _spectral: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    init_method: dict[tuple[int, int], str] = field(default_factory=dict)

    def graph(self):
        """umap-learn's fuzzy simplicial set of the k-NN (what `UMAP.fit` stores as graph_)."""
        if self._graph is None:
            from umap.umap_ import fuzzy_simplicial_set

            idx, dist = self.knn
            k = self.n_neighbors
            g, _, _ = fuzzy_simplicial_set(
                self.x, k, np.random.RandomState(0), "cosine",
                knn_indices=np.ascontiguousarray(idx[:, :k]),
                knn_dists=np.ascontiguousarray(dist[:, :k]))
            g = g.tocoo()
            g.sum_duplicates()
            self._graph = g
        return self._graph

    def pruned(self, n_epochs: int):
        """The graph as umap-learn embeds it for `n_epochs`: edges too weak to be sampled once
        are dropped (before the spectral init, as umap-learn does)."""
        if n_epochs not in self._pruned:
            g = self.graph().copy()
            keep = n_epochs if n_epochs > 10 else default_epochs(g.shape[0])
            g.data[g.data < g.data.max() / float(keep)] = 0.0
            g.eliminate_zeros()
            self._pruned[n_epochs] = g
        return self._pruned[n_epochs]

    def spectral(self, dims: int, seed: int, n_epochs: int) -> np.ndarray:
        """umap-learn's spectral init with at least `dims` columns. Its first d columns are
        the d-dimensional init (the eigenvectors of the d smallest non-zero eigenvalues), so
        with the same epochs the 5-D solve also gives the 2-D map's start. `init_method` says
        which start was used (see `spectral_layout`).

        Solved on the graph pruned for the embedding's own epochs, as umap-learn does: the
        100-epoch reduction of a large corpus and the 200-epoch map each have their own. (One
        solve shared by both was measured: no gain at 200,000, where the map's own solve runs
        in its thread beside HDBSCAN; 630 s against 683 s at 10⁶, where the map is the longest
        stage, but at the cost of moving the reduction's start away from umap-learn's;
        benchmarks/results/scale.md.)"""
        have = self._spectral.get((seed, n_epochs))
        if have is None or have.shape[1] < dims:
            start, how = spectral_layout(self.x, self.pruned(n_epochs), dims, seed)
            self._spectral[(seed, n_epochs)] = start
            self.init_method[(seed, n_epochs)] = how
        return self._spectral[(seed, n_epochs)][:, :dims]


def _eigen_layout(graph, dim: int, rs: np.random.RandomState) -> tuple[np.ndarray, str]:
    """The `dim` eigenvectors of the normalised Laplacian L = I − D^-½ A D^-½ with the smallest
    non-zero eigenvalues, for one connected graph: umap-learn's `_spectral_layout`, solved as
    the largest eigenvalues of D^-½ A D^-½ (the same eigenvectors). umap-learn asks ARPACK for
    L's smallest-magnitude ones, which converges slowly on a large graph of weakly linked
    clusters: measured on 196,411 points of real caption vectors it ran for over 10 minutes
    (and umap-learn's tswspectral init took 856 s), where this took 5.3 s."""
    import scipy.sparse
    import scipy.sparse.linalg

    n = graph.shape[0]
    k = dim + 1
    deg = np.asarray(graph.sum(axis=0)).ravel()
    inv = scipy.sparse.diags(1.0 / np.sqrt(deg))
    m = (inv @ graph @ inv).tocsr()
    from threadpoolctl import threadpool_limits

    try:
        # One BLAS thread: ARPACK's dot products and norms summed in another order by more
        # threads give other eigenvectors in the last bits, and UMAP's 200 epochs turn those
        # into another map; the solve is memory-bound, so one thread costs little.
        with threadpool_limits(limits=1, user_api="blas"):
            if n <= 4 * k + 64:  # small: a dense solve (ARPACK needs k < ncv < n)
                w, v = np.linalg.eigh(m.toarray())
            else:
                w, v = scipy.sparse.linalg.eigsh(m, k, which="LA", ncv=max(2 * k + 1, 32),
                                                 tol=1e-4, v0=np.ones(n), maxiter=n * 5)
    except (scipy.sparse.linalg.ArpackError, np.linalg.LinAlgError):
        # umap-learn's fallback when its eigensolver fails: a random start
        return rs.uniform(low=-10.0, high=10.0, size=(n, dim)), "random (no spectral solution)"
    order = np.argsort(-w)[1:k]  # L's eigenvalues are 1 − w; skip the trivial one
    return v[:, order], "spectral"


def spectral_layout(x: np.ndarray, graph, dim: int, seed: int) -> tuple[np.ndarray, str]:
    """umap-learn's spectral init of `graph` (its `spectral_layout`, including the layout of a
    graph in several pieces: pieces placed by `component_layout`, each piece's own
    eigenvectors inside), with the faster eigensolver of `_eigen_layout`; and the start used.

    A graph in more than `MAX_COMPONENTS` pieces (thousands of reposts, each group its own
    clique) starts from PCA, umap-learn's other init: umap-learn lays such a graph out from a
    dense pieces × pieces affinity matrix and eigenproblem (a 200,000-point run whose graph
    fell into ~20,000 pieces peaked at 15.6 GB and spent 255 s in its 5-D reduction)."""
    import scipy.sparse.csgraph

    rs = np.random.RandomState(seed)
    graph = graph.tocsr()
    n = graph.shape[0]
    n_parts, labels = scipy.sparse.csgraph.connected_components(graph, directed=False)
    if n_parts > MAX_COMPONENTS:
        from sklearn.decomposition import PCA

        start = PCA(n_components=dim, random_state=seed).fit_transform(x)
        return np.asarray(start), f"pca ({n_parts} graph components)"
    if n_parts == 1:
        return _eigen_layout(graph, dim, rs)
    from sklearn.metrics import pairwise_distances
    from umap.spectral import component_layout

    if n_parts > 2 * dim:
        meta = component_layout(x, n_parts, labels, dim, rs, metric="cosine")
    else:
        half = int(np.ceil(n_parts / 2.0))
        base = np.hstack([np.eye(half), np.zeros((half, dim - half))])
        meta = np.vstack([base, -base])[:n_parts]
    out = np.empty((n, dim), dtype=np.float32)
    members = np.split(np.argsort(labels, kind="stable"),
                       np.cumsum(np.bincount(labels, minlength=n_parts))[:-1])
    how = "spectral"
    for label, idx in enumerate(members):
        dists = pairwise_distances(meta[label:label + 1], meta)
        data_range = dists[dists > 0.0].min() / 2.0
        if idx.size < 2 * dim or idx.size <= dim + 1:
            out[idx] = rs.uniform(low=-data_range, high=data_range,
                                  size=(idx.size, dim)) + meta[label]
            continue
        emb, part_how = _eigen_layout(graph[idx][:, idx], dim, rs)
        if part_how != "spectral":
            how = f"spectral ({part_how} in some pieces)"
        out[idx] = emb * (data_range / np.max(np.abs(emb))) + meta[label]
    return out, how


def embed(shared: SharedGraph, *, n_components: int, min_dist: float, seed: int,
          n_epochs: int | None, init: np.ndarray | None = None) -> np.ndarray:
    """A UMAP embedding of `shared`'s points, as `umap.UMAP(...).fit_transform` computes it
    (spread 1, `min_dist`, spectral init unless `init`), with the reproducible parallel SGD.
    float32 [n, n_components]."""
    from umap.umap_ import find_ab_params, noisy_scale_coords

    n = shared.x.shape[0]
    epochs = int(n_epochs) if n_epochs is not None else default_epochs(n)
    graph = shared.pruned(epochs)
    rs = np.random.RandomState(seed)
    if init is None:
        start = noisy_scale_coords(shared.spectral(n_components, seed, epochs), rs,
                                   max_coord=10, noise=0.0001)
    else:
        start = np.asarray(init, dtype=np.float32)
    lo, hi = start.min(axis=0), start.max(axis=0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    start = (10.0 * (start - lo) / span).astype(np.float32, order="C")
    a, b = find_ab_params(1.0, min_dist)
    return optimize(start, graph, n_epochs=epochs, a=a, b=b, seed=seed)
