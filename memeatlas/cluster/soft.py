"""Soft membership: for every meme, noise included, its most likely cluster and how likely.

HDBSCAN's hard labels leave noise as −1. Its soft clustering (`all_points_membership_vectors`,
McInnes' distance × outlier membership in the condensed tree) gives every point a probability
per cluster. memeatlas stores, beside the hard label:

- `soft_cluster`: the hard cluster for clustered memes; for noise, the cluster with the highest
  membership;
- `soft_probability`: the membership probability of `soft_cluster` (for noise, how strongly the
  point belongs there; small values mean "really nothing").

Baselines have no noise: their soft columns equal the hard ones.

HDBSCAN's soft clustering holds a few n × n_clusters matrices at once; above `MAX_CELLS`
(n × n_clusters; e.g. 200,000 memes in 500 clusters) noise memes instead get the cluster most
of their k nearest neighbours (clustered ones) are in, with the share of those neighbours as
the probability, and clustered memes keep HDBSCAN's membership strength. The method used is
recorded in the run's params (`soft`).
"""

from __future__ import annotations

import numpy as np

MAX_CELLS = 20_000_000
SOFT_HDBSCAN = "hdbscan.all_points_membership_vectors"
SOFT_KNN = "knn_vote"


def method_for(n: int, n_clusters: int) -> str:
    """Which soft assignment `soft_membership` uses for n points in n_clusters clusters."""
    return SOFT_HDBSCAN if n * max(1, n_clusters) <= MAX_CELLS else SOFT_KNN


def knn_vote(labels: np.ndarray, probs: np.ndarray, knn_idx: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """Noise → the most common cluster among its clustered k nearest neighbours (self excluded);
    probability = that cluster's share of the k neighbours. No clustered neighbour: stays −1."""
    soft = labels.copy()
    sp = probs.copy()
    nb = knn_idx[:, 1:] if knn_idx.shape[1] > 1 else knn_idx
    k = max(1, nb.shape[1])
    for i in np.nonzero(labels < 0)[0]:
        votes = labels[nb[i]]
        votes = votes[votes >= 0]
        if votes.size:
            counts = np.bincount(votes)
            soft[i] = int(counts.argmax())
            sp[i] = counts.max() / k
        else:
            sp[i] = 0.0
    return soft, sp


def soft_membership(model, labels: np.ndarray, probs: np.ndarray,
                    knn_idx: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(soft_cluster, soft_probability) per point; see the module docstring."""
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    if model is None or labels.size == 0 or labels.max() < 0:
        return labels.copy(), probs.copy()
    if knn_idx is not None and method_for(labels.size, int(labels.max()) + 1) == SOFT_KNN:
        return knn_vote(labels, probs, knn_idx)
    import hdbscan

    if not isinstance(model, hdbscan.HDBSCAN):  # e.g. cuML's model: hdbscan's API does not apply
        return knn_vote(labels, probs, knn_idx) if knn_idx is not None else (labels.copy(),
                                                                              probs.copy())
    memb = np.asarray(hdbscan.all_points_membership_vectors(model), dtype=np.float64)
    memb = memb.reshape(labels.shape[0], -1)
    soft = labels.copy()
    noise = labels < 0
    soft[noise] = memb[noise].argmax(axis=1)
    sp = memb[np.arange(labels.size), soft]
    return soft, np.clip(sp, 0.0, 1.0)


def check_assign_floor(value: float) -> float:
    """`--assign-floor` as a float in [MIN_ASSIGN_FLOOR, 1]; anything else → InputError."""
    from memeatlas.cluster.config import MIN_ASSIGN_FLOOR
    from memeatlas.errors import InputError

    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if not MIN_ASSIGN_FLOOR <= v <= 1.0:  # NaN fails both comparisons
        raise InputError(f"--assign-floor must be between {MIN_ASSIGN_FLOOR:g} and 1 (the "
                         f"soft membership a noise meme needs to join its most likely "
                         f"cluster), got {value!r}")
    return v


def membership(labels: np.ndarray, soft: np.ndarray, soft_p: np.ndarray, floor: float,
               reassigned: np.ndarray | None = None) -> np.ndarray:
    """Each meme's place in a run: 'core' (HDBSCAN put it in a cluster), 'assigned' (noise
    whose best soft membership `soft_p` in cluster `soft` is at least `floor`) or 'noise'.

    `reassigned` marks memes a --reassign-noise run moved out of noise: they hold a cluster
    but were not core in the fit, so they are 'assigned' too. The one definition every
    reader uses: `cluster_assignments.membership` (and the `cluster_members` view).
    """
    labels = np.asarray(labels, dtype=np.int64)
    soft = np.asarray(soft, dtype=np.int64)
    sp = np.nan_to_num(np.asarray(soft_p, dtype=np.float64), nan=0.0)
    out = np.where(labels >= 0, "core",
                   np.where((soft >= 0) & (sp >= floor), "assigned", "noise")).astype(object)
    if reassigned is not None:
        out[np.asarray(reassigned, dtype=bool) & (labels >= 0)] = "assigned"
    return out
