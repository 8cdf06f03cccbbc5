"""Clustering engines by name: `cpu` (umap-learn + hdbscan, the default) and `cuml` (RAPIDS
cuML's GPU UMAP and HDBSCAN, CUDA only: pip install 'memeatlas[cuml]').

Both engines take the same precomputed cosine k-NN, the same parameters and seed, and return
what `fit.py` stores (reduction, labels, membership strength, the model `assign` and
`--reassign-noise` use), so a run's outputs have one shape whichever engine made them. cuML's
results are not bit-identical to the CPU libraries' (cuML's docs: k-NN ties and the minimum
spanning tree can assign some points differently), which is why `engine` is part of a run's
parameters and so of its fingerprint.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from memeatlas.errors import BackendError

ENGINES = ("cpu", "cuml")
_CUML_ALGORITHMS = ("hdbscan",)


def check(engine: str, algorithm: str = "hdbscan") -> str:
    """`engine` if known and usable with `algorithm`; BackendError naming the valid ones."""
    if engine not in ENGINES:
        raise BackendError(f"unknown cluster engine {engine!r}; choose one of: "
                           f"{', '.join(ENGINES)}")
    if engine == "cuml" and algorithm not in _CUML_ALGORITHMS:
        raise BackendError(f"--engine cuml runs {', '.join(_CUML_ALGORITHMS)}; "
                           f"use --engine cpu for --algorithm {algorithm}")
    return engine


def import_cuml():
    """The cuml module, or a BackendError that says what is missing and how to get it."""
    try:
        import cuml
    except ImportError as exc:
        raise BackendError(
            "cluster --engine cuml needs RAPIDS cuML on a machine with an NVIDIA GPU and "
            "CUDA 12: pip install 'memeatlas[cuml]' (cuml-cu12); or use --engine cpu "
            f"({type(exc).__name__}: {exc})") from None
    except Exception as exc:  # installed, but no usable GPU/driver: cuML raises at import
        raise BackendError(f"cuML is installed but cannot start ({type(exc).__name__}: "
                           f"{str(exc)[:200]}); use --engine cpu") from None
    return cuml


def version(engine: str) -> dict[str, Any]:
    """What a run records about its engine (in params, hence in its fingerprint); nothing for
    cpu, so CPU runs keep the fingerprints they always had."""
    if engine == "cpu":
        return {}
    from memeatlas.provenance import software

    found = software("cuml-cu12", "cuml-cu13", "cuml")
    ver = next((found[d] for d in ("cuml-cu12", "cuml-cu13", "cuml") if found.get(d)), None)
    return {"engine": {"name": engine, "cuml": ver}}


def cuml_umap_kwargs(*, n_components: int, n_neighbors: int, min_dist: float, seed: int,
                     n_epochs: int | None, n: int) -> dict[str, Any]:
    """cuML UMAP keyword arguments for memeatlas's UMAP parameters (see reduce.umap_reduce).

    Same metric (cosine), neighbours, min_dist, epochs and seed; spectral init as on CPU.
    `precomputed_knn` is passed by the caller, so cuML builds no neighbour graph of its own.
    """
    k = max(2, min(n_neighbors, n - 1))
    kw: dict[str, Any] = {"n_components": n_components, "n_neighbors": k, "metric": "cosine",
                          "min_dist": float(min_dist), "random_state": int(seed),
                          "init": "spectral" if n > n_components + 1 else "random",
                          "verbose": False}
    if n_epochs is not None:
        kw["n_epochs"] = int(n_epochs)
    return kw


def cuml_hdbscan_kwargs(params: dict[str, Any], n: int) -> dict[str, Any]:
    """cuML HDBSCAN keyword arguments for a run's parameters (see algorithms.run_hdbscan)."""
    ms = params.get("min_samples")
    return {"min_cluster_size": max(2, min(int(params["min_cluster_size"]), n)),
            "min_samples": None if ms is None else int(ms),
            "cluster_selection_method": params.get("cluster_selection_method", "eom"),
            "metric": "euclidean", "prediction_data": True}


def _host(a) -> np.ndarray:
    """A cuML/CuPy result as a NumPy array."""
    if hasattr(a, "get"):
        a = a.get()
    elif hasattr(a, "to_numpy"):
        a = a.to_numpy()
    return np.asarray(a)


def cuml_reduce(x: np.ndarray, knn: tuple[np.ndarray, np.ndarray], *, n_components: int,
                n_neighbors: int, min_dist: float, seed: int, n_epochs: int | None,
                init: np.ndarray | None = None, shared=None) -> np.ndarray:
    """`reduce.umap_reduce` on the GPU; float32 [n, n_components]. (cuML starts from its own
    spectral init, so fit.py records no layout init for cuML runs and passes none.)"""
    from memeatlas.cluster.reduce import _pca

    n = x.shape[0]
    if n < max(n_components + 2, 4):
        return _pca(x, n_components)
    cuml = import_cuml()
    kw = cuml_umap_kwargs(n_components=n_components, n_neighbors=n_neighbors,
                          min_dist=min_dist, seed=seed, n_epochs=n_epochs, n=n)
    idx, dist = knn
    k = kw["n_neighbors"]
    model = cuml.UMAP(**kw, precomputed_knn=(np.ascontiguousarray(idx[:, :k]),
                                             np.ascontiguousarray(dist[:, :k])))
    emb = model.fit_transform(np.ascontiguousarray(x, dtype=np.float32))
    return np.ascontiguousarray(_host(emb), dtype=np.float32)


def cuml_hdbscan(x: np.ndarray, params: dict[str, Any], knn_idx: np.ndarray, seed: int):
    """`algorithms.run_hdbscan` on the GPU: (labels, membership strength, model)."""
    cuml = import_cuml()
    model = cuml.cluster.hdbscan.HDBSCAN(**cuml_hdbscan_kwargs(params, x.shape[0]))
    labels = _host(model.fit_predict(np.ascontiguousarray(x, dtype=np.float32)))
    probs = _host(model.probabilities_)
    return labels.astype(np.int64), probs.astype(np.float64), model


def is_cuml_model(model: Any) -> bool:
    return model is not None and type(model).__module__.startswith("cuml")


def approximate_predict(clusterer, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """hdbscan's or cuML's approximate_predict, whichever made `clusterer`."""
    if is_cuml_model(clusterer):
        from cuml.cluster import hdbscan as chd

        lab, prob = chd.approximate_predict(clusterer, np.asarray(points, dtype=np.float32))
        return _host(lab), _host(prob)
    import hdbscan

    return hdbscan.approximate_predict(clusterer, points)


def all_points_membership_vectors(clusterer) -> np.ndarray:
    """hdbscan's or cuML's soft-membership matrix, whichever made `clusterer`."""
    if is_cuml_model(clusterer):
        from cuml.cluster import hdbscan as chd

        return _host(chd.all_points_membership_vectors(clusterer))
    import hdbscan

    return hdbscan.all_points_membership_vectors(clusterer)


def reducer(engine: str) -> Callable[..., np.ndarray]:
    """The UMAP function of an engine (same signature as reduce.umap_reduce)."""
    if engine == "cuml":
        return cuml_reduce
    from memeatlas.cluster.reduce import umap_reduce

    return umap_reduce
