"""Sampling meme pairs for human rating, and the rating sheet coders fill in.

Two strategies:

* ``random`` — pairs drawn uniformly from all pairs of memes that every compared run covers
  (Arminio et al. 2025 rated 500 such pairs with two coders). Under uniform sampling most pairs are
  apart in every clustering, so CQ's "within" mean rests on few pairs.
* ``stratified`` — every pair of memes has a *pattern*: for each compared run, together (T) or
  apart (A). For runs R1, R2 the patterns are TT, TA, AT, AA. The n pairs are split equally among
  the non-empty patterns; a pattern with fewer pairs than its share gives all it has and the rest is
  shared out among the others (water-filling). Within each pattern pairs are uniform. Every run's
  together and apart pairs are therefore represented (any run that puts at least one pair together).
  The population size of every pattern is stored with the pair set, so `quality` can weight pairs by
  inverse inclusion probability and estimate the same CQ a uniform sample would, with less variance.

Pair ids are ``'p' + 12 hex`` of SHA-256 over the two meme ids in sorted order, so the same pair of
memes has the same id in every pair set and on every machine.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from memeatlas.errors import InputError, MismatchError, NotFoundError
from memeatlas.evaluate.common import NOISE, load_assignments, resolve_runs
from memeatlas.progress import info
from memeatlas.provenance import stable_json, utcnow

STRATEGIES = ("random", "stratified")
DEFAULT_DIMENSIONS = ("connotative", "denotative")
SHEET_ID_COLUMNS = ("pair_id", "meme_a", "meme_b", "path_a", "path_b")
# Below this many candidate pairs a stratum is enumerated; above it, rejection-sampled.
_ENUMERATE_MAX = 2_000_000
MAX_STRATIFIED_RUNS = 8


def pair_id(meme_a: str, meme_b: str) -> str:
    """Stable id of an unordered pair of memes."""
    lo, hi = sorted((meme_a, meme_b))
    return "p" + hashlib.sha256(f"{lo}|{hi}".encode()).hexdigest()[:12]


@dataclass
class PairSetSummary:
    """What `sample_pairs` stored."""

    pair_set: str
    strategy: str
    runs: list[str]
    n_pairs: int
    n_memes: int
    seed: int
    strata: dict[str, dict[str, int]] = field(default_factory=dict)  # pattern -> population, sampled
    n_memes_not_in_all_runs: int = 0
    sheet: Path | None = None

    def rows(self) -> list[dict[str, Any]]:
        return [{"stratum": s, "population": v["population"], "sampled": v["sampled"]}
                for s, v in self.strata.items()]


def _labels_for(assign: dict[str, int], memes: list[str], noise: str) -> np.ndarray:
    """Integer labels per meme; with noise 'apart' every noise point gets its own label."""
    lab = np.array([assign[m] for m in memes], dtype=np.int64)
    if noise == "apart":
        is_noise = lab == NOISE
        # Unique negative labels: -2, -3, ... never equal to each other or to a real cluster.
        lab[is_noise] = -2 - np.arange(int(is_noise.sum()))
    return lab


def _meet(label_arrays: list[np.ndarray]) -> np.ndarray:
    """Labels of the common refinement of several partitions (memes together in all of them)."""
    if len(label_arrays) == 1:
        return label_arrays[0]
    stacked = np.stack(label_arrays, axis=1)
    _, inv = np.unique(stacked, axis=0, return_inverse=True)
    return inv.reshape(-1)


def _n_together(labels: np.ndarray) -> int:
    _, counts = np.unique(labels, return_counts=True)
    return int((counts * (counts - 1) // 2).sum())


def _pattern_populations(labs: list[np.ndarray]) -> dict[str, int]:
    """Exact number of pairs per together/apart pattern, by inclusion–exclusion over run subsets."""
    r = len(labs)
    n_all: dict[frozenset, int] = {}
    n = len(labs[0])
    for size in range(0, r + 1):
        for sub in itertools.combinations(range(r), size):
            key = frozenset(sub)
            n_all[key] = n * (n - 1) // 2 if not sub else _n_together(_meet([labs[i] for i in sub]))
    out: dict[str, int] = {}
    for bits in itertools.product("TA", repeat=r):
        s = frozenset(i for i, b in enumerate(bits) if b == "T")
        total = 0
        for key, val in n_all.items():
            if s <= key:
                total += (-1) ** (len(key) - len(s)) * val
        out["".join(bits)] = total
    return out


def _allocate(populations: dict[str, int], n: int) -> dict[str, int]:
    """Equal shares per non-empty stratum, water-filling what small strata cannot take."""
    alloc = {k: 0 for k in populations}
    open_ = [k for k, v in populations.items() if v > 0]
    remaining = n
    while remaining > 0 and open_:
        share, extra = divmod(remaining, len(open_))
        nxt = []
        given = 0
        for i, k in enumerate(open_):
            want = share + (1 if i < extra else 0)
            take = min(want, populations[k] - alloc[k])
            alloc[k] += take
            given += take
            if alloc[k] < populations[k]:
                nxt.append(k)
        remaining -= given
        if given == 0:
            break
        open_ = nxt
    return alloc


def _pairs_within_groups(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (i, j), i < j, with equal labels."""
    order = np.argsort(labels, kind="stable")
    sorted_lab = labels[order]
    bounds = np.flatnonzero(np.diff(sorted_lab)) + 1
    ii, jj = [], []
    for grp in np.split(order, bounds):
        if len(grp) < 2:
            continue
        a, b = np.triu_indices(len(grp), k=1)
        ii.append(grp[a])
        jj.append(grp[b])
    if not ii:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    i, j = np.concatenate(ii), np.concatenate(jj)
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    return lo, hi


