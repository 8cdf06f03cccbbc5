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
