"""The report's map sample: which memes of a large run go into the page's per-meme arrays.

A browser parses and draws ~10⁵ points in a second or two; 10⁶ would make an ~80 MB page. Above
a cap the report keeps a deterministic, stratified sample by cluster: every cluster (noise
included) keeps its required memes (representatives, gallery memes) and at least a floor of
points, and the rest of the budget is shared in proportion to what each cluster has left. All
counts and statistics on the page are computed over every meme; only per-meme views use the
sample. Everything here is numpy over arrays the store returned, no per-meme Python loops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memeatlas.errors import InputError

DEFAULT_MAP_POINTS = 50_000
MIN_PER_CLUSTER = 20  # a cluster keeps at least this many map points (or all it has)
SAMPLE_SEED = 0


def parse_map_points(value: str | int | None) -> int:
    """`--map-points`: a positive count, or 0 / "all" for no sampling (None: the default)."""
    if value is None:
        return DEFAULT_MAP_POINTS
    if isinstance(value, int):
        n = value
    else:
        text = str(value).strip().lower().replace(",", "").replace("_", "")
        if text == "all":
            return 0
        try:
            n = int(text)
        except ValueError:
            raise InputError(f"--map-points must be a number of points, 0 or 'all', got {value!r}"
                             ) from None
    if n < 0:
        raise InputError(f"--map-points must be 0 ('all') or more, got {n}")
    return n


@dataclass
class MapSample:
    """Row positions (into the run's assignment rows) that the page's arrays hold."""

    index: np.ndarray  # sorted row positions kept
    total: int  # rows in the run
    cap: int  # the cap asked for (0: none)
    seed: int
    floor: int

    @property
    def sampled(self) -> bool:
        return len(self.index) < self.total

    def info(self, cluster_sizes: dict[int, int], shown_per_cluster: dict[int, int]) -> dict:
        """What the page says about the sample; `weight` per cluster is size / shown (the
        inverse sampling rate, so per-meme charts can estimate all-meme shares)."""
        return {"shown": int(len(self.index)), "total": int(self.total), "cap": int(self.cap),
                "seed": int(self.seed), "floor": int(self.floor),
                "method": "stratified by cluster",
                "weight": {str(c): round(cluster_sizes[c] / n, 6)
                           for c, n in shown_per_cluster.items() if n}}


def stratified_sample(clusters: np.ndarray, required: np.ndarray, cap: int, *,
                      seed: int = SAMPLE_SEED, floor: int = MIN_PER_CLUSTER) -> MapSample:
    """Choose at most about `cap` rows, stratified by `clusters` (one int per row).

    `required` (bool per row) rows are always kept. Each cluster then gets at least
    min(size, floor) rows (the floor lowered so that floors use at most half of `cap`), and the remaining budget is split in proportion to the rows each
    cluster still has (largest remainders, ties by cluster id), so a cluster's share of the
    sample follows its share of the run. Within a cluster the extra rows are a uniform random
    draw with a fixed seed: the same run and cap always give the same sample. The sample can
    exceed `cap` only when required rows and floors alone do. `cap` 0 or ≥ rows: every row.
    """
    n = len(clusters)
    if cap <= 0 or n <= cap:
        return MapSample(np.arange(n), n, cap, seed, floor)
    clusters = np.asarray(clusters)
    required = np.asarray(required, dtype=bool)
    ids, inv = np.unique(clusters, return_inverse=True)
    size = np.bincount(inv, minlength=len(ids))
    req = np.bincount(inv, weights=required, minlength=len(ids)).astype(np.int64)
    # Floors take at most half the budget, so the rest can still follow cluster sizes.
    floor = max(1, min(floor, cap // (2 * len(ids))))
    base = np.maximum(req, np.minimum(size, floor))
    left = max(0, cap - int(base.sum()))
    room = size - base
    quota = base.copy()
    if left and room.sum():
        share = left * room / room.sum()
        extra = np.floor(share).astype(np.int64)
        # largest remainders get the last few points, so the total is exactly the budget
        short = min(left - int(extra.sum()), int((room - extra > 0).sum()))
        if short > 0:
            rem = np.where(room - extra > 0, share - extra, -1.0)
            order = np.lexsort((ids, -rem))[:short]
            extra[order] += 1
        quota += np.minimum(extra, room)
    # Rank rows within their cluster: required rows first, then a seeded random order.
    key = np.random.default_rng(seed).random(n)
    key[required] = -1.0
    order = np.lexsort((key, inv))
    starts = np.concatenate(([0], np.cumsum(size)[:-1]))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - np.repeat(starts, size)
    keep = np.flatnonzero(rank < quota[inv])
    return MapSample(keep, n, cap, seed, floor)
