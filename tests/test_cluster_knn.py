"""k-NN: the exact blocked route against brute force, and the NN-descent route used above 20k."""

from __future__ import annotations

import numpy as np
from helpers_cluster import blobs

from memeatlas.cluster.knn import exact_knn, knn


def _brute(x, k):
    xs = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = xs @ xs.T
    np.fill_diagonal(s, np.inf)
    return np.argsort(-s, axis=1, kind="stable")[:, :k]


def test_exact_knn_matches_brute_force_in_small_blocks():
    x = np.random.default_rng(0).normal(size=(500, 24)).astype(np.float32)
    idx, d = exact_knn(x, 8, max_block_entries=500 * 37)  # many blocks
    np.testing.assert_array_equal(idx, _brute(x, 8))
    assert (idx[:, 0] == np.arange(500)).all() and (d[:, 0] == 0).all()
    assert (np.diff(d, axis=1) >= -1e-6).all()
    nos, _ = exact_knn(x, 7, include_self=False)
    np.testing.assert_array_equal(nos, idx[:, 1:])
    q, qd = exact_knn(x, 3, queries=x[:10] * 5.0)   # scale does not matter under cosine
    np.testing.assert_array_equal(q, idx[:10, :3])


def test_nndescent_route_is_accurate_and_deterministic():
    x, _ = blobs(150, 4, dim=32, seed=5)
    (a, da), method = knn(x, 10, method="nndescent", seed=3)
    assert method == "nndescent"
    (b, db), _ = knn(x, 10, method="nndescent", seed=3)
    np.testing.assert_array_equal(a, b)
    exact, _ = exact_knn(x, 10)
    recall = np.mean([len(set(r) & set(e)) / 10 for r, e in zip(a, exact, strict=True)])
    assert recall >= 0.9
    assert knn(x, 10)[1] == "exact"  # auto below the threshold


def _recall(a, b):
    return np.mean([len(set(r) & set(e)) / len(e) for r, e in zip(a, b, strict=True)])


def test_ivf_route_is_accurate_self_first_and_the_same_for_any_thread_count():
    import faiss
    import numba

    from memeatlas.cluster.knn import ivf_knn, resolve

    x, _ = blobs(600, 6, dim=32, seed=5)
    (a, da), method = knn(x, 10, method="ivf", seed=3)
    assert method == "ivf"
    assert (a[:, 0] == np.arange(len(x))).all() and (da[:, 0] == 0).all()
    assert (np.diff(da, axis=1) >= 0).all() and da.dtype == np.float32 and a.dtype == np.int32
    assert all(len(set(r)) == 10 for r in a)  # no point twice in a row
    exact, _ = exact_knn(x, 10)
    assert _recall(a, exact) >= 0.95
    before = (faiss.omp_get_max_threads(), numba.get_num_threads())
    try:
        faiss.omp_set_num_threads(1)
        numba.set_num_threads(1)
        one, d1 = ivf_knn(x, 10, 3)
    finally:
        faiss.omp_set_num_threads(before[0])
        numba.set_num_threads(before[1])
    np.testing.assert_array_equal(one, a)
    np.testing.assert_array_equal(d1, da)
    assert resolve("auto", 20_000) == "exact" and resolve("auto", 20_001) == "ivf"


def test_ivf_keeps_self_first_among_exact_duplicates_and_tiny_inputs():
    from memeatlas.cluster.knn import ivf_knn

    rng = np.random.default_rng(1)
    base = rng.normal(size=(40, 16)).astype(np.float32)
    x = np.repeat(base, 5, axis=0)  # every vector five times: ties everywhere
    idx, d = ivf_knn(x, 8, 0)
    assert (idx[:, 0] == np.arange(len(x))).all()
    twins = idx[:, 1:5] // 5 == (np.arange(len(x)) // 5)[:, None]
    assert twins.all()  # the four copies are the nearest others
    small, _ = ivf_knn(rng.normal(size=(12, 8)).astype(np.float32), 8, 0)
    assert (small >= 0).all() and all(len(set(r)) == 8 for r in small)
    assert (small[:, 0] == np.arange(12)).all()


def test_refine_only_improves_a_damaged_graph():
    from memeatlas.cluster.knn_kernels import refine

    x, _ = blobs(400, 5, dim=24, seed=2)
    xs = x / np.linalg.norm(x, axis=1, keepdims=True)
    exact, ed = exact_knn(x, 10)
    bad, bd = exact.copy(), ed.copy()
    rng = np.random.default_rng(0)
    hide = rng.random(bad.shape) < 0.3
    hide[:, 0] = False  # drop 30 % of the true neighbours for far random points
    far = rng.integers(0, len(x), size=bad.shape)
    bad[hide] = far[hide]
    bd[hide] = 1 - np.einsum("ij,ij->i", xs[np.nonzero(hide)[0]], xs[far[hide]])
    order = np.argsort(bd, axis=1, kind="stable")
    bad, bd = np.take_along_axis(bad, order, 1), np.take_along_axis(bd, order, 1)
    got, gd = refine(xs, bad, bd.astype(np.float32))
    assert _recall(got, exact) > _recall(bad, exact) + 0.15
    assert (gd <= bd + 1e-6).all()  # every rank is at least as near as before


def test_reverse_neighbours_match_the_sorting_definition():
    """knn_kernels._reverse: for each point, the points listing it among their neighbours
    (column 0, the point itself, excluded), nearest first, ties by index, at most k - 1: the
    same as sorting every (dst, distance, src)."""
    from memeatlas.cluster.knn_kernels import _reverse

    rng = np.random.default_rng(5)
    n, k = 400, 8
    idx = np.empty((n, k), dtype=np.int32)
    for v in range(n):
        pool = np.arange(20) if v % 4 == 0 else np.arange(n)  # hubs: many reverse neighbours
        pool = pool[pool != v]
        idx[v] = [v, *rng.choice(pool, size=k - 1, replace=False)]
    idx[7, -1] = -1  # a short row
    dist = np.round(rng.uniform(0, 1, (n, k)), 1).astype(np.float32)  # many ties
    dist[:, 0] = 0
    rev_ptr, rev = _reverse(idx, dist)
    src = np.repeat(np.arange(n, dtype=np.int32), k - 1)
    dst, dd = idx[:, 1:].ravel(), dist[:, 1:].ravel()
    ok = dst >= 0
    src, dst, dd = src[ok], dst[ok], dd[ok]
    order = np.lexsort((src, dd, dst))
    src, dst = src[order], dst[order]
    assert (np.diff(rev_ptr) == np.minimum(np.bincount(dst, minlength=n), k - 1)).all()
    assert (np.diff(rev_ptr) == k - 1).sum() >= 20  # the hubs are cut at k - 1
    for u in range(n):
        assert rev[rev_ptr[u]:rev_ptr[u + 1]].tolist() == src[dst == u][:k - 1].tolist(), u
