"""assign: held-out memes land in their true cluster."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_cluster import add_memes, add_space, blobs, meme_id

from memeatlas.cluster import ClusterConfig, assign, get_run, run


def _setup(store):
    x, y = blobs(70, 4, dim=48, seed=11)
    ids = [meme_id(i) for i in range(len(y))]
    rng = np.random.default_rng(0)
    held = set(rng.choice(len(ids), size=40, replace=False).tolist())
    train = [i for i in range(len(ids)) if i not in held]
    add_memes(store, [ids[i] for i in train])
    add_space(store, "text:s", [ids[i] for i in train], x[train])
    return ids, x, y, sorted(held), train


@pytest.mark.parametrize("algorithm", ["hdbscan", "kmeans"])
def test_assign_held_out(store, algorithm):
    ids, x, y, held, train = _setup(store)
    cfg = ClusterConfig(spaces=["text:s"], algorithm=algorithm, k=4, min_cluster_size=10)
    [rid] = run(store, cfg)
    fit = get_run(store, rid)
    # the cluster of each true class in the fit (majority)
    pos = {m: i for i, m in enumerate(ids)}
    true_fit = y[[pos[m] for m in fit["meme_id"]]]
    major = {t: np.bincount(fit["cluster"][true_fit == t].clip(0)).argmax() for t in range(4)}
    # held-out memes arrive later
    add_memes(store, [ids[i] for i in held])
    add_space(store, "text:s", [ids[i] for i in held], x[held])
    s = assign(store, rid)
    assert s.n_assigned == len(held)
    assert s.method == ("hdbscan" if algorithm == "hdbscan" else "knn")
    df = get_run(store, rid)
    new = df[df["meme_id"].isin({ids[i] for i in held})]
    assert (new["assigned_by"] == f"assign:{s.method}").all()
    assert new["probability"].between(0, 1).all() and new["x"].notna().all()
    hits = [c == major[y[pos[m]]] for m, c in zip(new["meme_id"], new["cluster"], strict=True)]
    assert np.mean(hits) >= 0.9
    # new memes get a soft cluster too (noise included), clustered ones their own cluster
    soft = dict(store.fetchall("SELECT meme_id, soft_cluster FROM cluster_assignments WHERE "
                               "run_id = ? AND assigned_by LIKE 'assign:%'", [rid]))
    assert all(soft[m] >= 0 for m in new["meme_id"])
    assert all(soft[m] == c for m, c in zip(new["meme_id"], new["cluster"], strict=True) if c >= 0)
    # nothing left to assign; fitted rows untouched
    assert assign(store, rid).n_assigned == 0
    assert (df[df["assigned_by"] == "fit"]["cluster"].to_numpy() == fit["cluster"].to_numpy()).all()


def test_assign_where_and_cli(db_path):
    from typer.testing import CliRunner

    from memeatlas.cli import app
    from memeatlas.store import Store

    with Store.open(db_path) as store:
        ids, x, y, held, train = _setup(store)
        [rid] = run(store, ClusterConfig(spaces=["text:s"], algorithm="kmeans", k=4,
                                         layout=False))
        add_memes(store, [ids[i] for i in held])
        add_space(store, "text:s", [ids[i] for i in held], x[held])
        first = ids[held[0]]
    r = CliRunner().invoke(app, ["assign", "--db", str(db_path), "--run", rid,
                                 "--where", f"m.meme_id = '{first}'"])
    assert r.exit_code == 0, r.output
    with Store.open(db_path) as store:
        got = store.fetchall("SELECT meme_id, assigned_by FROM cluster_assignments "
                             "WHERE run_id = ? AND assigned_by <> 'fit'", [rid])
    assert got == [(first, "assign:knn")]
    bad = CliRunner().invoke(app, ["assign", "--db", str(db_path), "--run", "cluster-nope"])
    assert bad.exit_code == 1 and "no cluster run" in bad.output
