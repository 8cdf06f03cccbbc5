"""Cluster quality (Grimmer & King), ΔCQ and their bootstrap CIs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers_evaluate import (
    add_memes,
    add_pairs,
    add_ratings,
    add_run,
    insert_ratings,
    planted,
    rng,
    simulate_coder,
)

from memeatlas.errors import InputError, NotFoundError
from memeatlas.evaluate import compare_runs, cq_point, quality, sample_pairs
from memeatlas.evaluate.ratings import load_ratings


@pytest.fixture
def hand(store):
    """Six memes, two runs, six pairs rated by two coders (see the values worked out below)."""
    m = add_memes(store, 6)
    add_run(store, "A", {m[0]: 0, m[1]: 0, m[2]: 0, m[3]: 1, m[4]: 1, m[5]: -1})
    add_run(store, "B", {m[0]: 0, m[2]: 0, m[4]: 0, m[1]: 1, m[3]: 1, m[5]: 1}, space="image:clip")
    pids = add_pairs(store, "hand", [(m[0], m[1]), (m[0], m[2]), (m[3], m[4]), (m[0], m[3]),
                                     (m[1], m[4]), (m[2], m[5])])
    add_ratings(store, "hand", dict(zip(pids, [[3, 3], [3, 2], [2, 2], [1, 1], [1, 2], [2, 1]], strict=True)))
    return m


def test_cq_hand_computed_exact(store, hand):
    # Pair means: 3, 2.5, 2, 1, 1.5, 1.5.
    # A together: p1 p2 p3 -> 2.5; apart: p4 p5 p6 (noise) -> 4/3; CQ = 7/6.
    # B together: p2 -> 2.5; apart: the other five -> 9/5; CQ = 0.7. ΔCQ = 7/6 - 7/10 = 7/15.
    r = quality(store, "A,B", "hand", bootstrap=200, seed=1)
    a, b = r.cq("A", "connotative"), r.cq("B", "connotative")
    assert a["value"] == pytest.approx(7 / 6, abs=1e-12)
    assert a["mean_within"] == pytest.approx(2.5) and a["mean_between"] == pytest.approx(4 / 3)
    assert (a["n_within"], a["n_between"]) == (3, 3)
    assert b["value"] == pytest.approx(0.7, abs=1e-12)
    assert (b["n_within"], b["n_between"]) == (1, 5)
    assert r.delta("A", "B", "connotative")["value"] == pytest.approx(7 / 15, abs=1e-12)
    assert any("noise" in n and "apart" in n for n in r.notes)


def test_noise_modes(store, hand):
    drop = quality(store, "A,B", "hand", bootstrap=0, noise="drop")
    # Dropping p6 (m5 is noise in A): A apart mean = (1 + 1.5) / 2 -> CQ = 2.5 - 1.25.
    assert drop.cq("A", "connotative")["value"] == pytest.approx(1.25)
    assert drop.cq("A", "connotative")["n"] == 5
    # ΔCQ uses pairs both runs keep: B without p6 -> within 2.5, apart (3+2+1+1.5)/4 = 1.875.
    assert drop.delta("A", "B", "connotative")["value"] == pytest.approx(1.25 - (2.5 - 1.875))
    assert drop.delta("A", "B", "connotative")["n"] == 5
    as_cluster = quality(store, "A", "hand", bootstrap=0, noise="cluster")
    assert as_cluster.cq("A", "connotative")["value"] == pytest.approx(7 / 6)
    with pytest.raises(InputError):
        quality(store, "A", "hand", noise="bogus")


def test_results_stored_with_details(store, hand):
    r = quality(store, "A,B", "hand", bootstrap=100, seed=3)
    rows = store.fetchall("SELECT run_id, metric, value, n, details, pair_set, dimension, command FROM evaluations"
                          " WHERE eval_id = ? ORDER BY metric, run_id", [r.eval_id])
    assert [(x[0], x[1]) for x in rows] == [("A", "cq"), ("B", "cq"), ("A", "delta_cq")]
    d = json.loads(rows[0][4])
    assert d["n_within"] == 3 and d["n_between"] == 3 and d["noise"] == "assigned"
    assert d["bootstrap"] == 100 and d["seed"] == 3 and d["dimension"] == "connotative"
    assert json.loads(rows[2][4])["run_b"] == "B"
    assert rows[0][5:] == ("hand", "connotative", "quality")


def test_uncovered_memes_reported(store, hand):
    extra = add_memes(store, 1, prefix="x")[0]
    add_run(store, "C", {hand[i]: i % 2 for i in range(5)})  # does not cover m5
    r = quality(store, "A,C", "hand", bootstrap=0)
    assert r.uncovered["C"]["n"] == 1 and r.uncovered["C"]["examples"] == [hand[5]]
    assert any("does not cover 1 of 6" in n for n in r.notes)
    assert r.cq("C", "connotative")["n"] == 5 and r.cq("A", "connotative")["n"] == 6
    assert r.delta("A", "C", "connotative")["n"] == 5
    assert extra


def test_bootstrap_ci_contains_point_and_is_reproducible(store, hand):
    r1 = quality(store, "A,B", "hand", bootstrap=500, seed=7, save=False)
    r2 = quality(store, "A,B", "hand", bootstrap=500, seed=7, save=False)
    r3 = quality(store, "A,B", "hand", bootstrap=500, seed=8, save=False)
    for row in r1.rows:
        assert row["ci_low"] <= row["value"] <= row["ci_high"]
    assert [x["ci_low"] for x in r1.rows] == [x["ci_low"] for x in r2.rows]
    assert [x["ci_high"] for x in r1.rows] == [x["ci_high"] for x in r2.rows]
    assert [x["ci_low"] for x in r1.rows] != [x["ci_low"] for x in r3.rows]


def _planted_arrays(n_pairs: int, seed: int):
    """Random pairs over 60 memes in 5 groups; rating 3 same group / 1 other, 15 % flipped to 2."""
    g = rng(seed)
    groups = np.array(planted(5, 12))
    i = g.integers(0, 60, n_pairs)
    j = (i + g.integers(1, 60, n_pairs)) % 60
    same = groups[i] == groups[j]
    y = np.where(same, 3.0, 1.0)
    y[g.random(n_pairs) < 0.15] = 2.0
    shuffled = g.permutation(groups)
    st_true = same.astype(np.int8)
    st_shuf = (shuffled[i] == shuffled[j]).astype(np.int8)
    return y, st_true, st_shuf


def test_ci_narrows_with_more_pairs():
    widths = []
    for n in (150, 1500):
        y, st, _ = _planted_arrays(n, seed=11)
        cq_rows, _ = compare_runs(y, {"true": st}, b=800, seed=0)
        widths.append(cq_rows[0]["ci_high"] - cq_rows[0]["ci_low"])
        assert cq_rows[0]["ci_low"] <= cq_rows[0]["cq"] <= cq_rows[0]["ci_high"]
    assert widths[1] < widths[0] * 0.6  # ~1/sqrt(10) in theory


def test_cq_point_matches_definition():
    y = [3, 2, 1, 1]
    assert cq_point(y, [1, 1, 0, -1])[0] == pytest.approx(2.5 - 1)
    assert np.isnan(cq_point(y, [0, 0, 0, 0])[0])  # no within pairs: undefined, not 0


def test_planted_truth_beats_shuffled(store, tmp_path):
    """Synthetic memes in known groups, two simulated coders: the true clustering wins, ΔCQ CI excludes 0."""
    groups = planted(5, 12)
    m = add_memes(store, len(groups))
    truth = dict(zip(m, groups, strict=True))
    add_run(store, "true", truth)
    shuffled = rng(5).permutation(groups)
    add_run(store, "shuffled", dict(zip(m, shuffled.tolist(), strict=True)), space="image:clip")
    s = sample_pairs(store, "true,shuffled", n=240, strategy="stratified", seed=2, pair_set="planted")
    assert s.n_pairs == 240
    pairs = [(p, a, b) for p, a, b in store.fetchall(
        "SELECT pair_id, meme_a, meme_b FROM rating_pairs WHERE pair_set = 'planted'")]
    for k in (1, 2):
        ratings = simulate_coder(truth, pairs, rng=rng(100 + k))
        insert_ratings(store, "planted", [(pid, f"coder{k}", "connotative", v) for pid, v in ratings.items()])
    r = quality(store, "true,shuffled", "planted", bootstrap=1000, seed=0)
    t, sh = r.cq("true", "connotative"), r.cq("shuffled", "connotative")
    assert t["value"] > 1.0 > sh["value"]
    d = r.delta("true", "shuffled", "connotative")
    assert d["ci_low"] > 0 and d["excludes_zero"]
    assert r.weights == "design"
    # Unweighted estimates agree in direction.
    r2 = quality(store, "true,shuffled", "planted", bootstrap=200, seed=0, weights="none", save=False)
    assert r2.delta("true", "shuffled", "connotative")["ci_low"] > 0


def test_design_weights_recover_population_cq(store):
    """Stratified + design weights estimates the CQ computed on every pair (within noise)."""
    groups = planted(4, 15)
    m = add_memes(store, len(groups))
    truth = dict(zip(m, groups, strict=True))
    other = dict(zip(m, [(i // 3) % 10 for i in range(len(m))], strict=True))  # another partition
    add_run(store, "t", truth)
    add_run(store, "o", other)
    sample_pairs(store, "t,o", n=1200, strategy="stratified", seed=4, pair_set="s")
    pairs = store.fetchall("SELECT pair_id, meme_a, meme_b FROM rating_pairs WHERE pair_set = 's'")
    # Deterministic "rating": 3 when same truth group, else 1 -> population CQ is known exactly.
    insert_ratings(store, "s", [(pid, "c", "d", 3.0 if truth[a] == truth[b] else 1.0) for pid, a, b in pairs])
    ids = list(m)
    y_all, st_o = [], []
    for i in range(len(ids)):
        for j in range(i + 1, len(ids)):
            y_all.append(3.0 if truth[ids[i]] == truth[ids[j]] else 1.0)
            st_o.append(1 if other[ids[i]] == other[ids[j]] else 0)
    pop = cq_point(y_all, st_o)[0]
    r = quality(store, "o", "s", bootstrap=300, seed=0, save=False)
    est = r.cq("o", "d")
    assert est["ci_low"] - 0.05 <= pop <= est["ci_high"] + 0.05
    assert abs(est["value"] - pop) < 0.15


def test_errors(store, hand):
    with pytest.raises(NotFoundError, match="not found"):
        quality(store, "A,nope", "hand")
    with pytest.raises(NotFoundError, match="pair set"):
        quality(store, "A", "nope")
    with pytest.raises(InputError, match="no ratings for dimension"):
        quality(store, "A", "hand", dimension="denotative")
    assert len(load_ratings(store, "hand")) == 12


def test_by_coder(store, hand):
    # Coder 1 rates 3,3,2,1,1,2 and coder 2 rates 3,2,2,1,2,1 (pairs p1..p6).
    # Run A: c1 within 8/3, apart 4/3 -> 4/3; c2 within 7/3, apart 4/3 -> 1.
    r = quality(store, "A,B", "hand", bootstrap=50, by_coder=True)
    per = {(x["coder"], x["run"]): x["value"] for x in r.rows if x["metric"] == "cq_coder"}
    assert per[("c1", "A")] == pytest.approx(4 / 3) and per[("c2", "A")] == pytest.approx(1.0)
    assert r.cq("A", "connotative")["value"] == pytest.approx(7 / 6)  # pooled row unchanged
    assert "coder" in r.columns
    assert len([x for x in r.rows if x["metric"] == "delta_cq_coder"]) == 2
    stored = store.fetchall("SELECT metric, details->>'coder' FROM evaluations WHERE eval_id = ? "
                            "AND metric = 'cq_coder' ORDER BY 2", [r.eval_id])
    assert [s[1] for s in stored] == ["c1", "c1", "c2", "c2"]
