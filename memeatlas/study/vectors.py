"""The vectors of a run's space(s), for splitting clusters, centroids and report neighbours."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def run_spaces(info: dict) -> tuple[list[str], list[float]]:
    """(spaces, weights) a run was clustered on, from its `cluster_runs` row."""
    spaces = info.get("spaces") or [{"space": info["space"], "weight": 1.0}]
    names = [s["space"] for s in spaces]
    w = np.asarray([float(s.get("weight", 1.0)) for s in spaces])
    w = w / w.sum() if w.sum() > 0 else np.full(len(names), 1.0 / len(names))
    return names, w.tolist()


def run_vectors(store, info: dict, meme_ids: Sequence[str] | None = None
                ) -> tuple[list[str], np.ndarray]:
    """(ids sorted, L2-normalised float32 rows) in the run's space.

    Several spaces are joined by weighted concatenation (√weight per block, so cosine similarity
    is the weighted mean of the per-space ones) — for a `dynamic` fusion this is the static
    approximation. Memes missing from a space are left out.
    """
    from memeatlas.corpus.vectors import load_aligned

    names, weights = run_spaces(info)
    ids, mats = load_aligned(store, names, meme_ids=meme_ids)
    x = np.hstack([m * np.sqrt(w) for m, w in zip(mats, weights, strict=True)]).astype(np.float32)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return ids, x


def nearest_neighbours(x: np.ndarray, k: int, exact_max: int = 60_000
                       ) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest rows of every row by cosine, itself excluded: (indices, similarities).

    Exact (blocked) up to `exact_max` rows, NN-descent above (memeatlas.cluster.knn).
    """
    from memeatlas.cluster.knn import knn

    n = x.shape[0]
    k = min(k, n - 1)
    if k <= 0:
        return np.zeros((n, 0), dtype=np.int64), np.zeros((n, 0), dtype=np.float32)
    (idx, dist), _ = knn(x, k + 1, exact_max=exact_max)
    # Drop the row itself (normally column 0; an exact duplicate may come first instead).
    is_self = idx == np.arange(n)[:, None]
    drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), k)
    keep = np.ones_like(idx, dtype=bool)
    keep[np.arange(n), drop] = False
    idx = idx[keep].reshape(n, k)
    sim = (1.0 - dist[keep].reshape(n, k)).astype(np.float32)
    return idx.astype(np.int64), sim
