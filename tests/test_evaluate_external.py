"""Known-label metrics against scikit-learn, noise handling, and --truth specs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers_evaluate import add_memes, add_run, rng
from sklearn import metrics

from memeatlas.errors import InputError
from memeatlas.evaluate import labels
from memeatlas.evaluate.external import noise_as_singletons, purity, scores


def _purity_sklearn(t, p):
    table = metrics.cluster.contingency_matrix(t, p)
    return table.max(axis=0).sum() / table.sum()


@pytest.mark.parametrize("seed", range(5))
def test_scores_equal_sklearn(seed):
    g = rng(seed)
    t = g.integers(0, 5, 200).astype(str)
    p = g.integers(-1, 7, 200)
    s = scores(t, p)
    assert s["ari"] == pytest.approx(metrics.adjusted_rand_score(t, p))
    assert s["nmi"] == pytest.approx(metrics.normalized_mutual_info_score(t, p))
    assert s["v_measure"] == pytest.approx(metrics.v_measure_score(t, p))
    assert s["homogeneity"] == pytest.approx(metrics.homogeneity_score(t, p))
    assert s["completeness"] == pytest.approx(metrics.completeness_score(t, p))
    assert s["purity"] == pytest.approx(_purity_sklearn(t, p))


def test_purity_by_hand_and_singletons():
    assert purity(["a", "a", "b", "b"], [0, 0, 0, 1]) == pytest.approx(0.75)
    assert noise_as_singletons([0, -1, 1, -1]).tolist() == [0, 2, 1, 3]


def test_labels_with_and_without_noise_from_meta(store):
    themes = ["cats", "dogs", "work"]
    meta = [{"theme": themes[i % 3]} for i in range(30)]
    m = add_memes(store, 30, meta=meta)
    pred = {x: (i % 3 if i % 5 else -1) for i, x in enumerate(m)}  # right except noise points
    add_run(store, "r", pred)
    r = labels(store, "r", "theme")
    by = {x["scope"]: x for x in r.rows}
    assert by["clustered"]["ari"] == pytest.approx(1.0) and by["clustered"]["purity"] == 1.0
    assert by["clustered"]["coverage"] == pytest.approx(24 / 30)
    t = np.array([meta[i]["theme"] for i in range(30)])
    p = np.array([pred[x] for x in m])
    ps = noise_as_singletons(p)
    assert by["all"]["ari"] == pytest.approx(metrics.adjusted_rand_score(t, ps))
    assert by["all"]["nmi"] == pytest.approx(metrics.normalized_mutual_info_score(t, ps))
    assert by["all"]["n"] == 30
    as_one = labels(store, "r", "meta.theme", noise="cluster", save=False)
    assert as_one.rows[0]["v_measure"] == pytest.approx(metrics.v_measure_score(t, p))
    stored = store.fetchall("SELECT metric, details FROM evaluations WHERE eval_id = ?", [r.eval_id])
    assert len(stored) == 2 * 6
    assert {json.loads(d)["scope"] for _, d in stored} == {"all", "clustered"}


def test_truth_from_sql_and_column(store):
    m = add_memes(store, 12)
    add_run(store, "r", {x: i % 2 for i, x in enumerate(m)})
    store.execute("CREATE TABLE gold AS SELECT meme_id, CASE WHEN source_id IN ('m0','m2','m4','m6','m8','m10') "
                  "THEN 'even' ELSE 'odd' END AS label FROM memes")
    r = labels(store, "r", "SELECT meme_id, label FROM gold", save=False)
    assert r.rows[0]["ari"] == pytest.approx(1.0)
    r2 = labels(store, "r", "format", save=False)  # a memes column: one category
    assert r2.rows[0]["categories"] == 1
    with pytest.raises(InputError, match="gave no labels"):
        labels(store, "r", "no_such_key")
    with pytest.raises(InputError, match="failed"):
        labels(store, "r", "SELECT nope FROM gold")
