"""`memeatlas hierarchy`: planted nested clusters (2 groups of 3) split at the top by group."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_cluster import add_memes, add_space, meme_id
from typer.testing import CliRunner

from memeatlas.cli import app
from memeatlas.cluster import ClusterConfig
from memeatlas.cluster import run as cluster_run
from memeatlas.errors import InputError
from memeatlas.study.curate import curate
from memeatlas.study.hierarchy import INNER_BASE, ctfidf, hierarchy, load_tree

WORDS = ["cat keyboard", "cat sofa", "cat box", "dog beach", "dog ball", "dog park"]


def nested(store, n_per: int = 25, dim: int = 32, seed: int = 0):
    """Two far-apart groups, each of three nearby clusters; returns (ids, true cluster)."""
    rng = np.random.default_rng(seed)
    groups = rng.normal(size=(2, dim))
    groups /= np.linalg.norm(groups, axis=1, keepdims=True)
    centres = []
    for g in groups:
        for _ in range(3):
            off = rng.normal(size=dim)
            centres.append(g + 0.45 * off / np.linalg.norm(off))
    centres = np.stack(centres)
    y = np.repeat(np.arange(6), n_per)
    x = centres[y] + 0.04 * rng.normal(size=(y.size, dim))
    ids = [meme_id(i) for i in range(y.size)]
    add_memes(store, ids, texts=[f"{WORDS[c]} funny {i}" for i, c in enumerate(y)])
    add_space(store, "text:nested", ids, x, params={"fields": ["description"],
                                                     "annotator": "human:test"})
    return ids, y


def groups_of(store, run_id, ids, y):
    """The root's children as sets of true groups (0: clusters 0-2, 1: clusters 3-5)."""
    asg = dict(store.fetchall("SELECT meme_id, cluster FROM cluster_assignments WHERE run_id = ?",
                              [run_id]))
    group_of_cluster = {}
    for m, t in zip(ids, y, strict=True):
        c = asg[m]
        if c >= 0:
            group_of_cluster.setdefault(c, set()).add(int(t) // 3)
    s = hierarchy(store, run_id)
    return s, [set().union(*(group_of_cluster[c] for c in part)) for part in s.top_split]


@pytest.mark.parametrize("algorithm", ["kmeans", "hdbscan"])
def test_top_split_separates_groups(store, algorithm):
    ids, y = nested(store)
    cfg = ClusterConfig(spaces=["text:nested"], algorithm=algorithm, k=6, umap_dims=0,
                        min_cluster_size=10, cluster_selection_method="leaf", layout=False)
    (rid,) = cluster_run(store, cfg)
    s, top = groups_of(store, rid, ids, y)
    assert s.method == ("condensed_tree" if algorithm == "hdbscan" else "centroid_ward")
    assert s.n_leaves >= 6
    assert len(top) == 2 and top[0] != top[1] and all(len(g) == 1 for g in top)
    tree = load_tree(store, rid)
    root = [n for n in tree if n["parent"] is None]
    assert len(root) == 1 and root[0]["level"] == 0 and root[0]["size"] == sum(
        n["size"] for n in tree if n["parent"] == root[0]["node"])
    inner_kw = {tuple(n["keywords"][:1]) for n in tree if n["level"] == 1}
    assert inner_kw == {("cat",), ("dog",)}
    assert all(n["node"] == n["cluster"] for n in tree if n["is_leaf"])
    assert all(n["node"] >= INNER_BASE for n in tree if not n["is_leaf"])
    # stored trees are kept; --force derives a new tree, the older one stays queryable
    assert hierarchy(store, rid).skipped
    n_rows = store.scalar("SELECT count(*) FROM cluster_tree WHERE run_id = ?", [rid])
    assert not hierarchy(store, rid, force=True).skipped
    assert store.scalar("SELECT count(DISTINCT tree_id) FROM cluster_tree WHERE run_id = ?",
                        [rid]) == 2
    assert store.scalar("SELECT count(*) FROM cluster_tree WHERE run_id = ?", [rid]) == 2 * n_rows
    assert len(load_tree(store, rid)) == n_rows


def test_curated_run_uses_centroids_and_errors(store):
    ids, y = nested(store, n_per=12)
    cfg = ClusterConfig(spaces=["text:nested"], algorithm="kmeans", k=6, umap_dims=0,
                        layout=False)
    (rid,) = cluster_run(store, cfg)
    c = curate(store, rid, [{"op": "merge", "clusters": [0, 1]}], relabel=False)
    assert hierarchy(store, c.run_id).method == "centroid_ward"
    with pytest.raises(InputError, match="no HDBSCAN condensed tree"):
        hierarchy(store, rid, method="condensed_tree")
    with pytest.raises(InputError, match="unknown --method 'ward'"):
        hierarchy(store, rid, method="ward")
    lone = curate(store, rid, [{"op": "discard", "clusters": [0, 1, 2, 3, 4]}], relabel=False)
    with pytest.raises(InputError, match="has 1 cluster"):
        hierarchy(store, lone.run_id)


def test_ctfidf_and_cli(store, db_path):
    assert ctfidf(["cat cat sofa", "dog dog park", "the and"])[:2] == [["cat", "sofa"],
                                                                       ["dog", "park"]]
    ids, y = nested(store, n_per=10)
    (rid,) = cluster_run(store, ClusterConfig(spaces=["text:nested"], algorithm="kmeans", k=6,
                                              umap_dims=0, layout=False))
    store.close()
    r = CliRunner().invoke(app, ["hierarchy", "--run", rid, "--db", str(db_path)])
    assert r.exit_code == 0, r.output
    assert "centroid_ward" in r.output and "top split" in r.output


def test_trends_by_level(store):
    from datetime import datetime, timedelta

    from memeatlas.study.trends import trends

    ids, y = nested(store, n_per=12)
    (rid,) = cluster_run(store, ClusterConfig(spaces=["text:nested"], algorithm="kmeans", k=6,
                                              umap_dims=0, layout=False))
    # the first group (true clusters 0-2) is posted late, the second early
    for i, (m, t) in enumerate(zip(ids, y, strict=True)):
        week = 6 + i % 6 if t < 3 else i % 6
        store.execute("INSERT INTO meme_times (meme_id, ts, source) VALUES (?, ?, 'test')",
                      [m, datetime(2024, 1, 1) + timedelta(weeks=week)])
    with pytest.raises(InputError, match="run `memeatlas hierarchy --run"):
        trends(store, rid, level=1)
    hierarchy(store, rid)
    s = trends(store, rid, period="week", level=1)
    assert len(s.rising) == 1 and len(s.fading) == 1
    assert all(n >= INNER_BASE for n in s.rising + s.fading)   # the two top groups
    with pytest.raises(InputError, match="--level 9 is outside"):
        trends(store, rid, level=9)
