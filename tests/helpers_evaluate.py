"""Test helpers for the evaluate area: memes, clustering runs and simulated coders, written straight
into the tables (no UMAP, no models), so evaluate tests stay fast and independent of the cluster step."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np


def meme_id(i: int, prefix: str = "m") -> str:
    return hashlib.sha256(f"{prefix}{i}".encode()).hexdigest()


def add_memes(store, n: int, *, prefix: str = "m", meta: list[dict] | None = None,
              source_ids: bool = True) -> list[str]:
    """Insert n memes (fake SHA-256 ids, paths under /data) and return their ids."""
    ids = [meme_id(i, prefix) for i in range(n)]
    store.insert_rows("memes", ("meme_id", "path", "source", "source_id", "has_image", "width", "height",
                                 "format", "n_bytes", "meta"),
                [(mid, f"/data/{prefix}{i:04d}.png", "folder", f"{prefix}{i}" if source_ids else None, True,
                  64, 64, "PNG", 100, json.dumps(meta[i]) if meta else None) for i, mid in enumerate(ids)])
    return ids


def add_run(store, run_id: str, clusters: dict[str, int], *, space: str = "text:description",
            params: dict | None = None, algorithm: str = "hdbscan") -> str:
    """Insert a cluster_runs row and its assignments (cluster -1 = noise)."""
    labels = list(clusters.values())
    n_clusters = len({c for c in labels if c != -1})
    noise = sum(1 for c in labels if c == -1) / max(1, len(labels))
    store.execute(
        "INSERT INTO cluster_runs (run_id, space, algorithm, params, seed, n_items, n_clusters, noise_fraction)"
        " VALUES (?,?,?,?,?,?,?,?)",
        [run_id, space, algorithm, json.dumps(params or {}), 0, len(labels), n_clusters, noise])
    store.insert_rows("cluster_assignments", ("run_id", "meme_id", "cluster", "probability", "x", "y"),
                [(run_id, m, int(c), 1.0, 0.0, 0.0) for m, c in clusters.items()])
    return run_id


def add_pairs(store, pair_set: str, pairs: list[tuple[str, str]], *, strategy: str = "random",
              stratum: str = "random") -> list[str]:
    """Insert a pair set with the given pairs; returns the pair ids."""
    from memeatlas.evaluate.pairs import pair_id

    store.execute("INSERT INTO pair_sets (pair_set, strategy, runs, seed, params) VALUES (?,?,?,?,?)",
                  [pair_set, strategy, "[]", 0, "{}"])
    pids = []
    for k, (a, b) in enumerate(pairs):
        pid = pair_id(a, b)
        store.execute("INSERT INTO rating_pairs (pair_set, pair_id, meme_a, meme_b, stratum, position)"
                      " VALUES (?,?,?,?,?,?)", [pair_set, pid, a, b, stratum, k + 1])
        pids.append(pid)
    return pids


def add_ratings(store, pair_set: str, ratings: dict[str, list[float]], *, dimension: str = "connotative"):
    """ratings: {pair_id: [coder1 rating, coder2 rating, ...]} straight into `ratings`."""
    store.insert_rows("ratings", ("pair_set", "pair_id", "coder", "dimension", "rating", "raw_rating"),
                [(pair_set, pid, f"c{k + 1}", dimension, float(v), float(v))
                 for pid, vals in ratings.items() for k, v in enumerate(vals)])


def insert_ratings(store, pair_set: str, rows: list[tuple[str, str, str, float]]) -> None:
    """rows: (pair_id, coder, dimension, rating) straight into `ratings`."""
    store.insert_rows("ratings", ("pair_set", "pair_id", "coder", "dimension", "rating"),
                [(pair_set, p, c, d, float(r)) for p, c, d, r in rows])


def planted(n_groups: int = 5, per_group: int = 12) -> list[int]:
    """Group of each meme: [0]*per_group + [1]*per_group + ..."""
    return [g for g in range(n_groups) for _ in range(per_group)]


def simulate_coder(truth: dict[str, int], pairs: list[tuple[str, str, str]], *, rng, flip: float = 0.15
                   ) -> dict[str, int]:
    """Rating per pair id: 3 for same group, 1 otherwise; with probability `flip` moved one step (to 2)."""
    out = {}
    for pid, a, b in pairs:
        r = 3 if truth[a] == truth[b] else 1
        if rng.random() < flip:
            r = 2
        out[pid] = r
    return out


def fill_sheet(sheet: Path, out: Path, ratings_by_dim: dict[str, dict[str, int]]) -> Path:
    """Copy a rating sheet and fill its dimension columns (as a coder's spreadsheet would)."""
    with sheet.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    with out.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for row in rows[1:]:
            pid = row[0]
            for d, vals in ratings_by_dim.items():
                row[header.index(d)] = str(vals[pid])
            w.writerow(row)
    return out


def sheet_pairs(sheet: Path) -> list[tuple[str, str, str]]:
    with sheet.open(newline="", encoding="utf-8") as fh:
        return [(r["pair_id"], r["meme_a"], r["meme_b"]) for r in csv.DictReader(fh)]


def rng(seed: int = 0):
    return np.random.default_rng(seed)
