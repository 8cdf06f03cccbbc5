"""Automatic granularity, soft noise membership and stability across seeds (issue 10)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers_cluster import add_memes, add_space, meme_id, synthetic_store
from sklearn.metrics import adjusted_rand_score
from typer.testing import CliRunner

from memeatlas.cli import app
from memeatlas.cluster import ClusterConfig, get_run_info, run
from memeatlas.cluster.granularity import candidate_sizes, choose
from memeatlas.cluster.soft import soft_membership
from memeatlas.cluster.stability import cluster_stability, pairwise_ari
from memeatlas.errors import InputError


def planted(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """2-D: unequal clusters (300, 150, 60, 30), the first two nested in one group, and a
    uniform background of 80 noise points (label −1). The right answer is 4 clusters."""
    rng = np.random.default_rng(seed)
    sizes = [300, 150, 60, 30]
    centres = np.array([[0, 0], [4.5, 0], [0, 14], [14, 14]], float)
    xs, ys = [], []
    for c, (s, m) in enumerate(zip(sizes, centres, strict=True)):
        xs.append(m + 0.7 * rng.normal(size=(s, 2)))
        ys += [c] * s
    xs.append(rng.uniform(-6, 20, size=(80, 2)))
    ys += [-1] * 80
    return np.vstack(xs), np.array(ys)


def haloed(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three dense 2-D cores, each with a sparse halo of its own members around it (the halos
    join only after the cores have split, so HDBSCAN calls them noise)."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0], [7, 0], [3.5, 6.3]], float)
    xs, ys = [], []
    for c, m in enumerate(centres):
        xs.append(m + 0.5 * rng.normal(size=(120, 2)))
        ang = rng.uniform(0, 2 * np.pi, 15)
        xs.append(m + rng.uniform(2.5, 3.3, 15)[:, None] * np.c_[np.cos(ang), np.sin(ang)])
        ys += [c] * 135
    return np.vstack(xs), np.array(ys)


def test_candidate_sizes_are_a_documented_geometric_grid():
    assert candidate_sizes(4000) == [5, 8, 14, 24, 41, 70, 118, 200]
    assert candidate_sizes(100_000)[-1] == 500  # capped
    assert candidate_sizes(60) == [5]
    assert candidate_sizes(8) == [4]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auto_finds_the_planted_number_of_clusters(seed):
    x, y = planted(seed)
    ch = choose(x)
    keep = y >= 0
    assert ch.chosen.n_clusters == 4
    assert adjusted_rand_score(y[keep], ch.chosen.labels[keep]) >= 0.95
    # The curve is over every candidate and the choice is its maximum.
    values = [c.value for c in ch.candidates if c.value is not None]
    assert ch.chosen.value == max(values)
    # A fixed size above the smallest cluster loses it: the size matters on this data.
    too_big = choose(x, candidates=[60])
    assert too_big.chosen.n_clusters < 4


def test_shared_tree_gives_hdbscans_own_clusterings():
    """choose() builds HDBSCAN's tree once, with core distances from a threaded single-tree
    query instead of hdbscan's dual-tree one: every candidate must equal a plain HDBSCAN fit
    (more points than one query block, with exact duplicates for ties)."""
    import hdbscan

    rng = np.random.default_rng(3)
    centres = rng.normal(0, 6, (12, 5))
    x = np.vstack([c + rng.normal(0, 1, (2_000, 5)) for c in centres] + [rng.uniform(-15, 15, (3_000, 5))])
    x = np.vstack([x, x[:500]])  # exact duplicates
    ch = choose(x, candidates=[5, 40, 300])
    for c in ch.candidates:
        ref = hdbscan.HDBSCAN(min_cluster_size=c.min_cluster_size, min_samples=c.min_samples,
                              core_dist_n_jobs=1).fit(x)
        assert np.array_equal(ref.labels_, c.labels), c.min_cluster_size
        assert np.array_equal(ref.probabilities_, c.probabilities), c.min_cluster_size
    assert ch.chosen.model.memory is None


def test_soft_assignment_puts_noise_points_in_their_true_cluster():
    x, y = haloed()
    ch = choose(x, candidates=[20])
    c = ch.chosen
    noise = c.labels < 0
    assert noise.sum() >= 15  # the halos are noise to HDBSCAN …
    soft, sp = soft_membership(c.model, c.labels, c.probabilities)
    # … and the soft cluster puts them back where they belong (clusters matched to truth).
    mapping = {k: np.bincount(y[c.labels == k]).argmax() for k in set(c.labels.tolist()) - {-1}}
    landed = np.array([mapping[k] for k in soft[noise]])
    assert (landed == y[noise]).mean() >= 0.9
    assert (soft[~noise] == c.labels[~noise]).all()
    assert ((sp >= 0) & (sp <= 1)).all() and soft.min() >= 0


def test_stability_helpers():
    a = np.array([0, 0, 0, 1, 1, 1, -1])
    assert pairwise_ari([a, a.copy()]) == [1.0]
    rows = cluster_stability(a, [np.array([5, 5, 5, 7, 7, -1, -1])])
    assert rows[0] == {"cluster": 0, "size": 3, "jaccard": 1.0, "together": 1.0}
    assert rows[1]["jaccard"] == pytest.approx(2 / 3) and rows[1]["together"] == pytest.approx(1 / 3)


def test_auto_run_stores_choice_soft_columns_and_stability_in_sql(store):
    ids, _, y = synthetic_store(store, n_per=60, n_clusters=4)
    [rid] = run(store, ClusterConfig(spaces=["text:synthetic"], stability=3, layout=False))
    info = get_run_info(store, rid)
    g = info["params"]["granularity"]
    assert g["criterion"] == "persistence" and g["chosen"] == info["params"]["min_cluster_size"]
    assert g["candidates"] == candidate_sizes(len(ids))
    # The curve, readable from SQL, one row per candidate, exactly one chosen.
    rows = store.fetchall("SELECT min_cluster_size, criterion, value, n_clusters, chosen FROM "
                          "cluster_granularity WHERE run_id = ? ORDER BY min_cluster_size", [rid])
    assert [r[0] for r in rows] == g["candidates"] and sum(r[4] for r in rows) == 1
    assert store.scalar("SELECT params->>'$.granularity.criterion' FROM cluster_runs "
                        "WHERE run_id = ?", [rid]) == "persistence"
    # Every meme has a soft cluster; clustered memes keep their hard cluster there.
    assert store.scalar("SELECT count(*) FROM cluster_assignments WHERE run_id = ? AND "
                        "(soft_cluster IS NULL OR soft_cluster < 0)", [rid]) == 0
    assert store.scalar("SELECT count(*) FROM cluster_assignments WHERE run_id = ? AND "
                        "cluster >= 0 AND soft_cluster <> cluster", [rid]) == 0
    # One membership: noise joins its soft cluster only at or above the run's floor.
    floor = info["params"]["assign_floor"]
    assert store.scalar("SELECT count(*) FROM cluster_members WHERE run_id = ? AND "
                        "membership = 'assigned' AND (probability < ? OR cluster < 0)",
                        [rid, floor]) == 0
    assert store.scalar("SELECT count(*) FROM cluster_assignments WHERE run_id = ? AND "
                        "cluster < 0 AND soft_probability >= ? AND membership <> 'assigned'",
                        [rid, floor]) == 0
    # Separated data: the seed does not matter.
    assert info["stability"] >= 0.95
    assert info["params"]["stability"]["seeds"] == [42, 43, 44]
    per = store.fetchall("SELECT cluster, size, jaccard, together, n_seeds FROM "
                         "cluster_stability WHERE run_id = ?", [rid])
    assert len(per) == info["n_clusters"] and all(r[4] == 3 for r in per)
    assert np.median([r[2] for r in per]) >= 0.9 and all(0 <= r[3] <= 1 for r in per)


def test_stability_is_clearly_lower_for_a_structureless_blob(store):
    rng = np.random.default_rng(0)
    ids = [meme_id(i) for i in range(240)]
    add_memes(store, ids)
    add_space(store, "text:blob", ids, rng.normal(size=(240, 64)))
    [rid] = run(store, ClusterConfig(spaces=["text:blob"], stability=3, layout=False))
    assert get_run_info(store, rid)["stability"] < 0.6


def test_auto_on_planted_data_through_the_store(store):
    """The whole run (umap_dims 0: HDBSCAN on the vectors) finds the planted 4 clusters."""
    x, y = planted(0)
    x3 = np.c_[x, np.full(len(x), 40.0)]  # lift the plane onto the unit sphere, nearly flat
    ids = [meme_id(i) for i in range(len(y))]
    add_memes(store, ids)
    add_space(store, "text:planted", ids, x3)
    [rid] = run(store, ClusterConfig(spaces=["text:planted"], umap_dims=0, layout=False))
    assert get_run_info(store, rid)["n_clusters"] == 4
    got = dict(store.fetchall("SELECT meme_id, soft_cluster FROM cluster_assignments "
                              "WHERE run_id = ?", [rid]))
    keep = y >= 0
    soft = np.array([got[m] for m in ids])
    assert adjusted_rand_score(y[keep], soft[keep]) >= 0.95


def test_same_inputs_and_seed_give_identical_auto_runs(store):
    synthetic_store(store, n_per=40, n_clusters=3)
    cfg = ClusterConfig(spaces=["text:synthetic"], stability=2, layout=False, seed=3)
    [a] = run(store, cfg)
    assert run(store, cfg) == [a]  # same fingerprint: skipped
    cfg.force = True
    [b] = run(store, cfg)
    q = ("SELECT meme_id, cluster, probability, soft_cluster, soft_probability FROM "
         "cluster_assignments WHERE run_id = ? ORDER BY meme_id")
    assert store.fetchall(q, [a]) == store.fetchall(q, [b])
    ia, ib = get_run_info(store, a), get_run_info(store, b)
    assert ia["params"] == ib["params"] and ia["stability"] == ib["stability"]


def test_fixed_size_and_sweep_keep_working(store):
    synthetic_store(store, n_per=40, n_clusters=3)
    [rid] = run(store, ClusterConfig(spaces=["text:synthetic"], min_cluster_size=10,
                                     layout=False))
    info = get_run_info(store, rid)
    assert info["params"]["min_cluster_size"] == 10 and "granularity" not in info["params"]
    assert not store.scalar("SELECT count(*) FROM cluster_granularity WHERE run_id = ?", [rid])
    runs = run(store, ClusterConfig(spaces=["text:synthetic"], layout=False,
                                    sweep={"min_cluster_size": [8, 12]}))
    assert [get_run_info(store, r)["params"]["min_cluster_size"] for r in runs] == [8, 12]


def test_fewer_memes_than_min_cluster_size_says_so_and_suggests_a_value(store, db_path):
    """Issue 16, defect 13."""
    synthetic_store(store, n_per=6, n_clusters=2)  # 12 memes
    with pytest.raises(InputError, match=r"only 12 memes.*--min-cluster-size 50.*auto"):
        run(store, ClusterConfig(spaces=["text:synthetic"], min_cluster_size=50))
    assert store.scalar("SELECT count(*) FROM cluster_runs") == 0
    store.close()
    res = CliRunner().invoke(app, ["cluster", "--space", "text:synthetic", "--db",
                                   str(db_path), "--min-cluster-size", "50"])
    assert res.exit_code == 1
    assert "only 12 memes" in res.output and "--min-cluster-size 4" in res.output
    res = CliRunner().invoke(app, ["cluster", "--space", "text:synthetic", "--db",
                                   str(db_path), "--min-cluster-size", "big"])
    assert res.exit_code == 1 and "'auto' or a whole number" in res.output
    res = CliRunner().invoke(app, ["cluster", "--space", "text:synthetic", "--db",
                                   str(db_path), "--granularity-criterion", "dbcv"])
    assert res.exit_code == 1 and "persistence, relative_validity" in res.output


def test_cli_auto_and_stability(db_path):
    from memeatlas.store import Store

    with Store.open(db_path) as s:
        synthetic_store(s, n_per=40, n_clusters=3)
    res = CliRunner().invoke(app, ["cluster", "--space", "text:synthetic", "--db", str(db_path),
                                   "--no-layout", "--stability", "2"])
    assert res.exit_code == 0, res.output
    assert "persistence over" in res.output and "stability (mean ARI)" in res.output
    rid = res.stdout.strip().splitlines()[-1]
    with Store.open(db_path) as s:
        p = json.loads(s.scalar("SELECT params FROM cluster_runs WHERE run_id = ?", [rid]))
    assert p["granularity"]["chosen"] == p["min_cluster_size"]


@pytest.fixture
def auto_run_with_scores(store):
    """An auto run with stability, plus known-label evaluations of it and of a fixed-size run."""
    from memeatlas.evaluate.common import new_eval_id, store_evaluations

    ids, _, y = synthetic_store(store, n_per=40, n_clusters=3)
    [rid] = run(store, ClusterConfig(spaces=["text:synthetic"], stability=2))
    [fixed] = run(store, ClusterConfig(spaces=["text:synthetic"], min_cluster_size=30,
                                       layout=False))
    rows = [{"run_id": r, "metric": "nmi", "value": v, "dimension": "truth",
             "details": {"scope": "all", "noise": "assigned"}} for r, v in ((rid, 0.9),
                                                                            (fixed, 0.7))]
    store_evaluations(store, new_eval_id("labels"), "labels", rows)
    return store, rid


def test_report_shows_the_criterion_curve_stability_and_scores_by_cluster_count(
        auto_run_with_scores):
    from memeatlas.report.collect import collect

    store, rid = auto_run_with_scores
    g = collect(store, rid).payload["granularity"]
    assert [p["min_cluster_size"] for p in g["curve"]] == candidate_sizes(120)
    assert sum(p["chosen"] for p in g["curve"]) == 1
    assert g["stability"]["mean_ari"] == pytest.approx(get_run_info(store, rid)["stability"],
                                                       abs=1e-6)
    assert len(g["clusters"]) == get_run_info(store, rid)["n_clusters"]
    assert {(p["series"], p["current"]) for p in g["scores"]} == {
        ("nmi · truth · noise assigned", True), ("nmi · truth · noise assigned", False)}
    assert g["noise"]["mode"] == "assigned"
    apart = collect(store, rid, noise="apart").payload
    assigned = collect(store, rid).payload
    assert assigned["memes"]["cluster"].count(-1) == 0
    assert apart["memes"]["cluster"].count(-1) == g["noise"]["hdbscan_noise"]
    with pytest.raises(InputError, match="--noise"):
        collect(store, rid, noise="drop")


@pytest.mark.browser
def test_report_granularity_panel_renders_in_chromium(auto_run_with_scores, tmp_path):
    from helpers_report import chromium_available, launch_browser

    if not chromium_available():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    from memeatlas.report import build

    store, rid = auto_run_with_scores
    out = tmp_path / "r.html"
    build(store, rid, out)
    with sync_playwright() as p:
        b = launch_browser(p)
        page = b.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(out.as_uri())
        page.wait_for_selector("body[data-ready='1']")
        assert page.locator("#granularity-panel").is_visible()
        assert page.locator("#granularity-svg circle").count() == len(candidate_sizes(120))
        assert page.locator("#scores-svg circle").count() == 2
        assert "mean pairwise ARI" in page.locator("#stability-box").inner_text()
        b.close()
    assert not errors


def test_consensus_run_over_the_stability_seeds(store):
    ids, _, y = synthetic_store(store, n_per=40, n_clusters=3)
    main, cons = run(store, ClusterConfig(spaces=["text:synthetic"], stability=3,
                                          consensus=True, layout=False))
    ci = get_run_info(store, cons)
    assert ci["kind"] == "consensus" and ci["parent_run"] == main
    assert ci["params"]["consensus"]["seeds"] == 3
    got = dict(store.fetchall("SELECT meme_id, cluster FROM cluster_assignments WHERE run_id = ?",
                              [cons]))
    pos = {m: i for i, m in enumerate(ids)}
    lab = np.array([got[m] for m in ids])
    keep = lab >= 0
    assert keep.mean() > 0.8 and adjusted_rand_score(y[[pos[m] for m in ids]][keep],
                                                     lab[keep]) >= 0.9
    # A re-run finds both.
    assert run(store, ClusterConfig(spaces=["text:synthetic"], stability=3, consensus=True,
                                    layout=False)) == [main, cons]


def test_evaluate_noise_assigned_uses_the_soft_cluster(store):
    """CQ and ARI/NMI with --noise assigned put memes assigned from noise in their soft
    cluster; apart keeps noise in no cluster."""
    from helpers_evaluate import add_memes as add_eval_memes
    from helpers_evaluate import add_pairs, add_ratings, add_run

    from memeatlas.evaluate import quality
    from memeatlas.evaluate.external import labels

    m = add_eval_memes(store, 6)
    add_run(store, "A", {m[0]: 0, m[1]: 0, m[2]: 0, m[3]: 1, m[4]: 1, m[5]: -1})
    store.execute("UPDATE cluster_assignments SET soft_cluster = coalesce(nullif(cluster, -1), 0),"
                  " soft_probability = 0.5, membership = CASE WHEN cluster = -1 THEN 'assigned' "
                  "ELSE 'core' END WHERE run_id = 'A'")
    pids = add_pairs(store, "hand", [(m[0], m[1]), (m[0], m[2]), (m[3], m[4]), (m[0], m[3]),
                                     (m[1], m[4]), (m[2], m[5])])
    add_ratings(store, "hand", dict(zip(pids, [[3, 3], [3, 2], [2, 2], [1, 1], [1, 2], [2, 1]],
                                        strict=True)))
    # apart: together p1 p2 p3 (2.5), apart p4 p5 p6 (4/3) → 7/6; assigned: m5 joins cluster 0,
    # so p6 is together: together (3 + 2.5 + 2 + 1.5) / 4 = 2.25, apart (1 + 1.5) / 2 → 1.0.
    apart = quality(store, "A", "hand", bootstrap=0, noise="apart")
    assigned = quality(store, "A", "hand", bootstrap=0)  # the default
    assert apart.cq("A", "connotative")["value"] == pytest.approx(7 / 6)
    assert assigned.cq("A", "connotative")["value"] == pytest.approx(1.0)
    assert assigned.noise == "assigned"
    store.execute("UPDATE memes SET meta = json_object('t', CASE WHEN meme_id IN (?, ?, ?, ?) "
                  "THEN 'x' ELSE 'y' END)", [m[0], m[1], m[2], m[5]])
    res = labels(store, "A", "meta.t", save=False)
    row = next(r for r in res.rows if r["scope"] == "all")
    assert row["ari"] == pytest.approx(1.0)  # m5 assigned to cluster 0 = its true group
    res = labels(store, "A", "meta.t", noise="singletons", save=False)
    assert next(r for r in res.rows if r["scope"] == "all")["ari"] < 1.0


def test_soft_membership_falls_back_to_a_knn_vote_for_huge_matrices(monkeypatch):
    from sklearn.neighbors import NearestNeighbors

    from memeatlas.cluster import soft as soft_mod

    x, y = haloed()
    c = choose(x, candidates=[20]).chosen
    idx = NearestNeighbors(n_neighbors=16).fit(x).kneighbors(x, return_distance=False)
    monkeypatch.setattr(soft_mod, "MAX_CELLS", 10)
    assert soft_mod.method_for(len(x), c.n_clusters) == soft_mod.SOFT_KNN
    soft, sp = soft_mod.soft_membership(c.model, c.labels, c.probabilities, idx)
    noise = c.labels < 0
    mapping = {k: np.bincount(y[c.labels == k]).argmax() for k in set(c.labels.tolist()) - {-1}}
    placed = soft[noise] >= 0
    assert placed.mean() >= 0.9
    assert (np.array([mapping[k] for k in soft[noise][placed]]) == y[noise][placed]).mean() >= 0.9
    assert (soft[~noise] == c.labels[~noise]).all() and ((sp >= 0) & (sp <= 1)).all()
