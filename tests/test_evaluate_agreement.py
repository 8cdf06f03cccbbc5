"""Krippendorff's alpha: our implementation against the `krippendorff` package and the published example."""

from __future__ import annotations

import json

import krippendorff
import numpy as np
import pytest
from helpers_evaluate import add_memes, add_pairs, add_ratings

from memeatlas.errors import InputError
from memeatlas.evaluate import agreement, krippendorff_alpha
from memeatlas.evaluate.agreement import alpha_bootstrap

NAN = np.nan
# Krippendorff (2011), "Computing Krippendorff's alpha-reliability", section C: 4 observers, 12 units.
PUBLISHED = np.array([
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
])


@pytest.mark.parametrize("level,expected", [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849),
                                            ("ratio", 0.797)])
def test_published_example(level, expected):
    assert krippendorff_alpha(PUBLISHED, level) == pytest.approx(expected, abs=5e-4)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("level", ["ordinal", "nominal", "interval"])
def test_equals_krippendorff_package(seed, level):
    g = np.random.default_rng(seed)
    coders, units = g.integers(2, 5), g.integers(10, 60)
    base = g.integers(1, 4, size=units).astype(float)
    data = np.clip(base + g.integers(-1, 2, size=(coders, units)) * (g.random((coders, units)) < 0.3), 1, 3)
    data[g.random(data.shape) < 0.15] = np.nan  # missing ratings
    ours = krippendorff_alpha(data, level)
    ref = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    assert ours == pytest.approx(ref, abs=1e-10)


def test_mapped_scale_values_equal_package():
    # Non-integer values (a 0..5 scale mapped onto 1..3) are ordinal categories in sorted order.
    data = np.array([[1.0, 1.4, 2.2, 3.0, 2.6, 1.8], [1.0, 1.8, 2.2, 2.6, 2.6, 1.4]])
    ref = krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal")
    assert krippendorff_alpha(data, "ordinal") == pytest.approx(ref, abs=1e-10)


def test_bootstrap_ci_and_degenerate():
    a, lo, hi = alpha_bootstrap(PUBLISHED, "ordinal", b=500, seed=1)
    assert lo <= a <= hi
    assert alpha_bootstrap(PUBLISHED, "ordinal", b=500, seed=1) == (a, lo, hi)
    assert np.isnan(krippendorff_alpha(np.array([[2.0, 2.0], [2.0, 2.0]])))  # no variation: undefined
    with pytest.raises(InputError):
        krippendorff_alpha(PUBLISHED, "cardinal")


def test_agreement_per_dimension_from_store(store):
    m = add_memes(store, 10)
    pids = add_pairs(store, "ps", [(m[i], m[i + 1]) for i in range(9)])
    c1 = [3, 3, 1, 2, 1, 3, 2, 1, 3]
    c2 = [3, 2, 1, 2, 1, 3, 3, 1, 3]
    add_ratings(store, "ps", {p: [a, b] for p, a, b in zip(pids, c1, c2, strict=True)}, dimension="connotative")
    add_ratings(store, "ps", {p: [a, a] for p, a in zip(pids, c1, strict=True)}, dimension="denotative")
    r = agreement(store, "ps", bootstrap=200)
    by = {x["dimension"]: x for x in r.rows}
    ref = krippendorff.alpha(reliability_data=np.array([c1, c2], float), level_of_measurement="ordinal")
    assert by["connotative"]["alpha"] == pytest.approx(ref)
    assert by["denotative"]["alpha"] == pytest.approx(1.0)
    assert by["connotative"]["coders"] == 2 and by["connotative"]["pairs"] == 9
    assert by["connotative"]["exact_agreement"] == pytest.approx(7 / 9)
    stored = store.fetchall("SELECT metric, value, n, details, dimension FROM evaluations WHERE eval_id = ?"
                            " ORDER BY dimension", [r.eval_id])
    assert [s[0] for s in stored] == ["alpha_ordinal", "alpha_ordinal"]
    assert stored[0][1] == pytest.approx(ref) and stored[0][2] == 9
    assert json.loads(stored[0][3])["coders"] == 2


def test_agreement_without_ratings(store):
    m = add_memes(store, 3)
    add_pairs(store, "empty", [(m[0], m[1])])
    with pytest.raises(InputError, match="no ratings"):
        agreement(store, "empty")
