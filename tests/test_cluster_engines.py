"""`cluster --engine cuml`: the cuML parameter mapping, the stored outputs, the missing-cuML error.

cuML needs CUDA, so here the fit path runs against a stand-in `cuml` module that exposes
cuML's API names on top of umap-learn and hdbscan: it checks that memeatlas calls cuML with
the mapped parameters and stores reduction, layout, labels, soft membership and the model for
`assign` exactly as for the CPU engine. The real-cuML test is GPU-marked.
"""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
from helpers_cluster import synthetic_store
from typer.testing import CliRunner

from memeatlas.cluster import ClusterConfig, assign, engines, get_run, get_run_info, run
from memeatlas.errors import BackendError

CALLS: list[tuple[str, dict]] = []


class UMAP:
    """cuml.UMAP's constructor and fit_transform, computed by memeatlas's CPU UMAP."""

    def __init__(self, **kw):
        CALLS.append(("UMAP", {k: v for k, v in kw.items() if k != "precomputed_knn"}))
        self.kw = kw

    def fit_transform(self, x):
        from memeatlas.cluster.reduce import umap_reduce

        kw = self.kw
        return umap_reduce(np.asarray(x, dtype=np.float32), kw["precomputed_knn"],
                           n_components=kw["n_components"], n_neighbors=kw["n_neighbors"],
                           min_dist=kw["min_dist"], seed=kw["random_state"],
                           n_epochs=kw.get("n_epochs"))


class HDBSCAN:
    """cuml.cluster.hdbscan.HDBSCAN's surface, computed by hdbscan."""

    def __init__(self, **kw):
        import hdbscan

        CALLS.append(("HDBSCAN", kw))
        self.m = hdbscan.HDBSCAN(**kw, core_dist_n_jobs=1)

    def fit_predict(self, x):
        out = self.m.fit_predict(np.asarray(x, dtype=np.float64))
        self.probabilities_ = self.m.probabilities_
        return out


def _stand_in_cuml() -> dict[str, types.ModuleType]:
    """Modules named like cuML's (classes live in `cuml.stand_in`, so models pickle)."""
    import hdbscan

    cuml = types.ModuleType("cuml")
    cluster = types.ModuleType("cuml.cluster")
    chd = types.ModuleType("cuml.cluster.hdbscan")
    home = types.ModuleType("cuml.stand_in")
    for cls in (UMAP, HDBSCAN):
        cls.__module__ = "cuml.stand_in"
        setattr(home, cls.__name__, cls)
    cuml.UMAP = UMAP
    chd.HDBSCAN = HDBSCAN
    chd.approximate_predict = lambda c, p: hdbscan.approximate_predict(
        c.m, np.asarray(p, dtype=np.float64))
    chd.all_points_membership_vectors = lambda c: hdbscan.all_points_membership_vectors(c.m)
    cluster.hdbscan = chd
    cuml.cluster = cluster
    return {"cuml": cuml, "cuml.cluster": cluster, "cuml.cluster.hdbscan": chd,
            "cuml.stand_in": home}


@pytest.fixture
def fake_cuml(monkeypatch):
    mods = _stand_in_cuml()
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)
    CALLS.clear()
    return mods["cuml"]


def test_cuml_parameter_mapping():
    kw = engines.cuml_umap_kwargs(n_components=5, n_neighbors=15, min_dist=0.0, seed=7,
                                  n_epochs=200, n=1000)
    assert kw == {"n_components": 5, "n_neighbors": 15, "metric": "cosine", "min_dist": 0.0,
                  "random_state": 7, "init": "spectral", "verbose": False, "n_epochs": 200}
    assert engines.cuml_umap_kwargs(n_components=2, n_neighbors=15, min_dist=0.1, seed=0,
                                    n_epochs=None, n=10)["n_neighbors"] == 9
    hk = engines.cuml_hdbscan_kwargs({"min_cluster_size": 50, "min_samples": None,
                                      "cluster_selection_method": "leaf"}, n=30)
    assert hk == {"min_cluster_size": 30, "min_samples": None,
                  "cluster_selection_method": "leaf", "metric": "euclidean",
                  "prediction_data": True}


