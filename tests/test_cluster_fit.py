"""cluster: recovery of separated clusters, determinism, noise, sweeps, baselines, reassignment."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers_cluster import add_memes, add_space, blobs, meme_id, synthetic_store
from sklearn.metrics import adjusted_rand_score

from memeatlas.cluster import ClusterConfig, get_run, get_run_info, latest_run, list_runs, run
from memeatlas.errors import BackendError, InputError, NotFoundError


def _truth(ids, y, df):
    pos = {m: i for i, m in enumerate(ids)}
    return y[[pos[m] for m in df["meme_id"]]]


@pytest.fixture
def synth(store):
    ids, x, y = synthetic_store(store, n_per=60, n_clusters=4)
    return store, ids, x, y


def test_hdbscan_recovers_separated_clusters(synth):
    store, ids, _, y = synth
    [rid] = run(store, ClusterConfig(spaces=["text:synthetic"], min_cluster_size=10))
    df = get_run(store, rid)
    assert len(df) == len(ids)
    assert adjusted_rand_score(_truth(ids, y, df), df["cluster"]) >= 0.95
    assert df["x"].notna().all() and df["y"].notna().all()
    assert (df["assigned_by"] == "fit").all()
    info = get_run_info(store, rid)
    assert info["n_clusters"] == 4 and info["n_items"] == len(ids)
    assert info["params"]["min_cluster_size"] == 10
    assert info["params"]["reduce"]["method"] == "umap"
    assert info["seed"] == 42 and len(info["fingerprint"]) == 32
    assert {"umap", "cluster", "layout", "knn"} <= set(info["timings"])
    assert latest_run(store) == rid


def test_same_inputs_and_seed_give_same_assignments(synth):
    store, ids, _, _ = synth
    cfg = ClusterConfig(spaces=["text:synthetic"], min_cluster_size=10, seed=7)
    [a] = run(store, cfg)
    # Same fingerprint: skipped and the stored run returned …
    assert run(store, cfg) == [a]
    # … and recomputed with force: identical assignments and layout, same fingerprint.
    cfg.force = True
    [b] = run(store, cfg)
    assert b != a
    da, db = get_run(store, a), get_run(store, b)
    assert (da["cluster"].to_numpy() == db["cluster"].to_numpy()).all()
    np.testing.assert_allclose(da[["x", "y"]].to_numpy(), db[["x", "y"]].to_numpy())
    assert get_run_info(store, a)["fingerprint"] == get_run_info(store, b)["fingerprint"]


def test_map_beside_hdbscan_equals_the_map_after_it(synth, monkeypatch):
    """The 2-D map runs in a thread while HDBSCAN runs (fit._Background): the same run made
    with the map computed afterwards, in the calling thread, is identical; and the store's
    DuckDB memory setting, capped while the vectors load, is restored."""
    from memeatlas.cluster import fit

    store, _, _, _ = synth
    limit = store.scalar("SELECT current_setting('memory_limit')")
    started = []
    real = fit._Background

    def spy(*args):
        started.append(args[0].__name__)
        return real(*args)

    monkeypatch.setattr(fit, "_Background", spy)
    cfg = ClusterConfig(spaces=["text:synthetic"], min_cluster_size=10, seed=3)
    [a] = run(store, cfg)
    assert started == ["_layout"]

    class Inline:  # the same work, in this thread, when asked for
        def __init__(self, fn, *args):
            self.fn, self.args = fn, args

        def result(self):
            return self.fn(*self.args)

    monkeypatch.setattr(fit, "_Background", Inline)
    [b] = run(store, ClusterConfig(spaces=["text:synthetic"], min_cluster_size=10, seed=3,
                                   force=True))
    da, db = get_run(store, a), get_run(store, b)
    assert (da["cluster"].to_numpy() == db["cluster"].to_numpy()).all()
    assert (da[["x", "y"]].to_numpy() == db[["x", "y"]].to_numpy()).all()
    assert store.scalar("SELECT current_setting('memory_limit')") == limit


def test_noise_stays_minus_one_and_reassign_is_its_own_run(store):
    x, y = blobs(50, 3, seed=1)
    rng = np.random.default_rng(5)
    outliers = rng.normal(size=(12, x.shape[1])).astype(np.float32)
    xs = np.vstack([x, outliers])
    ids = [meme_id(i) for i in range(len(xs))]
    add_memes(store, ids)
    add_space(store, "text:noisy", ids, xs)
    # HDBSCAN on the vectors themselves (UMAP tends to pull lone outliers into clusters).
    rids = run(store, ClusterConfig(spaces=["text:noisy"], min_cluster_size=10, umap_dims=0,
                                    reassign_noise=True))
    assert len(rids) == 2
    parent, child = rids
    dp = get_run(store, parent)
    assert (dp["hard_cluster"] == -1).sum() >= 10  # HDBSCAN's label; `cluster` is the membership
    info = get_run_info(store, parent)
    assert info["noise_fraction"] == pytest.approx((dp["hard_cluster"] == -1).mean())
    dc = get_run(store, child)
    ci = get_run_info(store, child)
    assert ci["kind"] == "reassign_noise" and ci["parent_run"] == parent
    assert (dc["cluster"] >= 0).all()
    was_noise = dp["hard_cluster"].to_numpy() == -1
    assert (dc["assigned_by"].to_numpy()[was_noise] == "reassign").all()
    assert (dc["membership"].to_numpy()[was_noise] == "assigned").all()
    assert (dc["cluster"].to_numpy()[~was_noise] == dp["cluster"].to_numpy()[~was_noise]).all()
    # the original is untouched
    assert (get_run(store, parent)["hard_cluster"] == -1).sum() == was_noise.sum()


def test_reassign_noise_later_derives_from_the_stored_run(store):
    x, _ = blobs(50, 3, seed=1)
    outliers = np.random.default_rng(5).normal(size=(12, x.shape[1])).astype(np.float32)
    xs = np.vstack([x, outliers])
    ids = [meme_id(i) for i in range(len(xs))]
    add_memes(store, ids)
    add_space(store, "text:noisy", ids, xs)
    cfg = ClusterConfig(spaces=["text:noisy"], min_cluster_size=10, umap_dims=0)
    [parent] = run(store, cfg)
    # Same inputs and parameters, now with --reassign-noise: the stored run is reused and its
    # reassigned variant is made from the stored model, not silently skipped.
    rids = run(store, ClusterConfig(spaces=["text:noisy"], min_cluster_size=10, umap_dims=0,
                                    reassign_noise=True))
    assert rids[0] == parent and len(rids) == 2
    ci = get_run_info(store, rids[1])
    assert ci["kind"] == "reassign_noise" and ci["parent_run"] == parent
    dp, dc = get_run(store, parent), get_run(store, rids[1])
    assert (dp["hard_cluster"] == -1).any() and (dc["cluster"] >= 0).all()
    # asking again finds the child instead of making another
    assert run(store, ClusterConfig(spaces=["text:noisy"], min_cluster_size=10, umap_dims=0,
                                    reassign_noise=True)) == rids


def test_sweep_writes_one_run_per_value(synth):
    store, *_ = synth
    rids = run(store, ClusterConfig(spaces=["text:synthetic"],
                                    sweep={"min_cluster_size": [5, 10, 20]}))
    assert len(set(rids)) == 3
    runs = list_runs(store)
    sizes = sorted(p["min_cluster_size"] for p in runs["params"])
    assert sizes == [5, 10, 20]


@pytest.mark.parametrize("algorithm", ["kmeans", "agglomerative", "spectral"])
def test_baselines(synth, algorithm):
    store, ids, _, y = synth
    [rid] = run(store, ClusterConfig(spaces=["text:synthetic"], algorithm=algorithm, k=4,
                                     layout=False))
    df = get_run(store, rid)
    assert adjusted_rand_score(_truth(ids, y, df), df["cluster"]) >= 0.95
    assert (df["cluster"] >= 0).all() and df["probability"].between(0, 1).all()
    assert df["x"].isna().all()
    info = get_run_info(store, rid)
    assert info["algorithm"] == algorithm and info["params"]["k"] == 4


def test_errors(synth):
    store, *_ = synth
    with pytest.raises(BackendError, match="hdbscan"):
        run(store, ClusterConfig(spaces=["text:synthetic"], algorithm="dbscan"))
    with pytest.raises(InputError, match="--k"):
        run(store, ClusterConfig(spaces=["text:synthetic"], algorithm="kmeans"))
    with pytest.raises(NotFoundError):
        run(store, ClusterConfig(spaces=["text:nope"]))
    with pytest.raises(InputError, match="sweep"):
        run(store, ClusterConfig(spaces=["text:synthetic"], sweep={"colour": [1]}))
    with pytest.raises(NotFoundError, match="no cluster run"):
        get_run(store, "cluster-missing")


def test_where_filter(synth):
    store, ids, *_ = synth
    keep = ids[:100]
    store.execute("UPDATE memes SET source = 'manifest' WHERE meme_id IN "
                  "(SELECT unnest(?::VARCHAR[]))", [keep])
    [rid] = run(store, ClusterConfig(spaces=["text:synthetic"], where="m.source = 'manifest'",
                                     algorithm="kmeans", k=4, layout=False))
    assert set(get_run(store, rid)["meme_id"]) == set(keep)


def test_cli_cluster_and_sweep(db_path):
    from typer.testing import CliRunner

    from memeatlas.cli import app
    from memeatlas.store import Store

    with Store.open(db_path) as s:
        synthetic_store(s, n_per=40, n_clusters=3)
    r = CliRunner().invoke(app, ["cluster", "--db", str(db_path), "--space", "text:synthetic",
                                 "--sweep", "min_cluster_size=8,12", "--no-layout"])
    assert r.exit_code == 0, r.output
    run_ids = [ln for ln in r.stdout.splitlines() if ln.startswith("cluster-")]
    assert len(run_ids) == 2
    bad = CliRunner().invoke(app, ["cluster", "--db", str(db_path), "--space", "text:synthetic",
                                   "--weights", "0.5,0.5"])
    assert bad.exit_code == 1 and "Error:" in bad.output and "weights" in bad.output
    with Store.open(db_path) as s:
        spaces = json.loads(s.scalar("SELECT spaces FROM cluster_runs LIMIT 1"))
    assert spaces == [{"space": "text:synthetic", "weight": 1.0}]
