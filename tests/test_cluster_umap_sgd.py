"""The reproducible parallel UMAP SGD (memeatlas/cluster/umap_sgd.py) against umap-learn."""

from __future__ import annotations

import numpy as np
import pytest

from memeatlas.cluster.knn import exact_knn
from memeatlas.cluster.numba_cache import import_umap


def _blobs(n: int = 1500, dim: int = 32, k: int = 6, seed: int = 0, spread: float = 0.35):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim))
    lab = rng.integers(0, k, n)
    x = centres[lab] + spread * rng.normal(size=(n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), lab


@pytest.fixture(scope="module")
def data():
    import_umap()
    from memeatlas.cluster import umap_sgd

    x, lab = _blobs()
    nn = exact_knn(x, 15)
    return x, lab, nn, umap_sgd.SharedGraph(x, nn, 15)


def test_same_result_for_any_thread_count(data):
    import numba

    from memeatlas.cluster import umap_sgd

    x, _, _, shared = data
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = umap_sgd.embed(shared, n_components=5, min_dist=0.0, seed=7, n_epochs=60)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = umap_sgd.embed(shared, n_components=5, min_dist=0.0, seed=7, n_epochs=60)
        again = umap_sgd.embed(shared, n_components=5, min_dist=0.0, seed=7, n_epochs=60)
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(one, many) and np.array_equal(many, again)
    other = umap_sgd.embed(shared, n_components=5, min_dist=0.0, seed=8, n_epochs=60)
    assert not np.array_equal(one, other)  # the seed matters
    assert one.dtype == np.float32 and one.shape == (x.shape[0], 5)
    assert np.isfinite(one).all()


def test_graph_and_init_are_umap_learns(data):
    """The fuzzy graph is UMAP.fit's graph_; the 2-D spectral init is the 5-D one's first two
    columns (up to sign), so the map can start from the reduction's solve."""
    umap = import_umap()
    from umap.spectral import spectral_layout

    from memeatlas.cluster import umap_sgd

    # Overlapping blobs: one connected graph, where umap-learn's init is a spectral solve
    # (disconnected graphs get its per-component layout instead).
    x, _ = _blobs(spread=1.0)
    idx, dist = exact_knn(x, 15)
    shared = umap_sgd.SharedGraph(x, (idx, dist), 15)
    ref = umap.UMAP(n_neighbors=15, metric="cosine", random_state=0, n_epochs=10,
                    precomputed_knn=(idx, dist)).fit(x)
    ours = shared.graph().tocsr()
    diff = abs(ours - ref.graph_.tocsr())
    # float32 rounding of the k-NN distances moves a handful of memberships by < 0.01
    assert diff.max() < 0.01 and (diff > 1e-6).sum() < 0.005 * ours.nnz
    g = shared.pruned(200).tocsr()
    two = np.asarray(spectral_layout(x, g, 2, np.random.RandomState(42), metric="cosine"))
    five = shared.spectral(5, 42, 200)
    # Same eigenvalues (Rayleigh quotients of the normalised Laplacian): with near-equal
    # eigenvalues (one per well-separated blob) the vectors themselves may be any rotation.
    d = 1.0 / np.sqrt(np.asarray(g.sum(axis=1)).ravel())

    def rayleigh(v):
        v = v - v.mean()
        return float(v @ v - (d * v) @ (g @ (d * v))) / float(v @ v)

    r2 = sorted(rayleigh(two[:, c]) for c in range(2))
    r5 = sorted(rayleigh(five[:, c]) for c in range(2))
    assert np.allclose(r2, r5, atol=1e-3), (r2, r5)


def test_quality_matches_umap_learn(data):
    """Same clusters and neighbourhoods as umap-learn's seeded UMAP on the same k-NN."""
    import hdbscan
    from sklearn.manifold import trustworthiness
    from sklearn.metrics import adjusted_rand_score

    from memeatlas.cluster import umap_sgd

    umap = import_umap()
    x, lab, (idx, dist), shared = data
    ours = umap_sgd.embed(shared, n_components=2, min_dist=0.1, seed=42, n_epochs=200)
    ref = umap.UMAP(n_components=2, n_neighbors=15, min_dist=0.1, metric="cosine",
                    random_state=42, n_epochs=200, precomputed_knn=(idx, dist)
                    ).fit_transform(x)
    t_ours = trustworthiness(x, ours, n_neighbors=15, metric="cosine")
    t_ref = trustworthiness(x, ref, n_neighbors=15, metric="cosine")
    assert t_ours >= t_ref - 0.02, (t_ours, t_ref)
    labels = hdbscan.HDBSCAN(min_cluster_size=30).fit_predict(ours)
    assert adjusted_rand_score(lab, labels) > 0.9


def test_graph_in_many_pieces_starts_from_pca(data, monkeypatch):
    """Thousands of repost cliques would make umap-learn's multi-component layout build dense
    pieces × pieces matrices; above MAX_COMPONENTS the start is PCA, and the run says so."""
    from memeatlas.cluster import umap_sgd

    x, lab, nn, _ = data  # six well-separated blobs: six graph components
    monkeypatch.setattr(umap_sgd, "MAX_COMPONENTS", 3)
    shared = umap_sgd.SharedGraph(x, nn, 15)
    emb = umap_sgd.embed(shared, n_components=2, min_dist=0.1, seed=1, n_epochs=50)
    assert np.isfinite(emb).all()
    assert shared.init_method[(1, 50)] == "pca (6 graph components)"


def test_run_records_a_pca_start(store, monkeypatch):
    from helpers_cluster import synthetic_store

    from memeatlas.cluster import ClusterConfig, get_run_info, run, umap_sgd

    synthetic_store(store, n_per=40, n_clusters=3)
    monkeypatch.setattr(umap_sgd, "MAX_COMPONENTS", 0)
    rid = run(store, ClusterConfig(spaces=["text:synthetic"], min_cluster_size=10))[0]
    params = get_run_info(store, rid)["params"]
    params = params if isinstance(params, dict) else __import__("json").loads(params)
    assert params["reduce"]["init"].startswith("pca (")
    assert params["layout"]["init"].startswith("pca (")


@pytest.mark.parametrize("n", [4, 7, 12, 150])
def test_small_inputs(n):
    """Down to a handful of memes (dense eigensolve below ~90 points, PCA below dims + 2)."""
    from memeatlas.cluster.reduce import umap_reduce

    x = np.random.default_rng(n).normal(size=(n, 16)).astype(np.float32)
    nn = exact_knn(x, 15)
    for dims in (5, 2):
        e = umap_reduce(x, nn, n_components=dims, n_neighbors=15, min_dist=0.1, seed=1,
                        n_epochs=None)
        assert e.shape == (n, dims) and np.isfinite(e).all()


_FRESH = r"""
import hashlib, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from memeatlas.cluster.knn import ivf_knn, exact_knn
from memeatlas.cluster import umap_sgd
import scipy.sparse

rng = np.random.default_rng(0)
x = rng.normal(size=(1200, 16)).astype(np.float32)
x /= np.linalg.norm(x, axis=1, keepdims=True)
idx, d = ivf_knn(x, 10, 3)
i, _ = exact_knn(x, 10)
g = scipy.sparse.coo_matrix((np.ones(i[:, 1:].size), (np.repeat(np.arange(1200), 9),
                            i[:, 1:].ravel())), shape=(1200, 1200))
g = (g + g.T).tocoo()
emb = umap_sgd.optimize(rng.uniform(0, 10, (1200, 5)).astype(np.float32), g, n_epochs=20,
                        a=1.9, b=0.79, seed=5)
print(hashlib.sha1(idx.tobytes() + d.tobytes() + emb.tobytes()).hexdigest())
"""


@pytest.mark.slow
def test_a_freshly_compiled_kernel_gives_what_the_cached_one_gives(tmp_path):
    """The first run on a machine compiles the kernels, later ones load them from numba's
    disk cache: both must give the same neighbours and coordinates (with `fastmath` on the
    epoch kernel they did not)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, MEMEATLAS_NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    env.pop("NUMBA_CACHE_DIR", None)
    runs = [subprocess.run([sys.executable, "-c", _FRESH, root], env=env, capture_output=True,
                           text=True, timeout=600) for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr[-2000:]
    assert any((tmp_path / "numba").rglob("*.nbc"))  # the first run did write the cache
    assert runs[0].stdout.split()[-1] == runs[1].stdout.split()[-1]
