"""Before/after of automatic granularity and soft noise on real data (issue 10).

    python benchmarks/granularity.py [--cache DIR] [--sets imgflip-box,imgflip-title-box,...]
                                     [--stability 5] [--cost 5000] [--out FILE]

Data: benchmarks/granularity_data.py (run it first; embeddings are cached on disk). For every
set a fresh DuckDB store gets the cached MiniLM vectors and `memeatlas.cluster.run` clusters
them twice — **before**: the old fixed default min_cluster_size = max(5, min(50, n // 100))
(min_samples = min_cluster_size); **after**: the new default (`auto`). Layout is skipped
(`layout=False`) for the quality runs; it does not change the clusters.

Scores, each with the number of clusters k and the noise share beside it:
- ImgFlip (template labels): ARI / NMI with noise apart (every noise meme its own singleton)
  and with noise assigned (each meme's soft cluster);
- STS-B / SICK (human pair ratings on 1–3): Grimmer & King CQ = mean rating of pairs put
  together − mean rating of pairs kept apart (`memeatlas.evaluate.quality.cq_point`), with noise
  apart (a pair with a noise sentence is "apart") and assigned, and as a reference the CQ of
  k-means (MiniLM vectors) with the same number of clusters (CQ depends strongly on k);
- MemeCap (no labels): the criterion's curve and stability across seeds (`--stability`).
`--tfidf` also fits the TF-IDF + LSA space on the ImgFlip texts (auto, and k-means with the
true k). `--cost N` times a full default run (k-NN, UMAP, clustering, 2-D layout) with auto vs a
fixed size on N synthetic 384-d points (benchmarks/cluster.py's generator, 50 clusters), after
one warm-up run; wall time and CPU time (the ratio that a busy shared machine leaves intact).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from granularity_data import DEFAULT_CACHE, load  # noqa: E402

SETS = ("imgflip-box", "imgflip-title-box", "stsb", "sick", "memecap")


def _store_with(path: Path, x: np.ndarray):
    import pyarrow as pa

    from memeatlas.store import Store

    n, dim = x.shape
    ids = [f"{i:064x}" for i in range(n)]
    s = Store.open(path)
    s.execute("INSERT INTO embedding_spaces (space, kind, model, dim, params) VALUES "
              "('text:bench', 'text', 'sentence-transformers/all-MiniLM-L6-v2', ?, '{}')", [dim])
    tbl = pa.table({"meme_id": ids, "vector": pa.FixedSizeListArray.from_arrays(
        pa.array(np.ascontiguousarray(x, np.float32).reshape(-1)), dim).cast(
        pa.list_(pa.float32()))})
    s.con.register("t", tbl)
    s.execute("INSERT INTO memes (meme_id, source, has_image) SELECT meme_id, 'bench', false "
              "FROM t")
    s.execute("INSERT INTO embeddings (meme_id, space, model, dim, vector) SELECT meme_id, "
              "'text:bench', 'sentence-transformers/all-MiniLM-L6-v2', ?, vector FROM t", [dim])
    s.con.unregister("t")
    return s, ids


def _labels(store, rid: str, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    rows = dict((m, (c, sc)) for m, c, sc in store.fetchall(
        "SELECT meme_id, cluster, soft_cluster FROM cluster_assignments WHERE run_id = ?", [rid]))
    hard = np.array([rows[m][0] for m in ids], dtype=np.int64)
    soft = np.array([rows[m][1] if rows[m][1] is not None else rows[m][0] for m in ids],
                    dtype=np.int64)
    return hard, soft


def _singletons(p: np.ndarray) -> np.ndarray:
    p = p.copy()
    m = p < 0
    p[m] = p.max() + 1 + np.arange(int(m.sum()))
    return p


def _cq(lab: np.ndarray, pairs: np.ndarray) -> float:
    from memeatlas.evaluate.quality import cq_point

    i, j, y = pairs[:, 0].astype(int), pairs[:, 1].astype(int), pairs[:, 2]
    status = ((lab[i] == lab[j]) & (lab[i] >= 0)).astype(int)  # noise: apart
    return cq_point(y, status)[0]


def score(d: dict, hard: np.ndarray, soft: np.ndarray) -> dict:
    """The measures of one clustering of a data set (see the module docstring)."""
    from sklearn import metrics

    out = {"k": int(len(set(hard.tolist()) - {-1})), "noise": float((hard < 0).mean())}
    if "labels" in d:
        y = d["labels"]
        out.update(ari=metrics.adjusted_rand_score(y, _singletons(hard)),
                   nmi=metrics.normalized_mutual_info_score(y, _singletons(hard)),
                   ari_assigned=metrics.adjusted_rand_score(y, soft),
                   nmi_assigned=metrics.normalized_mutual_info_score(y, soft))
    if "pairs" in d:
        out.update(cq=_cq(hard, d["pairs"]), cq_assigned=_cq(soft, d["pairs"]))
    return out


def bench_set(name: str, cache: Path, tmp: Path, stability: int,
              criterion: str = "persistence", before: bool = True) -> dict:
    """Before (old fixed default) and after (auto) on one cached set."""
    from memeatlas.cluster import ClusterConfig, get_run_info, run
    from memeatlas.cluster.granularity import legacy_min_cluster_size

    d = load(cache, name)
    x = d["vectors"]
    store, ids = _store_with(tmp / f"{name}.duckdb", x)
    n = len(ids)
    res: dict = {"set": name, "n": n}
    tags = (("before", legacy_min_cluster_size(n)),) if before else ()
    for tag, mcs in (*tags, ("after", "auto")):
        t0 = time.perf_counter()
        stab = stability if name == "memecap" else 0
        [rid] = run(store, ClusterConfig(spaces=["text:bench"], min_cluster_size=mcs,
                                         layout=False, stability=stab,
                                         granularity_criterion=criterion))
        info = get_run_info(store, rid)
        hard, soft = _labels(store, rid, ids)
        r = score(d, hard, soft)
        r.update(seconds=round(time.perf_counter() - t0, 1),
                 min_cluster_size=info["params"]["min_cluster_size"],
                 stability=info.get("stability"))
        if "pairs" in d and r["k"] >= 2:  # reference: CQ of k-means with the same k
            from sklearn.cluster import KMeans

            km = KMeans(n_clusters=r["k"], random_state=0, n_init=3).fit_predict(x)
            r["cq_kmeans_same_k"] = _cq(km.astype(np.int64), d["pairs"])
        g = info["params"].get("granularity")
        if g:
            r["curve"] = list(zip(g["candidates"], g["values"], g["n_clusters"],
                                  g["noise_fraction"], strict=True))
        if stab:
            r["cluster_jaccard"] = info["params"]["stability"].get("mean_cluster_jaccard")
            r["stability_assigned"] = info["params"]["stability"].get("mean_ari_assigned")
        res[tag] = r
        print(name, tag, json.dumps({k: v for k, v in r.items() if k != "curve"},
                                    default=str), flush=True)
    store.close()
    return res


def bench_tfidf(name: str, cache: Path, tmp: Path) -> dict:
    """TF-IDF + LSA on the set's texts: auto HDBSCAN, and k-means given the true k."""
    from sklearn.cluster import KMeans

    from memeatlas.cluster import ClusterConfig, run
    from memeatlas.embed.tfidf import fit_transform

    d = load(cache, name)
    z, info = fit_transform([str(t) for t in d["texts"]])
    store, ids = _store_with(tmp / f"{name}-tfidf.duckdb", z)
    [rid] = run(store, ClusterConfig(spaces=["text:bench"], layout=False))
    hard, soft = _labels(store, rid, ids)
    out = {"set": name + " (tfidf-lsa)", "dim": info["n_components"],
           "explained_variance": info["explained_variance"], "auto": score(d, hard, soft)}
    k = len(set(d["labels"].tolist()))
    km = KMeans(n_clusters=k, random_state=0, n_init=10).fit_predict(z)
    out["kmeans_true_k"] = score(d, km, km)
    km2 = KMeans(n_clusters=k, random_state=0, n_init=10).fit_predict(d["vectors"])
    out["minilm_kmeans_true_k"] = score(d, km2, km2)
    print(json.dumps(out, default=str), flush=True)
    store.close()
    return out


