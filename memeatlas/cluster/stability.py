"""Stability across seeds: how much a clustering changes when only the random seed changes.

`cluster --stability N` fits the run's whole procedure (UMAP reduction, automatic size choice,
HDBSCAN) with seeds seed, seed+1, …, seed+N−1 on the same inputs. Stored:

- run level (`cluster_runs.stability`): the mean adjusted Rand index over all N·(N−1)/2 pairs
  of seeds, computed on the hard labels with every noise point its own singleton (noise that
  moves between seeds counts as disagreement, noise that stays noise does not inflate it);
  `params.stability` also keeps every pairwise ARI and the ARI of the assigned (soft) labels;
- cluster level (`cluster_stability`), for each cluster of the run's own seed:
  `jaccard` — the mean over the other seeds of its best Jaccard match (Hennig 2007's clusterwise
  stability: ≥ 0.75 stable, ≤ 0.5 dissolved), and `together` — the mean share of its member
  pairs that the other seed also puts in one (non-noise) cluster.

ARI ≈ 1 means the seed does not matter; a structureless blob gives clearly lower values.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def _singletons(labels: np.ndarray) -> np.ndarray:
    lab = np.asarray(labels, dtype=np.int64).copy()
    noise = lab < 0
    lab[noise] = (lab.max() + 1 if lab.size else 0) + np.arange(int(noise.sum()))
    return lab


def pairwise_ari(labelings: list[np.ndarray]) -> list[float]:
    """ARI of every pair of labelings (noise as singletons), in itertools.combinations order."""
    from sklearn.metrics import adjusted_rand_score

    labs = [_singletons(lab) for lab in labelings]
    return [float(adjusted_rand_score(a, b)) for a, b in itertools.combinations(labs, 2)]


def cluster_stability(ref: np.ndarray, others: list[np.ndarray]) -> list[dict[str, Any]]:
    """Per cluster of `ref` (noise −1 excluded): size, mean best Jaccard, mean pair togetherness."""
    ref = np.asarray(ref, dtype=np.int64)
    out = []
    clusters = sorted(set(ref.tolist()) - {-1})
    others = [np.asarray(o, dtype=np.int64) for o in others]
    o_sizes = [np.bincount(o[o >= 0]) if (o >= 0).any() else np.zeros(0, int) for o in others]
    for c in clusters:
        members = ref == c
        size = int(members.sum())
        jac, tog = [], []
        for o, o_size in zip(others, o_sizes, strict=True):
            inside = o[members]
            lab, cnt = np.unique(inside[inside >= 0], return_counts=True)
            if lab.size == 0:
                jac.append(0.0)
                tog.append(0.0)
                continue
            sizes = o_size[lab]
            jac.append(float(np.max(cnt / (size + sizes - cnt))))
            pairs = size * (size - 1) / 2
            tog.append(float((cnt * (cnt - 1) / 2).sum() / pairs) if pairs else 1.0)
        out.append({"cluster": int(c), "size": size,
                    "jaccard": float(np.mean(jac)) if jac else None,
                    "together": float(np.mean(tog)) if tog else None})
    return out


@dataclass
class Stability:
    """What `measure` found."""

    seeds: list[int]
    ari: list[float]
    ari_assigned: list[float]
    clusters: list[dict[str, Any]] = field(default_factory=list)
    n_clusters: list[int] = field(default_factory=list)

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)

    @property
    def mean_ari(self) -> float:
        return float(np.mean(self.ari)) if self.ari else 1.0

    def params(self) -> dict[str, Any]:
        """What the run's params record (rounded; the per-cluster rows go to a table)."""
        return {"seeds": self.seeds, "mean_ari": round(self.mean_ari, 6),
                "min_ari": round(float(min(self.ari)), 6) if self.ari else None,
                "pairwise_ari": [round(v, 6) for v in self.ari],
                "mean_ari_assigned": round(float(np.mean(self.ari_assigned)), 6)
                if self.ari_assigned else None,
                "n_clusters": self.n_clusters,
                "mean_cluster_jaccard": round(float(np.mean(
                    [c["jaccard"] for c in self.clusters])), 6) if self.clusters else None}


def measure(fits: list[tuple[np.ndarray, np.ndarray]], seeds: list[int]) -> Stability:
    """Stability of (hard, soft) labelings, the first being the run's own seed."""
    hard = [np.asarray(h) for h, _ in fits]
    soft = [np.asarray(s) for _, s in fits]
    return Stability(seeds=list(seeds), ari=pairwise_ari(hard),
                     ari_assigned=pairwise_ari(soft),
                     clusters=cluster_stability(hard[0], hard[1:]),
                     n_clusters=[int(len(set(h.tolist()) - {-1})) for h in hard])


def consensus(labelings: list[np.ndarray], knn_idx: np.ndarray, min_size: int,
              threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Consensus of several labelings over the k-NN graph (co-association, kept sparse).

    An edge i–j of the k-NN graph is kept when i and j share a (non-noise) cluster in at least
    `threshold` of the labelings; the connected components of at least `min_size` memes are the
    consensus clusters (numbered by size), the rest is noise (−1). Returns (labels, probability
    = mean co-association of a meme with its kept neighbours, soft cluster = for noise, the
    consensus cluster most of its neighbours are in; −1 when none is).
    """
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    labs = np.stack([np.asarray(lab, dtype=np.int64) for lab in labelings])  # [s, n]
    n = labs.shape[1]
    nb = knn_idx[:, 1:] if knn_idx.shape[1] > 1 else knn_idx
    rows = np.repeat(np.arange(n), nb.shape[1])
    cols = nb.reshape(-1)
    same = (labs[:, rows] == labs[:, cols]) & (labs[:, rows] >= 0)
    co = same.mean(axis=0)
    keep = co >= threshold
    g = sp.csr_matrix((co[keep], (rows[keep], cols[keep])), shape=(n, n))
    g = g.maximum(g.T)
    _, comp = connected_components(g, directed=False)
    sizes = np.bincount(comp)
    big = [c for c in np.argsort(-sizes, kind="stable") if sizes[c] >= max(2, min_size)]
    remap = np.full(sizes.size, -1, dtype=np.int64)
    remap[big] = np.arange(len(big))
    labels = remap[comp]
    strength = np.asarray(g.sum(axis=1)).ravel() / np.maximum(1, np.diff(g.indptr))
    probs = np.where(labels >= 0, strength, 0.0)
    soft = labels.copy()
    for i in np.nonzero(labels < 0)[0]:
        votes = labels[nb[i]]
        votes = votes[votes >= 0]
        if votes.size:
            soft[i] = np.bincount(votes).argmax()
    return labels, probs.astype(np.float64), soft
