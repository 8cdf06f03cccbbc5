"""Reading stored runs back: as pandas DataFrames, newest first."""

from __future__ import annotations

import json

from memeatlas.errors import NotFoundError


def _check_run(store, run_id: str) -> None:
    if not store.scalar("SELECT count(*) FROM cluster_runs WHERE run_id = ?", [run_id]):
        recent = [r[0] for r in store.fetchall(
            "SELECT run_id FROM cluster_runs ORDER BY created_at DESC LIMIT 5")]
        have = ", ".join(recent) if recent else "none yet; run `memeatlas cluster` first"
        raise NotFoundError(f"no cluster run {run_id!r} (not found in {store.path}); "
                            f"recent runs: {have}")


def get_run(store, run_id: str):
    """One run as a DataFrame: meme_id, cluster, membership, hard_cluster, probability, x, y,
    assigned_by, label, keywords.

    Sorted by meme_id. `cluster` is the run's one membership (`cluster_membership`: core and
    assigned memes in their cluster, noise −1); `hard_cluster` the label as fitted. Noise rows
    are included. `label`/`keywords` (the labels in force) are NULL until `memeatlas label`.
    """
    _check_run(store, run_id)
    return store.df(
        "SELECT cm.meme_id, cm.cluster, cm.membership, cm.hard_cluster, cm.probability, cm.x, "
        "cm.y, cm.assigned_by, cl.label, cl.keywords FROM cluster_membership cm "
        "LEFT JOIN latest_cluster_labels cl ON cl.run_id = cm.run_id AND cl.cluster = cm.cluster "
        "WHERE cm.run_id = ? ORDER BY cm.meme_id", [run_id])


def latest_run(store, kind: str | None = "cluster") -> str | None:
    """The newest run id (of `kind`, default plain clusterings; None = any kind), or None."""
    if kind is None:
        return store.scalar("SELECT run_id FROM cluster_runs ORDER BY created_at DESC, "
                            "run_id DESC LIMIT 1")
    return store.scalar("SELECT run_id FROM cluster_runs WHERE kind = ? "
                        "ORDER BY created_at DESC, run_id DESC LIMIT 1", [kind])


def list_runs(store):
    """Every run as a DataFrame (newest first) with parameters parsed from JSON."""
    df = store.df("SELECT run_id, name, kind, parent_run, space, algorithm, n_items, "
                  "n_clusters, noise_fraction, seed, params, spaces, fingerprint, timings, "
                  "created_at FROM cluster_runs ORDER BY created_at DESC, run_id DESC")
    for col in ("params", "spaces", "timings"):
        df[col] = [json.loads(v) if isinstance(v, str) and v else v for v in df[col]]
    return df


def get_run_info(store, run_id: str) -> dict:
    """The run's `cluster_runs` row as a dict (JSON columns parsed)."""
    _check_run(store, run_id)
    row = store.fetch_dict("SELECT * FROM cluster_runs WHERE run_id = ?", [run_id])
    for col in ("params", "spaces", "software", "timings"):
        if isinstance(row.get(col), str):
            row[col] = json.loads(row[col])
    return row


def load_model(store, run_id: str) -> dict:
    """The pickled fit state of a run (clusterer, reduced coordinates, layout, ids)."""
    import pickle

    _check_run(store, run_id)
    blob = store.scalar("SELECT model FROM cluster_models WHERE run_id = ?", [run_id])
    if blob is None:
        raise NotFoundError(f"run {run_id} has no stored model; re-run `memeatlas cluster "
                            f"--force` to store one")
    return pickle.loads(blob)