def _matches(labs: list[np.ndarray], pattern: str, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    ok = np.ones(len(i), dtype=bool)
    for lab, bit in zip(labs, pattern, strict=True):
        same = lab[i] == lab[j]
        ok &= same if bit == "T" else ~same
    return ok


def _sample_stratum(labs: list[np.ndarray], pattern: str, k: int, population: int,
                    rng: np.random.Generator) -> list[tuple[int, int]]:
    """k distinct pairs (i < j) drawn uniformly from the pairs with this pattern."""
    if k <= 0:
        return []
    n = len(labs[0])
    t_runs = [r for r, b in enumerate(pattern) if b == "T"]
    meet = _meet([labs[r] for r in t_runs]) if t_runs else None
    candidates = _n_together(meet) if meet is not None else n * (n - 1) // 2
    if candidates <= _ENUMERATE_MAX or (population < 0.01 * candidates and candidates <= 10 * _ENUMERATE_MAX):
        if meet is not None:
            i, j = _pairs_within_groups(meet)
        else:
            i, j = np.triu_indices(n, k=1)
        ok = _matches(labs, pattern, i, j)
        i, j = i[ok], j[ok]
        pick = rng.choice(len(i), size=k, replace=False)
        return [(int(i[p]), int(j[p])) for p in pick]
    # Rejection sampling from the candidate pairs (acceptance is population / candidates).
    chosen: set[tuple[int, int]] = set()
    out: list[tuple[int, int]] = []
    if meet is not None:
        groups, counts = np.unique(meet, return_counts=True)
        w = counts * (counts - 1) / 2.0
        members = {g: np.flatnonzero(meet == g) for g in groups[counts > 1]}
        probs = w / w.sum()
    tries = 0
    while len(out) < k:
        tries += 1
        if tries > 2000:
            raise InputError(f"could not draw {k} pairs from stratum {pattern} ({population} of "
                             f"{candidates} candidate pairs match); use --strategy random or fewer pairs")
        batch = max(4 * (k - len(out)), 256)
        if meet is None:
            i = rng.integers(0, n, size=batch)
            j = rng.integers(0, n, size=batch)
        else:
            g = rng.choice(groups, size=batch, p=probs)
            i = np.empty(batch, np.int64)
            j = np.empty(batch, np.int64)
            for t, gg in enumerate(g):
                a, b = rng.choice(members[gg], size=2, replace=False)
                i[t], j[t] = a, b
        keep = i != j
        i, j = np.minimum(i[keep], j[keep]), np.maximum(i[keep], j[keep])
        ok = _matches(labs, pattern, i, j)
        _take_new(i[ok], j[ok], chosen, out, k)
    return out


def _sample_random(n_memes: int, k: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    total = n_memes * (n_memes - 1) // 2
    if k > total:
        raise InputError(f"asked for {k} pairs but {n_memes} memes only make {total}")
    if total <= _ENUMERATE_MAX:
        i, j = np.triu_indices(n_memes, k=1)
        pick = rng.choice(total, size=k, replace=False)
        return [(int(i[p]), int(j[p])) for p in pick]
    chosen: set[tuple[int, int]] = set()
    out = []
    while len(out) < k:
        i = rng.integers(0, n_memes, size=2 * (k - len(out)) + 16)
        j = rng.integers(0, n_memes, size=len(i))
        keep = i != j
        _take_new(np.minimum(i[keep], j[keep]), np.maximum(i[keep], j[keep]), chosen, out, k)
    return out


def _take_new(i: np.ndarray, j: np.ndarray, chosen: set[tuple[int, int]],
              out: list[tuple[int, int]], k: int) -> None:
    """Append ordered pairs (i < j) not drawn before, in order, until `out` holds k."""
    for a, b in zip(i, j, strict=True):
        key = (int(a), int(b))
        if key not in chosen:
            chosen.add(key)
            out.append(key)
            if len(out) == k:
                return


def pair_set_exists(store, pair_set: str) -> bool:
    return bool(store.scalar("SELECT count(*) FROM pair_sets WHERE pair_set = ?", [pair_set]))


def require_pair_set(store, pair_set: str) -> dict[str, Any]:
    """The pair_sets row as a dict, or NotFoundError listing the sets that exist."""
    out = store.fetch_dict("SELECT * FROM pair_sets WHERE pair_set = ?", [pair_set])
    if out is None:
        known = [r[0] for r in store.fetchall("SELECT pair_set FROM pair_sets ORDER BY created_at")]
        raise NotFoundError(f"pair set {pair_set!r} not found; pair sets in this database: "
                            f"{', '.join(known) or '(none; create one with `memeatlas evaluate pairs`)'}")
    for key in ("runs", "params"):
        if isinstance(out.get(key), str):
            out[key] = json.loads(out[key])
    return out


def delete_pair_set(store, pair_set: str) -> None:
    """Remove a pair set with its pairs and ratings (inside the caller's transaction)."""
    for table in ("ratings", "rating_pairs", "pair_sets"):
        store.execute(f"DELETE FROM {table} WHERE pair_set = ?", [pair_set])


def sample_pairs(store, runs, *, n: int = 500, strategy: str = "stratified", seed: int = 0,
                 pair_set: str, noise: str = "apart", force: bool = False,
                 sheet: str | Path | None = None,
                 dimensions: tuple[str, ...] | list[str] = DEFAULT_DIMENSIONS) -> PairSetSummary:
    """Sample `n` pairs of memes covered by all `runs`, store them as `pair_set`, optionally write a sheet.

    `noise` says how noise points count when defining strata: 'apart' (default, in no cluster) or
    'cluster' (noise is one cluster). Raises MismatchError if the pair set exists (unless `force`,
    which replaces it and deletes its ratings).
    """
    if strategy not in STRATEGIES:
        raise InputError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if noise not in ("apart", "cluster"):
        raise InputError(f"noise handling for sampling must be 'apart' or 'cluster', got {noise!r}")
    if n < 1:
        raise InputError(f"--n must be at least 1, got {n}")
    if not pair_set or not pair_set.strip():
        raise InputError("--pair-set needs a name")
    run_ids = resolve_runs(store, runs)
    if strategy == "stratified" and len(run_ids) > MAX_STRATIFIED_RUNS:
        raise InputError(f"stratified sampling supports up to {MAX_STRATIFIED_RUNS} runs "
                         f"(2^runs strata), got {len(run_ids)}; use --strategy random")
    if pair_set_exists(store, pair_set):
        n_r = store.scalar("SELECT count(*) FROM ratings WHERE pair_set = ?", [pair_set])
        if not force:
            raise MismatchError(f"pair set {pair_set!r} already exists ({n_r} ratings); choose another "
                                f"--pair-set or pass --force to replace it (its ratings are deleted)")
    assigns = load_assignments(store, run_ids)
    for rid, a in assigns.items():
        if not a:
            raise NotFoundError(f"run {rid!r} has no cluster assignments")
    covered = set.intersection(*(set(a) for a in assigns.values()))
    union = set().union(*(set(a) for a in assigns.values()))
    memes = sorted(covered)
    if len(memes) < 2:
        raise InputError(f"the runs {', '.join(run_ids)} cover fewer than 2 memes in common")
    rng = np.random.default_rng(seed)
    labs = [_labels_for(assigns[r], memes, noise) for r in run_ids]
    strata: dict[str, dict[str, int]] = {}
    picked: list[tuple[int, int, str]] = []
    if strategy == "random":
        for i, j in _sample_random(len(memes), n, rng):
            picked.append((i, j, "random"))
        total = len(memes) * (len(memes) - 1) // 2
        strata["random"] = {"population": total, "sampled": len(picked)}
    else:
        pops = _pattern_populations(labs)
        total = sum(pops.values())
        if n > total:
            raise InputError(f"asked for {n} pairs but {len(memes)} memes only make {total}")
        alloc = _allocate(pops, n)
        for pattern, k in alloc.items():
            for i, j in _sample_stratum(labs, pattern, k, pops[pattern], rng):
                picked.append((i, j, pattern))
            strata[pattern] = {"population": pops[pattern], "sampled": k}
        for r, rid in enumerate(run_ids):
            has_t = any(p[r] == "T" and v["sampled"] for p, v in strata.items())
            if not has_t:
                info(f"note: run {rid} puts no two memes together, so the sample has no pairs "
                     f"within its clusters")
    # Sheet order: a seeded shuffle, so coders do not see strata in blocks; orientation random too.
    order = rng.permutation(len(picked))
    flip = rng.random(len(picked)) < 0.5
    rows = []
    for pos, idx in enumerate(order):
        i, j, stratum = picked[idx]
        a, b = (memes[j], memes[i]) if flip[idx] else (memes[i], memes[j])
        rows.append((pair_set, pair_id(a, b), a, b, stratum, pos + 1))
    params = {"n": n, "noise": noise, "dimensions": list(dimensions), "strata": strata,
              "n_memes": len(memes), "n_memes_not_in_all_runs": len(union) - len(memes)}
    with store.transaction():
        if force:
            delete_pair_set(store, pair_set)
        store.execute("INSERT INTO pair_sets (pair_set, strategy, runs, seed, params, created_at)"
                      " VALUES (?,?,?,?,?,?)",
                      [pair_set, strategy, stable_json(run_ids), seed, stable_json(params), utcnow()])
        store.insert_rows("rating_pairs", ("pair_set", "pair_id", "meme_a", "meme_b", "stratum", "position"),
                    rows)
    summary = PairSetSummary(pair_set=pair_set, strategy=strategy, runs=run_ids, n_pairs=len(rows),
                             n_memes=len(memes), seed=seed, strata=strata,
                             n_memes_not_in_all_runs=len(union) - len(memes))
    if sheet is not None:
        summary.sheet = write_sheet(store, pair_set, sheet, dimensions)
    return summary


def write_sheet(store, pair_set: str, out_path: str | Path,
                dimensions: tuple[str, ...] | list[str] = DEFAULT_DIMENSIONS) -> Path:
    """Write the rating sheet: pair_id, meme_a, meme_b, path_a, path_b and one empty column per dimension.

    Filled in (ratings 1 unrelated, 2 loosely related, 3 closely related) it is read back unchanged by
    `import_ratings(..., coder=NAME)`.
    """
    require_pair_set(store, pair_set)
    dims = [d for d in dimensions if d]
    if not dims:
        raise InputError("the rating sheet needs at least one dimension")
    for d in dims:
        if d in SHEET_ID_COLUMNS or ":" in d:
            raise InputError(f"dimension name {d!r} is not allowed (reserved column or contains ':')")
    rows = store.fetchall(
        "SELECT rp.pair_id, rp.meme_a, rp.meme_b, ma.path, mb.path FROM rating_pairs rp"
        " LEFT JOIN memes ma ON ma.meme_id = rp.meme_a LEFT JOIN memes mb ON mb.meme_id = rp.meme_b"
        " WHERE rp.pair_set = ? ORDER BY rp.position NULLS LAST, rp.pair_id", [pair_set])
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(list(SHEET_ID_COLUMNS) + dims)
        for r in rows:
            w.writerow([r[0], r[1], r[2], r[3] or "", r[4] or ""] + [""] * len(dims))
    return out