def test_cuml_engine_stores_the_cpu_engines_outputs(store, fake_cuml):
    ids, _, _ = synthetic_store(store, n_per=40, n_clusters=3)
    base = dict(spaces=["text:synthetic"], min_cluster_size=10, reassign_noise=True)
    cpu_run, _ = run(store, ClusterConfig(**base))
    gpu_run, gpu_child = run(store, ClusterConfig(**base, engine="cuml"))
    assert gpu_run != cpu_run  # the engine is part of the fingerprint
    names = [c[0] for c in CALLS]
    assert names.count("UMAP") == 2 and names.count("HDBSCAN") == 1  # reduction + layout
    assert dict(CALLS[0][1])["n_components"] == 5 and dict(CALLS[-1][1])["n_components"] == 2
    a, b = get_run(store, cpu_run), get_run(store, gpu_run)
    np.testing.assert_array_equal(a["cluster"], b["cluster"])
    # The reduction is computed alike, so the clusters are equal; the CPU map starts from the
    # reduction's 5-D spectral solve, the stand-in's from its own 2-D one, so only check it.
    assert np.isfinite(b[["x", "y"]].to_numpy()).all()
    info = get_run_info(store, gpu_run)
    params = info["params"] if isinstance(info["params"], dict) else json.loads(info["params"])
    assert params["engine"]["name"] == "cuml"
    assert get_run_info(store, gpu_child)["kind"] == "reassign_noise"
    # `assign` places memes through cuML's approximate_predict (the stored model is cuML's)
    s = assign(store, gpu_run)
    assert s.method == "hdbscan"
    assert len(ids) == 120


def test_missing_cuml_is_a_one_line_error(store, monkeypatch):
    from memeatlas.cli import app

    monkeypatch.setitem(sys.modules, "cuml", None)  # import cuml → ImportError
    synthetic_store(store, n_per=10, n_clusters=2)
    with pytest.raises(BackendError, match=r"pip install 'memeatlas\[cuml\]'"):
        run(store, ClusterConfig(spaces=["text:synthetic"], engine="cuml"))
    with pytest.raises(BackendError, match="choose one of: cpu, cuml"):
        run(store, ClusterConfig(spaces=["text:synthetic"], engine="tpu"))
    with pytest.raises(BackendError, match="use --engine cpu for --algorithm kmeans"):
        run(store, ClusterConfig(spaces=["text:synthetic"], engine="cuml", algorithm="kmeans",
                                 k=2))
    res = CliRunner().invoke(app, ["cluster", "--db", str(store.path), "--space",
                                   "text:synthetic", "--engine", "cuml"])
    assert res.exit_code == 1
    assert res.output.strip().splitlines()[-1].startswith("Error: cluster --engine cuml needs")


@pytest.mark.gpu
def test_real_cuml_on_a_gpu(store):
    pytest.importorskip("cuml")
    synthetic_store(store, n_per=200, n_clusters=4)
    [rid] = run(store, ClusterConfig(spaces=["text:synthetic"], engine="cuml",
                                     min_cluster_size=20))
    df = get_run(store, rid)
    assert df["cluster"].nunique() >= 4 and df["x"].notna().all()


def test_layout_starts_from_the_reduction_and_is_recorded(store):
    synthetic_store(store, n_per=40, n_clusters=3)
    a, = run(store, ClusterConfig(spaces=["text:synthetic"], min_cluster_size=10,
                                  layout_init="reduction"))
    b, = run(store, ClusterConfig(spaces=["text:synthetic"], min_cluster_size=10))
    assert a != b
    pa_, pb = (json.loads(get_run_info(store, r)["params"])
               if isinstance(get_run_info(store, r)["params"], str)
               else get_run_info(store, r)["params"] for r in (a, b))
    assert pa_["layout"]["init"] == "reduction" and "init" not in pb["layout"]
    da, db = get_run(store, a), get_run(store, b)
    np.testing.assert_array_equal(da["cluster"], db["cluster"])  # only the map differs
    assert da["x"].notna().all() and not np.allclose(da["x"], db["x"])
