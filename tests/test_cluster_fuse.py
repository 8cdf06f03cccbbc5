"""cluster fusion: weight validation, concatenation algebra, per-meme modality weighting."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_cluster import add_memes, add_space, blobs, meme_id
from sklearn.metrics import adjusted_rand_score

from memeatlas.cluster import ClusterConfig, get_run, get_run_info, run
from memeatlas.cluster.fuse import (
    dynamic_weights,
    fuse,
    fuse_new,
    neighbourhood_coherence,
    validate_weights,
)
from memeatlas.errors import InputError


def test_validate_weights():
    np.testing.assert_allclose(validate_weights(None, 2), [0.5, 0.5])
    np.testing.assert_allclose(validate_weights([3, 1], 2), [0.75, 0.25])
    np.testing.assert_allclose(validate_weights([0, 2], 2), [0.0, 1.0])
    with pytest.raises(InputError, match="2 space"):
        validate_weights([1.0], 2)
    with pytest.raises(InputError, match="3 value"):
        validate_weights([1, 1, 1], 2)
    with pytest.raises(InputError, match="non-negative"):
        validate_weights([0.5, -0.1], 2)
    with pytest.raises(InputError, match="non-negative"):
        validate_weights([float("nan"), 1], 2)
    with pytest.raises(InputError, match="all zero"):
        validate_weights([0, 0], 2)


def test_concat_cosine_is_weighted_mean_of_space_cosines():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(20, 8)), rng.normal(size=(20, 5))
    z, info = fuse([a, b], [0.7, 0.3])
    assert info["weights"] == pytest.approx([0.7, 0.3])
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    bn = b / np.linalg.norm(b, axis=1, keepdims=True)
    np.testing.assert_allclose(z @ z.T, 0.7 * an @ an.T + 0.3 * bn @ bn.T, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)


def test_coherence_of_identical_neighbourhoods_is_one():
    # 3 cliques of 4: each point's 3 neighbours are the rest of its clique.
    idx = np.array([[j for j in range(4 * (i // 4), 4 * (i // 4) + 4) if j != i]
                    for i in range(12)])
    c = neighbourhood_coherence(idx)
    # N(i) ∩ N(j) for j in the clique = clique minus i and j → 2 of 3 shared
    np.testing.assert_allclose(c, 2 / 3)


def test_dynamic_weighting_puts_weight_on_the_informative_space():
    x, _ = blobs(60, 4, dim=64, seed=3)
    noise = np.random.default_rng(9).normal(size=(x.shape[0], 64)).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    w = dynamic_weights([x, noise], np.array([0.5, 0.5]), k=10)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    assert w[:, 0].mean() > 0.75
    assert (w[:, 0] > 0.5).mean() >= 0.95
    # order of spaces does not matter
    w2 = dynamic_weights([noise, x], np.array([0.5, 0.5]), k=10)
    np.testing.assert_allclose(w2[:, ::-1], w)
    # a global weight of 0 silences a space whatever its confidence
    w0 = dynamic_weights([x, noise], np.array([0.0, 1.0]), k=10)
    np.testing.assert_allclose(w0[:, 0], 0.0)
    # new memes are weighted the same way
    z_new = fuse_new([x[:200], noise[:200]], [x[200:], noise[200:]], None, method="dynamic",
                     k=10)
    a = z_new[:, :64]
    assert (np.linalg.norm(a, axis=1) ** 2).mean() > 0.75


def test_fused_runs_recover_clusters_despite_a_noise_space(store):
    x, y = blobs(60, 4, dim=48, seed=2)
    noise = np.random.default_rng(4).normal(size=x.shape).astype(np.float32)
    ids = [meme_id(i) for i in range(len(y))]
    add_memes(store, ids)
    add_space(store, "text:good", ids, x)
    add_space(store, "image:noise", ids, noise, kind="image")
    [rid] = run(store, ClusterConfig(spaces=["text:good", "image:noise"], fusion="dynamic",
                                     algorithm="kmeans", k=4, layout=False))
    info = get_run_info(store, rid)
    assert info["space"] == "fused:text:good+image:noise"
    assert info["spaces"][0]["mean_meme_weight"] > 0.75
    assert info["params"]["fusion"] == "dynamic"
    df = get_run(store, rid)
    pos = {m: i for i, m in enumerate(ids)}
    assert adjusted_rand_score(y[[pos[m] for m in df["meme_id"]]], df["cluster"]) >= 0.95
    [rid2] = run(store, ClusterConfig(spaces=["text:good", "image:noise"], weights=[0.9, 0.1],
                                      algorithm="kmeans", k=4, layout=False))
    sp = get_run_info(store, rid2)["spaces"]
    assert [s["weight"] for s in sp] == pytest.approx([0.9, 0.1])
    with pytest.raises(InputError):
        run(store, ClusterConfig(spaces=["text:good", "image:noise"], weights=[1.0]))
