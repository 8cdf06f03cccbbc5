"""Clustering algorithms by name: HDBSCAN (default) and the k-means / Ward / spectral baselines.

Each returns (labels int [n], probability float [n], model or None). Noise is −1 (HDBSCAN only).
HDBSCAN's probability is its membership strength; for the baselines, which have no notion of
membership, it is the share of the point's k nearest neighbours (in the clustered space) that
carry the same label — a comparable "how settled is this point" value in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from memeatlas.errors import BackendError, InputError

WARD_DENSE_MAX = 20_000


def knn_agreement(labels: np.ndarray, knn_idx: np.ndarray) -> np.ndarray:
    """Share of each point's neighbours (self excluded) with the point's own label."""
    nb = knn_idx[:, 1:] if knn_idx.shape[1] > 1 else knn_idx
    return (labels[nb] == labels[:, None]).mean(axis=1).astype(np.float64)


def _knn_graph(knn_idx: np.ndarray):
    """Symmetric sparse connectivity (0/1) from a self-including k-NN index matrix."""
    import scipy.sparse as sp

    n, k = knn_idx.shape
    rows = np.repeat(np.arange(n), k)
    g = sp.csr_matrix((np.ones(n * k, dtype=np.float64), (rows, knn_idx.reshape(-1))),
                      shape=(n, n))
    g = g.maximum(g.T)
    g.setdiag(0)
    g.eliminate_zeros()
    return g


def run_hdbscan(x: np.ndarray, params: dict[str, Any], knn_idx: np.ndarray, seed: int):
    import hdbscan

    from memeatlas.cluster.granularity import SharedTree

    mcs = int(params["min_cluster_size"])
    ms = params.get("min_samples")
    model = hdbscan.HDBSCAN(
        min_cluster_size=max(2, min(mcs, x.shape[0])),
        min_samples=None if ms is None else int(ms),
        cluster_selection_method=params.get("cluster_selection_method", "eom"),
        metric="euclidean", prediction_data=True, core_dist_n_jobs=-1,
        memory=SharedTree())  # faster core distances, the same tree (granularity.py)
    labels = model.fit_predict(np.asarray(x, dtype=np.float64))
    model.memory = None  # not part of the stored model
    return labels.astype(np.int64), model.probabilities_.astype(np.float64), model


def _need_k(params: dict[str, Any], n: int, algorithm: str) -> int:
    k = params.get("k")
    if k is None:
        raise InputError(f"--algorithm {algorithm} needs --k (the number of clusters)")
    k = int(k)
    if not 2 <= k <= n:
        raise InputError(f"--k {k} must be between 2 and the number of memes ({n})")
    return k


def run_kmeans(x, params, knn_idx, seed):
    from sklearn.cluster import KMeans

    k = _need_k(params, x.shape[0], "kmeans")
    model = KMeans(n_clusters=k, random_state=seed, n_init=10)
    labels = model.fit_predict(x).astype(np.int64)
    return labels, knn_agreement(labels, knn_idx), None


def run_agglomerative(x, params, knn_idx, seed):
    from sklearn.cluster import AgglomerativeClustering

    k = _need_k(params, x.shape[0], "agglomerative")
    # Dense Ward is O(n²) memory; above WARD_DENSE_MAX it is constrained to the k-NN graph.
    conn = _knn_graph(knn_idx) if x.shape[0] > WARD_DENSE_MAX else None
    params["ward_connectivity"] = "knn" if conn is not None else "none"
    model = AgglomerativeClustering(n_clusters=k, linkage="ward", connectivity=conn)
    labels = model.fit_predict(x).astype(np.int64)
    return labels, knn_agreement(labels, knn_idx), None


def run_spectral(x, params, knn_idx, seed):
    from sklearn.cluster import SpectralClustering

    k = _need_k(params, x.shape[0], "spectral")
    # Affinity = the symmetric cosine k-NN graph, so memory stays O(n k).
    model = SpectralClustering(n_clusters=k, affinity="precomputed", random_state=seed,
                               assign_labels="cluster_qr")
    labels = model.fit_predict(_knn_graph(knn_idx)).astype(np.int64)
    return labels, knn_agreement(labels, knn_idx), None


REGISTRY: dict[str, Callable] = {
    "hdbscan": run_hdbscan,
    "kmeans": run_kmeans,
    "agglomerative": run_agglomerative,
    "spectral": run_spectral,
}


def get(name: str) -> Callable:
    """The algorithm function for `name`, or BackendError listing the valid names."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise BackendError(f"unknown clustering algorithm {name!r}; choose one of "
                           f"{', '.join(REGISTRY)}") from None


def reassign_noise(model, labels: np.ndarray, probs: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """HDBSCAN noise points → their most likely cluster (soft clustering membership vectors)."""
    noise = labels < 0
    if not noise.any() or labels.max() < 0:
        return labels.copy(), probs.copy()
    from memeatlas.cluster.engines import all_points_membership_vectors

    memb = all_points_membership_vectors(model)  # hdbscan's, or cuML's for --engine cuml
    memb = memb.reshape(labels.shape[0], -1)
    new = labels.copy()
    newp = probs.copy()
    new[noise] = memb[noise].argmax(axis=1)
    newp[noise] = memb[noise].max(axis=1)
    return new, newp


def for_engine(engine: str, name: str) -> Callable:
    """The clustering function of an engine for algorithm `name` (cuML runs HDBSCAN only)."""
    from memeatlas.cluster import engines

    engines.check(engine, name)
    if engine == "cuml":
        return engines.cuml_hdbscan
    return get(name)
