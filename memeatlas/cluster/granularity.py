"""Automatic granularity: choose HDBSCAN's min_cluster_size from the data alone.

`--min-cluster-size auto` (the default) fits HDBSCAN on the run's one UMAP reduction once per
candidate size and keeps the size whose clustering scores best on an internal criterion. The
candidates are a geometric grid (`candidate_sizes`): from 5 to about n/20 (at most 500), about
eight values. All candidates share `min_samples` (default `AUTO_MIN_SAMPLES`, capped by the
size), so HDBSCAN's expensive part — core distances and the minimum spanning tree — is computed
once and kept (`SharedTree`, given as HDBSCAN's `memory=`); each further candidate only
condenses the tree. The core distances come from a threaded single-tree KD-tree query rather
than hdbscan's dual-tree one: the same numbers, 19.8 → 11.4 s for the eight candidates on
200,000 5-D points (`_CoreDistTree`).

The default criterion is **total persistence**: the sum over the selected clusters of HDBSCAN's
`cluster_persistence_` (1 = a cluster that persists over all density levels, 0 = one that
appears and vanishes at once) — the number of clusters, each weighted by how persistent it is.
It rewards finding many clusters only when each of them is real: spurious clumps of a noise
background persist for a moment and add little; merging real clusters (too large a size)
removes their persistence. The alternative `relative_validity` (HDBSCAN's DBCV approximation,
Moulavi et al. 2014) was measured too and rejected as the default: on STS-B and MemeCap it
picks two or three clusters for 2,000–3,000 texts (DBCV favours the coarsest clean split).
Candidates with fewer than two clusters score nothing; ties (within `TIE`) go to the smaller
size. benchmarks/granularity.py measures the choice on real data
(benchmarks/results/cluster_granularity.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

CRITERIA = ("persistence", "relative_validity")
DEFAULT_CRITERION = "persistence"
AUTO_MIN_SAMPLES = 5
MIN_SIZE = 5
MAX_SIZE = 500
N_CANDIDATES = 8
TIE = 1e-9


def legacy_min_cluster_size(n: int) -> int:
    """The fixed default before automatic granularity: max(5, min(50, n // 100))."""
    return max(5, min(50, n // 100))


def candidate_sizes(n: int, n_candidates: int = N_CANDIDATES) -> list[int]:
    """Candidate min_cluster_size values for n points: a geometric grid from 5 to ~n/20 (≤ 500).

    Small corpora get fewer candidates (the grid is deduplicated after rounding); a corpus of
    fewer than 10 points gets the one size that can form two clusters at all.
    """
    hi = int(min(MAX_SIZE, max(MIN_SIZE, n // 20)))
    if n < 2 * MIN_SIZE:
        return [max(2, n // 2)]
    grid = np.geomspace(MIN_SIZE, max(hi, MIN_SIZE), num=n_candidates)
    return sorted({int(round(v)) for v in grid})


@dataclass
class Candidate:
    """One candidate size and how its clustering scored."""

    min_cluster_size: int
    min_samples: int
    value: float | None
    n_clusters: int
    noise_fraction: float
    labels: np.ndarray = field(repr=False)
    probabilities: np.ndarray = field(repr=False)
    model: Any = field(repr=False, default=None)

    def row(self) -> dict[str, Any]:
        return {"min_cluster_size": self.min_cluster_size, "min_samples": self.min_samples,
                "value": None if self.value is None else round(float(self.value), 6),
                "n_clusters": self.n_clusters, "noise_fraction": round(self.noise_fraction, 6)}


@dataclass
class Choice:
    """The chosen candidate (its fitted model kept) and the whole curve."""

    criterion: str
    chosen: Candidate
    candidates: list[Candidate]

    def params(self) -> dict[str, Any]:
        """What the run's parameters record about the choice."""
        return {"criterion": self.criterion, "chosen": self.chosen.min_cluster_size,
                "candidates": [c.min_cluster_size for c in self.candidates],
                "values": [c.row()["value"] for c in self.candidates],
                "n_clusters": [c.n_clusters for c in self.candidates],
                "noise_fraction": [c.row()["noise_fraction"] for c in self.candidates],
                "min_samples": self.chosen.min_samples}


class _CoreDistTree:
    """The core-distance tree hdbscan's Boruvka algorithm queries (`.data`, `.query`),
    answered by sklearn's single-tree search in row blocks on every core.

    hdbscan asks its KD-tree for each point's `min_samples` nearest neighbours with a
    breadth-first dual-tree query: on 200,000 5-D points that took 8.9 s on one core (6.9 s
    split over two processes), where the single-tree query, which releases the GIL, took
    0.8 s on two threads, with identical distances and indices (checked on that data and in
    tests/test_cluster_granularity.py). Each block is answered on its own, so the result does
    not depend on the number of threads."""

    BLOCK = 20_000

    def __init__(self, tree) -> None:
        self._tree = tree
        self.data = tree.data

    def query(self, x, k=1, dualtree=False, breadth_first=False):  # noqa: ARG002 (hdbscan's call)
        import os
        from concurrent.futures import ThreadPoolExecutor

        x = np.asarray(x)
        starts = range(0, x.shape[0], self.BLOCK)
        workers = max(1, min(len(starts), os.cpu_count() or 1))
        with ThreadPoolExecutor(workers) as pool:
            parts = list(pool.map(lambda a: self._tree.query(x[a:a + self.BLOCK], k=k), starts))
        return np.vstack([d for d, _ in parts]), np.vstack([i for _, i in parts])


def _boruvka_kdtree(x, min_samples=5, alpha=1.0, metric="minkowski", p=2, leaf_size=40,
                    approx_min_span_tree=True, gen_min_span_tree=False, core_dist_n_jobs=4,
                    **kwargs):
    """hdbscan's `_hdbscan_boruvka_kdtree` (same arguments, same single-linkage tree), with
    its core distances from `_CoreDistTree`."""
    from hdbscan._hdbscan_boruvka import KDTreeBoruvkaAlgorithm
    from hdbscan._hdbscan_linkage import label
    from sklearn.neighbors import KDTree

    leaf_size = max(3, leaf_size)
    x = np.asarray(x, dtype=np.float64)
    tree = KDTree(x, metric=metric, leaf_size=leaf_size, **kwargs)
    # n_jobs=1: hdbscan's own split over processes is bypassed; the tree above uses every core
    alg = KDTreeBoruvkaAlgorithm(_CoreDistTree(tree), min_samples, metric=metric,
                                 leaf_size=leaf_size // 3,
                                 approx_min_span_tree=approx_min_span_tree, n_jobs=1, **kwargs)
    mst = alg.spanning_tree()
    mst = mst[np.argsort(mst.T[2]), :]
    return label(mst), (mst if gen_min_span_tree else None)


class SharedTree:
    """A stand-in for HDBSCAN's `memory=` (joblib.Memory): hdbscan asks it to cache the
    function that builds the single-linkage tree. Candidates with equal arguments share one
    tree (kept in memory, not pickled to disk), and the KD-tree route gets fast core distances
    (`_boruvka_kdtree`); any other route is run as hdbscan would run it."""

    def __init__(self) -> None:
        self._done: dict[tuple, Any] = {}

    def cache(self, func):
        from hdbscan import hdbscan_

        run = _boruvka_kdtree if func is hdbscan_._hdbscan_boruvka_kdtree else func

        def cached(x, *args, **kwargs):
            key = (func.__name__, id(x), x.shape, args, tuple(sorted(kwargs.items())))
            if key not in self._done:
                self._done[key] = run(x, *args, **kwargs)
            return self._done[key]

        return cached


def _score(model, labels: np.ndarray, criterion: str) -> float | None:
    if criterion not in CRITERIA:
        from memeatlas.errors import InputError

        raise InputError(f"unknown granularity criterion {criterion!r}; choose one of "
                         f"{', '.join(CRITERIA)}")
    if labels.max() < 1:  # fewer than two clusters: nothing to compare
        return None
    if criterion == "persistence":
        v = float(np.sum(model.cluster_persistence_))
    else:
        v = float(model.relative_validity_)
    return v if np.isfinite(v) else None


def choose(x: np.ndarray, *, candidates: list[int] | None = None,
           min_samples: int | None = None, selection: str = "eom",
           criterion: str = DEFAULT_CRITERION) -> Choice:
    """Fit HDBSCAN on `x` for each candidate size and pick the best by `criterion`.

    `min_samples` None → min(AUTO_MIN_SAMPLES, size). The same `x` and arguments give the same
    choice (HDBSCAN is deterministic). Raises nothing for degenerate data: when no candidate
    finds two clusters the smallest size is chosen.
    """
    import hdbscan

    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    sizes = sorted({max(2, min(int(s), n)) for s in (candidates or candidate_sizes(n))})
    out: list[Candidate] = []
    memory = SharedTree()  # shares the MST between candidates with equal min_samples
    for size in sizes:
        ms = int(min_samples) if min_samples is not None else min(AUTO_MIN_SAMPLES, size)
        # Prediction data (for soft membership and `assign`) is made for the chosen
        # model only; the MST is only needed by relative_validity.
        model = hdbscan.HDBSCAN(min_cluster_size=size, min_samples=ms,
                                cluster_selection_method=selection, metric="euclidean",
                                prediction_data=False,
                                gen_min_span_tree=criterion == "relative_validity",
                                core_dist_n_jobs=-1, memory=memory)
        labels = model.fit_predict(x).astype(np.int64)
        out.append(Candidate(size, ms, _score(model, labels, criterion),
                             int(labels.max() + 1), float((labels < 0).mean()) if n else 0.0,
                             labels, model.probabilities_.astype(np.float64), model))
    scored = [c for c in out if c.value is not None]
    if scored:
        best = max(c.value for c in scored)
        chosen = next(c for c in scored if c.value >= best - TIE)  # smallest size among ties
    else:
        chosen = out[0]
    for c in out:  # keep only the chosen model: the others can be large
        if c is not chosen:
            c.model = None
    chosen.model.memory = None  # the shared trees are not part of the stored model
    chosen.model.prediction_data = True
    chosen.model.generate_prediction_data()
    return Choice(criterion, chosen, out)
