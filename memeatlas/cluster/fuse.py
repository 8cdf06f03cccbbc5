"""Fusing several embedding spaces into one matrix before clustering.

Two methods, both on L2-normalised vectors x_s(i) of meme i in space s, with user weights g_s
(non-negative, one per space, normalised to sum to 1):

* **concat** (weighted concatenation): z(i) = [√g_1·x_1(i), …, √g_S·x_S(i)].
  Then z(i)·z(j) = Σ_s g_s cos_s(i, j): the fused cosine is the weighted mean of the
  per-space cosines, and ‖z(i)‖ = 1.

* **dynamic** (per-meme modality weighting, after Sherratt & Dethlefs' dynamic modality
  weighting, §4.3 of papers/001): each space gets a per-meme confidence — how coherently it
  places the meme among neighbours — and the weights follow the paper's normalisation
      c_s(i) = (1/k) Σ_{j ∈ N_s(i)} |N_s(i) ∩ N_s(j)| / k          (shared-neighbour coherence)
      w_s(i) = g_s·c_s(i) / (Σ_t g_t·c_t(i) + ε)                     (ε = 1e-9; equal w if all c=0)
  where N_s(i) are i's k nearest neighbours in space s (cosine, i itself excluded). c_s(i) is
  near 1 when i's neighbours are also each other's neighbours (a tight, consistent
  neighbourhood) and near k/n when the space scatters i among unrelated memes (pure noise). It
  is rank-based, so spaces whose cosine scales differ (CLIP vs MiniLM) are compared fairly —
  the role the softmax top-probability plays in the paper. The fused vector is
      z(i) = [√w_1(i)·x_1(i), …, √w_S(i)·x_S(i)],
  so z(i)·z(j) = Σ_s √(w_s(i) w_s(j)) cos_s(i, j): each pair is compared in the spaces that
  place both of its memes confidently, and ‖z(i)‖ = 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from memeatlas.errors import InputError

EPS = 1e-9


def validate_weights(weights: Sequence[float] | None, n_spaces: int) -> np.ndarray:
    """User weights → float64 array summing to 1 (equal when None).

    Raises InputError when the count does not match the spaces, a weight is negative or not
    finite, or all weights are zero.
    """
    if weights is None or len(weights) == 0:
        return np.full(n_spaces, 1.0 / n_spaces)
    w = np.asarray(list(weights), dtype=np.float64)
    if w.shape[0] != n_spaces:
        raise InputError(f"--weights has {w.shape[0]} value(s) for {n_spaces} space(s); give "
                         f"one weight per --space, e.g. --weights 0.7,0.3")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise InputError(f"--weights must be finite and non-negative, got {list(weights)}")
    if w.sum() <= 0:
        raise InputError("--weights are all zero; give at least one positive weight")
    return w / w.sum()


def _neighbours(x: np.ndarray, k: int) -> np.ndarray:
    """k nearest neighbours of every row, itself excluded (exact, or NN-descent for large n)."""
    from memeatlas.cluster.knn import knn

    (idx, _), _method = knn(x, k + 1)
    return idx[:, 1:]


def neighbourhood_coherence(knn_idx: np.ndarray, train_idx: np.ndarray | None = None) -> np.ndarray:
    """c(i) = mean over i's neighbours j of |N(i) ∩ N(j)| / k, from a k-NN index matrix.

    `knn_idx` must not contain i itself (column 0 of a self-including k-NN is dropped by the
    caller). With `train_idx`, rows of `knn_idx` are new memes' neighbours among training memes
    and N(j) comes from the training memes' own k-NN (`train_idx`). Vectorised in blocks;
    O(n k³) comparisons.
    """
    n, k = knn_idx.shape
    if k == 0:
        return np.zeros(n)
    table = knn_idx if train_idx is None else train_idx
    out = np.empty(n, dtype=np.float64)
    block = max(1, 2_000_000 // (k * k * k))
    for start in range(0, n, block):
        stop = min(n, start + block)
        a = knn_idx[start:stop]                   # N(i)            [b, k]
        b = table[a]                              # N(j), j ∈ N(i)  [b, k, k]
        hit = (b[..., None] == a[:, None, None, :]).any(axis=-1)
        out[start:stop] = hit.sum(axis=(1, 2)) / float(k * k)
    return out


def _confidence_weights(conf: np.ndarray, base: np.ndarray) -> np.ndarray:
    """w_s(i) = g_s·c_s(i) / (Σ_t g_t·c_t(i) + ε), equal (= g) where every c is 0; rows sum to 1."""
    raw = conf * base[None, :]
    tot = raw.sum(axis=1, keepdims=True)
    w = np.where(tot > EPS, raw / (tot + EPS), base[None, :])
    return w / w.sum(axis=1, keepdims=True)


def _stack(xs: Sequence[np.ndarray], w: np.ndarray) -> np.ndarray:
    """z(i) = [√w_1(i)·x_1(i), …, √w_S(i)·x_S(i)] as contiguous float32."""
    z = np.concatenate([np.sqrt(w[:, s:s + 1]).astype(np.float32) * xs[s]
                        for s in range(len(xs))], axis=1)
    return np.ascontiguousarray(z, dtype=np.float32)


def dynamic_weights(mats: Sequence[np.ndarray], base: np.ndarray, k: int = 15,
                    knns: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """Per-meme weights w[i, s] (rows sum to 1) from shared-neighbour coherence per space."""
    n = mats[0].shape[0]
    k = max(1, min(k, n - 1))
    conf = np.empty((n, len(mats)))
    for s, x in enumerate(mats):
        if knns is not None and knns[s] is not None:
            idx = knns[s]
        else:
            idx = _neighbours(x, k)
        conf[:, s] = neighbourhood_coherence(idx[:, :k])
    return _confidence_weights(conf, base)


def fuse(mats: Sequence[np.ndarray], weights: Sequence[float] | None = None, *,
         method: str = "concat", k: int = 15) -> tuple[np.ndarray, dict]:
    """Fuse aligned matrices (same rows, same order) into one; returns (matrix, info).

    info holds the normalised global weights and, for 'dynamic', the per-meme weight matrix
    ('meme_weights', [n, S]) and its mean per space.
    """
    from memeatlas.cluster.knn import normalise

    if method not in ("concat", "dynamic"):
        raise InputError(f"unknown fusion {method!r}; choose concat or dynamic")
    g = validate_weights(weights, len(mats))
    xs = [normalise(m) for m in mats]
    if len(xs) == 1:
        return xs[0], {"weights": g.tolist(), "method": "none"}
    if method == "concat":
        w = np.tile(g, (xs[0].shape[0], 1))
    else:
        w = dynamic_weights(xs, g, k=k)
    info = {"weights": g.tolist(), "method": method}
    if method == "dynamic":
        info["meme_weights"] = w
        info["mean_meme_weights"] = w.mean(axis=0).tolist()
    return _stack(xs, w), info


def fuse_new(train_mats: Sequence[np.ndarray], new_mats: Sequence[np.ndarray],
             weights: Sequence[float] | None, *, method: str = "concat", k: int = 15
             ) -> np.ndarray:
    """Fuse memes that were not part of a fit, the way `fuse` fused the training memes.

    For 'dynamic', a new meme's confidence in space s uses its k nearest *training* memes
    N_s(q) and those memes' own training neighbourhoods: c_s(q) = (1/k) Σ_{j∈N_s(q)}
    |N_s(q) ∩ N_s(j)| / k, then the same normalisation as for the fit.
    """
    from memeatlas.cluster.knn import exact_knn, normalise

    g = validate_weights(weights, len(train_mats))
    xs_new = [normalise(m) for m in new_mats]
    if len(xs_new) == 1:
        return xs_new[0]
    n = xs_new[0].shape[0]
    if method == "concat":
        w = np.tile(g, (n, 1))
    else:
        conf = np.empty((n, len(train_mats)))
        for s, (tr, nw) in enumerate(zip(train_mats, xs_new, strict=True)):
            kk = max(1, min(k, tr.shape[0] - 1))
            train_idx = _neighbours(tr, kk)
            q_idx, _ = exact_knn(tr, kk, queries=nw)
            conf[:, s] = neighbourhood_coherence(q_idx, train_idx)
        w = _confidence_weights(conf, g)
    return _stack(xs_new, w)
