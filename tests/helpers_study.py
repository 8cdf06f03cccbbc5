"""A small clustered store with timestamps for the study tests (written straight into the store)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
from helpers_cluster import add_space, blobs, meme_id

from memeatlas.provenance import utcnow

WORDS = {0: "cat keyboard typing", 1: "dog beach running", 2: "frog rain umbrella",
         3: "bird tree singing", 4: "fish water bowl", 5: "horse field grass"}


def clustered_store(store, *, n_per: int = 20, n_clusters: int = 3, seed: int = 0,
                    run_id: str = "cluster-test", space: str = "text:synthetic",
                    times: dict[int, list[str | None]] | None = None):
    """Memes with annotations, a space of separated blobs, and a run whose clusters are the blobs.

    `times[i]` (one list entry per meme of true cluster i) sets `meta.date`. Returns (ids, x, y).
    """
    x, y = blobs(n_per, n_clusters, dim=32, seed=seed)
    ids = [meme_id(i) for i in range(len(y))]
    seen = {c: 0 for c in range(n_clusters)}
    for i, (mid, c) in enumerate(zip(ids, y, strict=True)):
        meta = {"n": i}
        if times is not None:
            v = times[int(c)][seen[int(c)]]
            if v is not None:
                meta["date"] = v
        seen[int(c)] += 1
        store.execute("INSERT INTO memes (meme_id, path, source, source_id, has_image, meta) "
                      "VALUES (?, ?, 'folder', ?, false, ?)",
                      [mid, f"/tmp/m{i:04d}.png", f"s{i:04d}", json.dumps(meta)])
        store.execute("INSERT INTO annotations (meme_id, annotator, prompt_hash, schema_hash, "
                      "description, intent, ocr_text) VALUES (?, 'human:test', '', '', ?, '', '')",
                      [mid, f"{WORDS[int(c) % 6]} meme number {i}"])
    add_space(store, space, ids, x, params={"fields": ["description"], "annotator": "human:test"},
              annotator="human:test")
    rng = np.random.default_rng(seed)
    xy = np.column_stack([np.cos(y * 2.0) * 5 + rng.normal(0, .3, y.size),
                          np.sin(y * 2.0) * 5 + rng.normal(0, .3, y.size)])
    store.execute(
        "INSERT INTO cluster_runs (run_id, space, spaces, algorithm, params, seed, n_items, "
        "n_clusters, noise_fraction, fingerprint, kind, created_at) VALUES (?, ?, ?, 'kmeans', "
        "'{}', 0, ?, ?, 0, 'fp-test', 'cluster', ?)",
        [run_id, space, json.dumps([{"space": space, "weight": 1.0}]), len(ids), n_clusters,
         utcnow()])
    for i, mid in enumerate(ids):
        store.execute("INSERT INTO cluster_assignments (run_id, meme_id, cluster, probability, "
                      "x, y) VALUES (?, ?, ?, 1.0, ?, ?)",
                      [run_id, mid, int(y[i]), float(xy[i, 0]), float(xy[i, 1])])
    return ids, x, y


def days(start: str, n: int, step: int = 1) -> list[str]:
    d0 = datetime.fromisoformat(start)
    return [(d0 + timedelta(days=i * step)).date().isoformat() for i in range(n)]
