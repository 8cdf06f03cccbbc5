"""Krippendorff's alpha (nominal, ordinal, interval, ratio) and agreement per rating dimension.

The implementation follows Krippendorff (2011, "Computing Krippendorff's alpha-reliability"):
build the coincidence matrix o_ck from every unit with at least two values (each ordered pair of
values from different coders adds 1/(m_u − 1)), take n_c = Σ_k o_ck and n = Σ_c n_c, then

    alpha = 1 − (n − 1) · Σ_ck o_ck δ²_ck / Σ_ck n_c n_k δ²_ck

with the ordinal metric δ²_ck = (Σ_{g=c..k} n_g − (n_c + n_k)/2)² over the sorted values that occur.
The tests check it against the `krippendorff` package. The CI is a percentile bootstrap over units
(pairs), which keeps each pair's ratings together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from memeatlas.errors import InputError
from memeatlas.evaluate.common import new_eval_id, store_evaluations
from memeatlas.evaluate.pairs import require_pair_set
from memeatlas.evaluate.ratings import load_ratings

LEVELS = ("nominal", "ordinal", "interval", "ratio")


def _delta2(values: np.ndarray, n_v: np.ndarray, level: str) -> np.ndarray:
    """Squared difference metric δ²[c, k] over the value domain."""
    v = values.astype(float)
    if level == "nominal":
        return (v[:, None] != v[None, :]).astype(float)
    if level == "interval":
        return (v[:, None] - v[None, :]) ** 2
    if level == "ratio":
        s = v[:, None] + v[None, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            d = ((v[:, None] - v[None, :]) / s) ** 2
        return np.nan_to_num(d)
    if level == "ordinal":
        cum = np.concatenate([[0.0], np.cumsum(n_v)])
        idx = np.arange(len(v))
        lo = np.minimum(idx[:, None], idx[None, :])
        hi = np.maximum(idx[:, None], idx[None, :])
        between = cum[hi + 1] - cum[lo]  # Σ_{g=lo..hi} n_g
        return (between - (n_v[:, None] + n_v[None, :]) / 2.0) ** 2
    raise InputError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")


def _unit_coincidences(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Value domain and per-unit coincidence matrices [units, V, V] (units with < 2 values are zero)."""
    values = np.unique(data[~np.isnan(data)])
    n_units = data.shape[1]
    out = np.zeros((n_units, len(values), len(values)))
    for u in range(n_units):
        col = data[:, u]
        col = col[~np.isnan(col)]
        m = len(col)
        if m < 2:
            continue
        idx = np.searchsorted(values, col)
        counts = np.bincount(idx, minlength=len(values)).astype(float)
        # All ordered pairs of values from different coders: counts ⊗ counts minus self-pairs.
        o = np.outer(counts, counts) - np.diag(counts)
        out[u] = o / (m - 1)
    return values, out


def _alpha_from_o(o: np.ndarray, values: np.ndarray, level: str) -> float:
    n_v = o.sum(axis=1)
    n = n_v.sum()
    if n <= 1:
        return float("nan")
    d2 = _delta2(values, n_v, level)
    expected = (np.outer(n_v, n_v) * d2).sum()
    if expected == 0:
        return float("nan")  # no variation at all: alpha is undefined
    return float(1.0 - (n - 1) * (o * d2).sum() / expected)


def krippendorff_alpha(data, level: str = "ordinal") -> float:
    """Alpha for a reliability matrix [coders, units] with NaN for missing values."""
    arr = np.asarray(data, dtype=float)
    if arr.ndim != 2:
        raise InputError("reliability data must be a 2-D array [coders, units]")
    if level not in LEVELS:
        raise InputError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    values, per_unit = _unit_coincidences(arr)
    if len(values) == 0:
        return float("nan")
    return _alpha_from_o(per_unit.sum(axis=0), values, level)


def alpha_bootstrap(data, level: str = "ordinal", b: int = 1000, seed: int = 0
                    ) -> tuple[float, float, float]:
    """(alpha, ci_low, ci_high): percentile bootstrap over units (pairs)."""
    arr = np.asarray(data, dtype=float)
    values, per_unit = _unit_coincidences(arr)
    if len(values) == 0:
        return float("nan"), float("nan"), float("nan")
    point = _alpha_from_o(per_unit.sum(axis=0), values, level)
    if b <= 0:
        return point, float("nan"), float("nan")
    pairable = np.flatnonzero(per_unit.reshape(len(per_unit), -1).sum(axis=1) > 0)
    if len(pairable) < 2:
        return point, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    flat = per_unit[pairable].reshape(len(pairable), -1)
    stats = []
    for start in range(0, b, 256):
        size = min(256, b - start)
        counts = rng.multinomial(len(pairable), np.full(len(pairable), 1 / len(pairable)), size=size)
        o_b = (counts @ flat).reshape(size, len(values), len(values))
        stats.extend(_alpha_from_o(o, values, level) for o in o_b)
    stats = np.array(stats)
    stats = stats[~np.isnan(stats)]
    if len(stats) == 0:
        return point, float("nan"), float("nan")
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return point, float(lo), float(hi)


