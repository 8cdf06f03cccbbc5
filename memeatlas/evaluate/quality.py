"""Grimmer & King cluster quality (CQ) on human pair ratings, with bootstrap CIs and paired ΔCQ.

For a clustering c and rated pairs (coders averaged per pair first):

    CQ(c) = mean rating of the pairs c puts together − mean rating of the pairs c puts apart
    ΔCQ(A, B) = CQ(A) − CQ(B), on the pairs both runs cover

Memes are where the run's one membership puts them (``cluster_membership``): by default
(``noise='assigned'``) memes assigned from noise are in their cluster and the remaining noise
(cluster −1) is in no cluster, so a pair with a noise point is apart; ``noise='apart'`` keeps
only core members in clusters. ``noise='drop'`` leaves such pairs out for that run (for ΔCQ: out if either
run drops it); ``noise='cluster'`` treats −1 as one more cluster. The handling is printed and stored.

Pairs from a stratified pair set are weighted by inverse inclusion probability (stratum population /
rated pairs in the stratum), so CQ estimates what uniform sampling would, with more within-cluster
pairs behind it (``weights='design'``, the default for stratified sets; ``weights='none'`` gives
every pair weight 1). The bootstrap resamples pairs with replacement within each stratum; ΔCQ uses
the same resamples for both runs (paired). CIs are 2.5/97.5 percentiles.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from memeatlas.corpus.runs import get_run_info
from memeatlas.errors import InputError
from memeatlas.evaluate.common import (
    NOISE_TEXT,
    check_noise,
    load_assignments,
    new_eval_id,
    resolve_runs,
    store_evaluations,
    together,
)
from memeatlas.evaluate.pairs import require_pair_set
from memeatlas.evaluate.ratings import load_ratings

WEIGHTS = ("auto", "design", "none")
TOGETHER, APART, EXCLUDED = 1, 0, -1
_CHUNK = 250  # bootstrap replicates per matrix product (bounds memory at ~CHUNK × pairs floats)


def cq_point(ratings, status, weights=None) -> tuple[float, float, float, int, int]:
    """(CQ, mean within, mean between, n within, n between) for one run.

    `ratings`: per-pair mean rating; `status`: 1 together, 0 apart, −1 excluded; `weights`: per pair.
    """
    y = np.asarray(ratings, float)
    s = np.asarray(status)
    w = np.ones_like(y) if weights is None else np.asarray(weights, float)
    t, a = s == TOGETHER, s == APART
    mw = float((w[t] * y[t]).sum() / w[t].sum()) if t.any() else float("nan")
    mb = float((w[a] * y[a]).sum() / w[a].sum()) if a.any() else float("nan")
    return mw - mb, mw, mb, int(t.sum()), int(a.sum())


def bootstrap_counts(strata, b: int, seed: int):
    """Yield [chunk, n_pairs] resample counts: multinomial within each stratum (fixed stratum sizes)."""
    strata = np.asarray(strata)
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(strata == s) for s in sorted(set(strata.tolist()))]
    done = 0
    while done < b:
        size = min(_CHUNK, b - done)
        counts = np.zeros((size, len(strata)))
        for g in groups:
            counts[:, g] = rng.multinomial(len(g), np.full(len(g), 1.0 / len(g)), size=size)
        done += size
        yield counts


def _cq_from_counts(counts, y, w, status) -> np.ndarray:
    t = (status == TOGETHER).astype(float) * w
    a = (status == APART).astype(float) * w
    with np.errstate(invalid="ignore", divide="ignore"):
        mw = (counts @ (t * y)) / (counts @ t)
        mb = (counts @ (a * y)) / (counts @ a)
    return mw - mb


def _ci(stats: np.ndarray) -> tuple[float, float, int]:
    good = stats[~np.isnan(stats)]
    if len(good) == 0:
        return float("nan"), float("nan"), len(stats)
    lo, hi = np.percentile(good, [2.5, 97.5])
    return float(lo), float(hi), int(len(stats) - len(good))


def compare_runs(y, statuses: dict[str, np.ndarray], *, weights=None, strata=None, b: int = 2000,
                 seed: int = 0, deltas: bool = True) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """CQ per run and ΔCQ for every pair of runs on the same rated pairs, with bootstrap CIs.

    Pure function (no database): `y` per-pair mean ratings, `statuses[run]` per-pair 1/0/−1.
    Returns (cq rows, delta rows).
    """
    y = np.asarray(y, float)
    n = len(y)
    w = np.ones(n) if weights is None else np.asarray(weights, float)
    strata = np.zeros(n, int) if strata is None else np.asarray(strata)
    runs = list(statuses)
    st = {r: np.asarray(statuses[r]) for r in runs}
    # ΔCQ uses the pairs both runs keep.
    pair_runs = list(itertools.combinations(runs, 2)) if deltas else []
    common = {(ra, rb): (st[ra] != EXCLUDED) & (st[rb] != EXCLUDED) for ra, rb in pair_runs}
    boot: dict[Any, list[np.ndarray]] = {r: [] for r in runs}
    for key in pair_runs:
        boot[key] = []
    if b > 0 and n > 0:
        kept = {r: st[r] != EXCLUDED for r in runs}
        for counts in bootstrap_counts(strata, b, seed):
            cur = {r: _cq_from_counts(counts, y, w, st[r]) for r in runs}
            for r in runs:
                boot[r].append(cur[r])
            for ra, rb in pair_runs:
                keep = common[(ra, rb)]
                if np.array_equal(keep, kept[ra]) and np.array_equal(keep, kept[rb]):
                    boot[(ra, rb)].append(cur[ra] - cur[rb])  # same pairs: reuse the runs' replicates
                    continue
                sa = np.where(keep, st[ra], EXCLUDED)
                sb = np.where(keep, st[rb], EXCLUDED)
                boot[(ra, rb)].append(_cq_from_counts(counts, y, w, sa) - _cq_from_counts(counts, y, w, sb))
    cq_rows, delta_rows = [], []
    for r in runs:
        val, mw, mb, nw, nb = cq_point(y, st[r], w)
        lo, hi, bad = _ci(np.concatenate(boot[r])) if boot[r] else (float("nan"), float("nan"), 0)
        cq_rows.append({"run": r, "cq": val, "ci_low": lo, "ci_high": hi, "mean_within": mw,
                        "mean_between": mb, "n_within": nw, "n_between": nb, "n": nw + nb,
                        "degenerate_resamples": bad})
    for ra, rb in pair_runs:
        keep = common[(ra, rb)]
        va = cq_point(y, np.where(keep, st[ra], EXCLUDED), w)[0]
        vb = cq_point(y, np.where(keep, st[rb], EXCLUDED), w)[0]
        lo, hi, bad = (_ci(np.concatenate(boot[(ra, rb)])) if boot[(ra, rb)]
                       else (float("nan"), float("nan"), 0))
        delta_rows.append({"run_a": ra, "run_b": rb, "delta": va - vb, "ci_low": lo, "ci_high": hi,
                           "n": int(keep.sum()), "degenerate_resamples": bad,
                           "excludes_zero": bool(lo > 0 or hi < 0) if not np.isnan(lo) else None})
    return cq_rows, delta_rows


@dataclass
class QualityResult:
    """CQ and ΔCQ rows of one `quality` call (one row per run/dimension and run pair/dimension)."""

    pair_set: str
    runs: list[str]
    noise: str
    weights: str
    bootstrap: int
    seed: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    uncovered: dict[str, dict[str, Any]] = field(default_factory=dict)
    eval_id: str | None = None
    columns: tuple[str, ...] = ("metric", "run", "space", "vs", "dimension", "value", "ci_low", "ci_high",
                                "n", "n_within", "n_between", "mean_within", "mean_between")

    def cq(self, run: str, dimension: str) -> dict[str, Any]:
        return next(r for r in self.rows if r["metric"] == "cq" and r["run"] == run
                    and r["dimension"] == dimension)

    def delta(self, run_a: str, run_b: str, dimension: str) -> dict[str, Any]:
        return next(r for r in self.rows if r["metric"] == "delta_cq" and r["run"] == run_a
                    and r["vs"] == run_b and r["dimension"] == dimension)


def pair_table(store, pair_set: str, dimension: str | None = None, *, by_coder: bool = False):
    """One row per rated pair and dimension (and coder, with `by_coder`): mean rating over coders."""
    df = load_ratings(store, pair_set, dimension)
    if df.empty:
        return df
    keys = ["dimension"] + (["coder"] if by_coder else []) + ["pair_id", "meme_a", "meme_b", "stratum"]
    return (df.groupby(keys, dropna=False)
              .agg(rating=("rating", "mean"), coders=("coder", "nunique")).reset_index())


def design_weights(store, pair_set: str, pairs, mode: str, *, ps: dict[str, Any] | None = None
                   ) -> tuple[np.ndarray, str]:
    """Per-pair weights and the mode actually used ('design' or 'none').

    `ps`: the pair set's row (`require_pair_set`), when the caller has it already.
    """
    ps = ps if ps is not None else require_pair_set(store, pair_set)
    strata_pop = ((ps.get("params") or {}).get("strata") or {})
    if mode not in WEIGHTS:
        raise InputError(f"--weights must be one of {', '.join(WEIGHTS)}, got {mode!r}")
    use = mode
    if mode == "auto":
        use = "design" if ps.get("strategy") == "stratified" else "none"
    if use == "none" or not strata_pop:
        return np.ones(len(pairs)), "none"
    n_rated = pairs["stratum"].value_counts().to_dict()
    w = np.array([strata_pop.get(s, {}).get("population", n_rated.get(s, 1)) / n_rated.get(s, 1)
                  for s in pairs["stratum"]], float)
    # Rescale to mean 1: the ratio estimator does not care, and stored weights stay readable.
    return w / w.mean(), "design"


def quality(store, runs, pair_set: str, *, dimension: str | None = None, bootstrap: int = 2000,
            seed: int = 0, noise: str = "assigned", weights: str = "auto", save: bool = True,
            deltas: bool = True, command: str = "quality", by_coder: bool = False) -> QualityResult:
    """CQ per run with a bootstrap 95 % CI and paired ΔCQ for every pair of runs; stored in `evaluations`.

    Rated memes a run does not cover are reported in `result.uncovered` and `result.notes`; their
    pairs are left out for that run (and for its ΔCQs). `by_coder` adds the same scores from each
    coder's ratings alone (metrics `cq_coder`, `delta_cq_coder`): does the ranking hold for everyone?
    """
    check_noise(noise)
    if bootstrap < 0:
        raise InputError("--bootstrap must be 0 or more")
    run_ids = resolve_runs(store, runs)
    ps = require_pair_set(store, pair_set)
    table = pair_table(store, pair_set, dimension)
    if table.empty:
        have = [r[0] for r in store.fetchall(
            "SELECT DISTINCT dimension FROM ratings WHERE pair_set = ? ORDER BY 1", [pair_set])]
        if dimension and have:
            raise InputError(f"pair set {pair_set!r} has no ratings for dimension {dimension!r}; "
                             f"dimensions: {', '.join(have)}")
        raise InputError(f"pair set {pair_set!r} has no ratings; import them with "
                         f"`memeatlas evaluate import-ratings`")
    assigns = load_assignments(store, run_ids, assigned=noise == "assigned")
    res = QualityResult(pair_set=pair_set, runs=run_ids, noise=noise, weights=weights,
                        bootstrap=bootstrap, seed=seed)
    rated = sorted(set(table["meme_a"]) | set(table["meme_b"]))
    for r in run_ids:
        missing = [m for m in rated if m not in assigns[r]]
        if missing:
            res.uncovered[r] = {"n": len(missing), "examples": missing[:5]}
            res.notes.append(f"run {r} does not cover {len(missing)} of {len(rated)} rated memes "
                             f"(e.g. {', '.join(m[:12] for m in missing[:3])}); their pairs are left out "
                             f"for this run")
    res.notes.append("noise: " + NOISE_TEXT[noise])
    spaces = {r: get_run_info(store, r).get("space") for r in run_ids}
    store_rows: list[dict[str, Any]] = []
    used_weights = set()
    groups = [(dim, None, sub) for dim, sub in table.groupby("dimension", sort=True)]
    if by_coder:
        per = pair_table(store, pair_set, dimension, by_coder=True)
        groups += [(dim, coder, sub) for (dim, coder), sub in per.groupby(["dimension", "coder"], sort=True)]
        res.columns = res.columns[:5] + ("coder",) + res.columns[5:]
    for dim, coder, sub in groups:
        sub = sub.reset_index(drop=True)
        suffix = "" if coder is None else "_coder"
        y = sub["rating"].to_numpy(float)
        w, used = design_weights(store, pair_set, sub, weights, ps=ps)
        used_weights.add(used)
        statuses = {}
        for r in run_ids:
            a = assigns[r]
            st = np.empty(len(sub), np.int8)
            for i, (ma, mb) in enumerate(zip(sub["meme_a"], sub["meme_b"], strict=True)):
                if ma not in a or mb not in a:
                    st[i] = EXCLUDED
                    continue
                t = together(a[ma], a[mb], noise)
                st[i] = EXCLUDED if t is None else (TOGETHER if t else APART)
            statuses[r] = st
        strata = sub["stratum"].fillna("").to_numpy()
        cq_rows, d_rows = compare_runs(y, statuses, weights=w, strata=strata, b=bootstrap, seed=seed,
                                       deltas=deltas)
        for row in cq_rows:
            if row["n_within"] == 0 and coder is None:
                res.notes.append(f"run {row['run']} ({dim}): no rated pair is within one of its clusters, "
                                 f"so CQ is undefined; sample pairs with --strategy stratified")
            out = {"metric": "cq" + suffix, "run": row["run"], "vs": None, "dimension": dim, "coder": coder,
                   "value": row["cq"], "ci_low": row["ci_low"], "ci_high": row["ci_high"], "n": row["n"],
                   "n_within": row["n_within"], "n_between": row["n_between"],
                   "mean_within": row["mean_within"], "mean_between": row["mean_between"],
                   "space": spaces.get(row["run"])}
            res.rows.append(out)
            store_rows.append({"run_id": row["run"], "metric": "cq" + suffix, "value": row["cq"],
                               "ci_low": row["ci_low"], "ci_high": row["ci_high"], "n": row["n"],
                               "pair_set": pair_set, "dimension": dim,
                               "details": _details(res, dim, used, row, coder=coder,
                                                   uncovered=res.uncovered.get(row["run"]))})
        for row in d_rows:
            out = {"metric": "delta_cq" + suffix, "run": row["run_a"], "vs": row["run_b"], "dimension": dim,
                   "coder": coder, "value": row["delta"], "ci_low": row["ci_low"], "ci_high": row["ci_high"],
                   "n": row["n"], "n_within": None, "n_between": None, "mean_within": None,
                   "mean_between": None, "excludes_zero": row["excludes_zero"], "space": None}
            res.rows.append(out)
            store_rows.append({"run_id": row["run_a"], "metric": "delta_cq" + suffix, "value": row["delta"],
                               "ci_low": row["ci_low"], "ci_high": row["ci_high"], "n": row["n"],
                               "pair_set": pair_set, "dimension": dim,
                               "details": _details(res, dim, used, row, run_b=row["run_b"], coder=coder,
                                                   runs=[row["run_a"], row["run_b"]])})
    res.weights = "+".join(sorted(used_weights))
    res.notes.append("weights: " + ("pairs weighted by stratum population / rated pairs in the stratum "
                                    "(stratified sample)" if res.weights == "design"
                                    else "every rated pair counts once"))
    res.notes.append(f"CI: 95 % percentile bootstrap over pairs, B={bootstrap}, seed={seed}"
                     + (", resampled within strata" if bootstrap else "")
                     + ("; paired for ΔCQ" if bootstrap and deltas and len(run_ids) > 1 else ""))
    if save:
        res.eval_id = new_eval_id(command)
        store_evaluations(store, res.eval_id, command, store_rows)
    return res


def _details(res: QualityResult, dim: str, used: str, row: dict[str, Any], **extra: Any) -> dict[str, Any]:
    d = {"dimension": dim, "noise": res.noise, "noise_text": NOISE_TEXT[res.noise], "weights": used,
         "bootstrap": res.bootstrap, "seed": res.seed, "ci": "percentile",
         "degenerate_resamples": row.get("degenerate_resamples", 0)}
    for k in ("n_within", "n_between", "mean_within", "mean_between"):
        if k in row:
            d[k] = row[k]
    d.update({k: v for k, v in extra.items() if v is not None})
    return d
