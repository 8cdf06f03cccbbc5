"""Soft membership: for every meme, noise included, its most likely cluster and how likely.

HDBSCAN's hard labels leave noise as −1. Its soft clustering (`all_points_membership_vectors`,
McInnes' distance × outlier membership in the condensed tree) gives every point a probability
per cluster. memeatlas stores, beside the hard label:

- `soft_cluster`: the hard cluster for clustered memes; for noise, the cluster with the highest
  membership;
- `soft_probability`: the membership probability of `soft_cluster` (for noise, how strongly the
  point belongs there; small values mean "really nothing").

Baselines have no noise: their soft columns equal the hard ones.
"""

from __future__ import annotations

import numpy as np


def soft_membership(model, labels: np.ndarray, probs: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(soft_cluster, soft_probability) per point; see the module docstring."""
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    if model is None or labels.size == 0 or labels.max() < 0:
        return labels.copy(), probs.copy()
    import hdbscan

    memb = np.asarray(hdbscan.all_points_membership_vectors(model), dtype=np.float64)
    memb = memb.reshape(labels.shape[0], -1)
    soft = labels.copy()
    noise = labels < 0
    soft[noise] = memb[noise].argmax(axis=1)
    sp = memb[np.arange(labels.size), soft]
    return soft, np.clip(sp, 0.0, 1.0)