def _cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _cost(n: int, tmp: Path, repeats: int = 1) -> dict:
    import importlib.util

    from memeatlas.cluster import ClusterConfig, get_run_info, run
    from memeatlas.cluster.granularity import legacy_min_cluster_size
    from memeatlas.store import Store

    spec = importlib.util.spec_from_file_location("bench_cluster", ROOT / "benchmarks" /
                                                  "cluster.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    path = tmp / f"cost-{n}.duckdb"
    mod.make_db(path, n, 384, 50)
    out: dict = {"n": n}
    with Store.open(path) as s:
        # Warm-up: numba compilation must not be charged to whichever run comes first.
        run(s, ClusterConfig(spaces=["text:bench"], min_cluster_size=50, force=True))
        for tag, mcs in (("fixed", legacy_min_cluster_size(n)), ("auto", "auto")):
            walls, cpus = [], []
            for _ in range(repeats):
                t0, c0 = time.perf_counter(), _cpu()
                [rid] = run(s, ClusterConfig(spaces=["text:bench"], min_cluster_size=mcs,
                                             force=True))
                walls.append(time.perf_counter() - t0)
                cpus.append(_cpu() - c0)
            info = get_run_info(s, rid)
            out[tag] = {"wall_s": round(min(walls), 2), "cpu_s": round(min(cpus), 2),
                        "timings": info["timings"],
                        "k": info["n_clusters"], "noise": info["noise_fraction"],
                        "min_cluster_size": info["params"]["min_cluster_size"]}
    out["ratio"] = round(out["auto"]["wall_s"] / out["fixed"]["wall_s"], 3)
    # CPU time (user + system of this process) is what a shared machine does not distort.
    out["cpu_ratio"] = round(out["auto"]["cpu_s"] / out["fixed"]["cpu_s"], 3)
    print(json.dumps(out, default=str), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--stability", type=int, default=5)
    ap.add_argument("--criterion", default="persistence",
                    help="granularity criterion of the 'after' runs (persistence, "
                         "relative_validity)")
    ap.add_argument("--no-before", action="store_true", help="skip the old-default runs")
    ap.add_argument("--tfidf", action="store_true")
    ap.add_argument("--cost", type=int, nargs="*", default=[])
    ap.add_argument("--out", type=Path, default=None, help="write all results as JSON")
    a = ap.parse_args()
    results: dict = {"sets": [], "tfidf": [], "cost": []}
    with tempfile.TemporaryDirectory(prefix="memeatlas-gran-") as tmp:
        for name in [s for s in a.sets.split(",") if s]:
            results["sets"].append(bench_set(name, a.cache, Path(tmp), a.stability,
                                             a.criterion, not a.no_before))
        if a.tfidf:
            for name in ("imgflip-box", "imgflip-title-box"):
                results["tfidf"].append(bench_tfidf(name, a.cache, Path(tmp)))
        for n in a.cost:
            results["cost"].append(_cost(n, Path(tmp)))
    if a.out:
        a.out.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
