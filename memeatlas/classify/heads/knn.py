"""`knn`: per-class nearest-neighbour distances per space, softmax, dynamic modality weighting.

Sherratt & Dethlefs' design. For a meme x, space s and class c:

    d_s,c(x) = mean cosine distance from x to its k nearest training memes of class c in s
    p_s,c(x) = softmax_c(−d_s,c(x) / τ_s)            (optionally only the top_k classes kept, renormalised)
    conf_s(x) = 1 − H(p_s(x)) / log C                 (1: one class certain; 0: uniform)
    w_s(x)    = (conf_s(x) + ε) / Σ_s' (conf_s'(x) + ε)
    p_c(x)    = Σ_s w_s(x) · p_s,c(x)

so each space speaks for a meme in proportion to how sure it is about that meme (a noise space
has near-uniform p_s and gets almost no weight). `weighting=top` uses the paper's confidence,
conf_s(x) = max_c p_s,c(x), instead; `weighting=equal` averages the spaces. τ_s is chosen per space on the training memes
by leave-one-out: the τ from a log grid that minimises the class-weighted log loss.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from memeatlas.classify.heads.base import Head, balanced_class_weight
from memeatlas.errors import InputError
from memeatlas.ranges import Range

EPS = 1e-3
WEIGHTINGS = ("dynamic", "top", "equal")
_TAU_GRID = np.geomspace(0.002, 2.0, 40)
_CHUNK = 1024


def class_distances(Q: np.ndarray, X: np.ndarray, y: np.ndarray, n_classes: int, k: int,
                    exclude_self: bool = False) -> np.ndarray:
    """[len(Q), C] mean cosine distance to the k nearest training rows of each class.

    Rows are L2-normalised, so cosine distance is 1 − dot. With `exclude_self` Q is X and each
    row's own entry is left out (leave-one-out). A class with fewer than k others uses what it has;
    a class with none gets distance 2 (the maximum).
    """
    out = np.full((len(Q), n_classes), 2.0, dtype=np.float32)
    members = [np.nonzero(y == c)[0] for c in range(n_classes)]
    for start in range(0, len(Q), _CHUNK):
        S = Q[start:start + _CHUNK] @ X.T
        if exclude_self:
            r = np.arange(S.shape[0])
            S[r, start + r] = -np.inf
        for c, idx in enumerate(members):
            if len(idx) == 0:
                continue
            Sc = S[:, idx]
            kk = min(k, len(idx))
            if kk == 1:
                best = Sc.max(axis=1, keepdims=True)
            else:
                best = np.partition(Sc, len(idx) - kk, axis=1)[:, len(idx) - kk:]  # the kk largest
            best = np.where(np.isfinite(best), best, np.nan)
            with warnings.catch_warnings():  # a row whose only class member is itself: all-NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nanmean(best, axis=1)
            out[start:start + _CHUNK, c] = np.where(np.isnan(mean), 2.0, 1.0 - mean)
    return out


def softmax_neg(D: np.ndarray, tau: float, top_k: int | None = None) -> np.ndarray:
    """softmax(−D/τ) per row, optionally keeping only the top_k classes (renormalised)."""
    Z = -D.astype(np.float64) / tau
    Z -= Z.max(axis=1, keepdims=True)
    P = np.exp(Z)
    if top_k and top_k < P.shape[1]:
        cut = -np.partition(-P, top_k - 1, axis=1)[:, top_k - 1:top_k]
        P = np.where(P >= cut, P, 0.0)
    return P / P.sum(axis=1, keepdims=True)


def confidence(P: np.ndarray) -> np.ndarray:
    """1 − normalised entropy of each row of P."""
    C = P.shape[1]
    if C < 2:
        return np.ones(len(P))
    with np.errstate(divide="ignore", invalid="ignore"):
        H = -np.where(P > 0, P * np.log(P), 0.0).sum(axis=1)
    return 1.0 - H / np.log(C)


def modality_weights(Ps: Sequence[np.ndarray], mode: str = "dynamic") -> np.ndarray:
    """[n, S] weight of each space for each meme (rows sum to 1)."""
    if mode not in WEIGHTINGS:
        raise InputError(f"knn weighting must be one of {', '.join(WEIGHTINGS)}, got {mode!r}")
    if mode == "equal" or len(Ps) == 1:
        return np.full((len(Ps[0]), len(Ps)), 1.0 / len(Ps))
    if mode == "top":  # Sherratt & Dethlefs: a space's confidence is its top probability
        conf = np.stack([P.max(axis=1) for P in Ps], axis=1) + EPS
    else:
        conf = np.stack([confidence(P) for P in Ps], axis=1) + EPS
    return conf / conf.sum(axis=1, keepdims=True)


class KnnHead(Head):
    """Nearest-neighbour class distances with a per-space softmax and dynamic modality weighting."""

    name = "knn"
    DEFAULTS = {"k": 5, "top_k": None, "temperature": "auto", "weighting": "dynamic"}
    RANGES = {"k": Range(1, 10_000, integer=True),
              "top_k": Range(1, 10_000, integer=True, none_ok=True),
              "temperature": Range(0, 100, lo_open=True, words=("auto",)),
              "weighting": WEIGHTINGS}

    def fit(self, Xs, y, n_classes, *, class_weight=None, seed=0, class_name_vectors=None):
        Xs = self._check(Xs)
        self.dims = [x.shape[1] for x in Xs]
        self.n_classes = n_classes
        self.X = Xs
        self.y = np.asarray(y, dtype=np.int64)
        w = class_weight if class_weight is not None else balanced_class_weight(self.y, n_classes)
        t = self.params["temperature"]
        self.taus = []
        for X in Xs:
            if isinstance(t, (int, float)):
                self.taus.append(float(t))
                continue
            D = class_distances(X, X, self.y, n_classes, int(self.params["k"]), exclude_self=True)
            self.taus.append(_best_tau(D, self.y, w[self.y], self.params["top_k"]))
        self.info = {"temperatures": [round(x, 5) for x in self.taus]}
        return self

    def space_probas(self, Xs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """p_s for every space: [n, C] each."""
        Xs = self._check(Xs)
        return [softmax_neg(class_distances(Q, X, self.y, self.n_classes, int(self.params["k"])), tau,
                            self.params["top_k"])
                for Q, X, tau in zip(Xs, self.X, self.taus, strict=True)]

    def weights(self, Xs: Sequence[np.ndarray]) -> np.ndarray:
        """The modality weights w_s(x), [n, S]."""
        return modality_weights(self.space_probas(Xs), self.params["weighting"])

    def predict_proba(self, Xs):
        Ps = self.space_probas(Xs)
        W = modality_weights(Ps, self.params["weighting"])
        return sum(W[:, [i]] * P for i, P in enumerate(Ps))


def _best_tau(D: np.ndarray, y: np.ndarray, w: np.ndarray, top_k: int | None) -> float:
    """τ on the grid with the lowest weighted leave-one-out log loss (top-k applied after the choice)."""
    best, best_tau = np.inf, float(_TAU_GRID[len(_TAU_GRID) // 2])
    r = np.arange(len(y))
    for tau in _TAU_GRID:
        P = softmax_neg(D, float(tau))
        loss = -(w * np.log(np.clip(P[r, y], 1e-12, None))).sum() / w.sum()
        if loss < best:
            best, best_tau = loss, float(tau)
    return best_tau