@dataclass
class AgreementResult:
    """Alpha per dimension of one pair set."""

    pair_set: str
    level: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    eval_id: str | None = None
    columns: tuple[str, ...] = ("dimension", "alpha", "ci_low", "ci_high", "coders", "pairs",
                                "ratings", "exact_agreement", "mean_rating")


def reliability_matrix(df) -> tuple[list[str], list[str], np.ndarray]:
    """(coders, pair ids, [coders, pairs] matrix with NaN) from rating rows of one dimension."""
    coders = sorted(df["coder"].unique())
    pids = sorted(df["pair_id"].unique())
    ci = {c: i for i, c in enumerate(coders)}
    pi = {p: i for i, p in enumerate(pids)}
    mat = np.full((len(coders), len(pids)), np.nan)
    for c, p, r in zip(df["coder"], df["pair_id"], df["rating"], strict=True):
        mat[ci[c], pi[p]] = r
    return coders, pids, mat


def agreement(store, pair_set: str, *, dimensions: list[str] | None = None, level: str = "ordinal",
              bootstrap: int = 1000, seed: int = 0, save: bool = True) -> AgreementResult:
    """Krippendorff's alpha per dimension of a pair set, with coders, pairable pairs and a bootstrap CI.

    Stored in `evaluations` as metric `alpha_<level>` (run_id NULL) unless `save` is False.
    """
    if level not in LEVELS:
        raise InputError(f"--level must be one of {', '.join(LEVELS)}, got {level!r}")
    require_pair_set(store, pair_set)
    df = load_ratings(store, pair_set)
    if df.empty:
        raise InputError(f"pair set {pair_set!r} has no ratings; import them with "
                         f"`memeatlas evaluate import-ratings`")
    dims = dimensions or sorted(df["dimension"].unique())
    res = AgreementResult(pair_set=pair_set, level=level)
    for d in dims:
        sub = df[df["dimension"] == d]
        if sub.empty:
            raise InputError(f"pair set {pair_set!r} has no ratings for dimension {d!r}; dimensions: "
                             f"{', '.join(sorted(df['dimension'].unique()))}")
        coders, pids, mat = reliability_matrix(sub)
        pairable = (~np.isnan(mat)).sum(axis=0) >= 2
        if len(coders) < 2 or not pairable.any():
            a = lo = hi = float("nan")
            res.notes.append(f"{d}: alpha needs pairs rated by at least two coders "
                             f"({len(coders)} coder(s), {int(pairable.sum())} such pairs)")
        elif np.isnan(a := krippendorff_alpha(mat, level)):
            lo = hi = float("nan")
            res.notes.append(f"{d}: every rating is the same value, so alpha is undefined")
        else:
            a, lo, hi = alpha_bootstrap(mat, level, bootstrap, seed)
        # Share of pairable pairs where every coder gave the same rating: easy to explain next to alpha.
        exact = float("nan")
        if pairable.any():
            m = mat[:, pairable]
            same = [len(set(col[~np.isnan(col)])) == 1 for col in m.T]
            exact = float(np.mean(same))
        res.rows.append({"dimension": d, "alpha": a, "ci_low": lo, "ci_high": hi, "coders": len(coders),
                         "pairs": int(pairable.sum()), "ratings": int(len(sub)),
                         "exact_agreement": exact, "mean_rating": float(sub["rating"].mean())})
    if save:
        res.eval_id = new_eval_id("agreement")
        store_evaluations(store, res.eval_id, "agreement", [
            {"run_id": None, "metric": f"alpha_{level}", "value": r["alpha"], "ci_low": r["ci_low"],
             "ci_high": r["ci_high"], "n": r["pairs"], "pair_set": pair_set, "dimension": r["dimension"],
             "details": {"dimension": r["dimension"], "coders": r["coders"], "ratings": r["ratings"],
                         "level": level, "bootstrap": bootstrap, "seed": seed,
                         "exact_agreement": r["exact_agreement"], "ci": "percentile bootstrap over pairs"}}
            for r in res.rows])
    return res
