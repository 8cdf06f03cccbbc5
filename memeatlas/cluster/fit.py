"""`memeatlas cluster`: load → fuse → k-NN → UMAP → cluster → 2-D layout → store.

One call writes one run per sweep value (plus a reassign-noise run per run when asked). A run
whose fingerprint (hash of meme ids, fused vectors and parameters) is already stored is skipped
unless `force`; with `force` a new run is written beside it.
"""

from __future__ import annotations

import hashlib
import itertools
import pickle
import time
from dataclasses import replace
from typing import Any

import numpy as np

from memeatlas import progress
from memeatlas.cluster.config import ALGORITHMS, FUSIONS, KNN_METHODS, ClusterConfig
from memeatlas.corpus.runs import get_run_info, load_model
from memeatlas.errors import BackendError, InputError
from memeatlas.provenance import new_run_id, short_hash, software, stable_json, utcnow

SWEEPABLE = {"min_cluster_size": int, "min_samples": int, "k": int, "umap_dims": int,
             "umap_neighbors": int, "umap_min_dist": float, "seed": int,
             "cluster_selection_method": str}


AUTO = "auto"
#: DuckDB's memory cap while the vectors are read (store.memory.capped_memory).
LOAD_DUCKDB_MEMORY = "256MB"


def parse_min_cluster_size(value: str | int | None) -> int | str:
    """`auto` (or None) → "auto"; a number ≥ 2 → int; anything else → InputError."""
    if value is None or (isinstance(value, str) and value.strip().lower() == AUTO):
        return AUTO
    try:
        v = int(value)
    except (TypeError, ValueError):
        raise InputError(f"--min-cluster-size must be 'auto' or a whole number ≥ 2, "
                         f"got {value!r}") from None
    if v < 2:
        raise InputError("--min-cluster-size must be at least 2 (or 'auto')")
    return v


def _check_size_fits(cfg: ClusterConfig, n: int) -> None:
    """A fixed min_cluster_size above the number of memes can form no cluster: say so first."""
    if cfg.algorithm != "hdbscan":
        return
    sizes = [cfg.min_cluster_size, *cfg.sweep.get("min_cluster_size", [])]
    too_big = sorted({int(s) for s in sizes if s not in (None, AUTO) and int(s) > n})
    if too_big:
        suggest = max(2, min(5, n // 3))
        raise InputError(
            f"only {n} memes to cluster, fewer than --min-cluster-size {too_big[0]}: HDBSCAN "
            f"cannot form a cluster; use --min-cluster-size auto or a value ≤ {n // 2 or 2} "
            f"(e.g. --min-cluster-size {suggest})")


def _only_space(store) -> str:
    """The space to cluster when none is named: the store's only one (else an error naming them)."""
    names = [r[0] for r in store.fetchall("SELECT space FROM embedding_spaces ORDER BY space")]
    if not names:
        raise InputError("no embedding space to cluster; run `memeatlas embed text` (or "
                         "`embed image`) first")
    if len(names) > 1:
        raise InputError(f"this store holds {len(names)} embedding spaces; name one with "
                         f"--space: {', '.join(names[:10])}{' …' if len(names) > 10 else ''}")
    progress.info(f"cluster: space {names[0]} (the store's only space)")
    return names[0]


def _validate(cfg: ClusterConfig) -> None:
    if isinstance(cfg.spaces, str):  # a single space name given as a string
        cfg.spaces = [cfg.spaces]
    if cfg.algorithm not in ALGORITHMS:
        raise BackendError(f"unknown clustering algorithm {cfg.algorithm!r}; choose one of "
                           f"{', '.join(ALGORITHMS)}")
    if cfg.fusion not in FUSIONS:
        raise InputError(f"unknown fusion {cfg.fusion!r}; choose one of {', '.join(FUSIONS)}")
    if cfg.knn not in KNN_METHODS:
        raise InputError(f"unknown --knn {cfg.knn!r}; choose one of {', '.join(KNN_METHODS)}")
    for key in cfg.sweep:
        if key not in SWEEPABLE:
            raise InputError(f"--sweep cannot vary {key!r}; choose from {', '.join(SWEEPABLE)}")
    if cfg.umap_dims < 0 or cfg.umap_neighbors < 2:
        raise InputError("--umap-dims must be ≥ 0 and --umap-neighbors ≥ 2")
    if cfg.umap_epochs is not None and not 1 <= cfg.umap_epochs <= 10_000:
        raise InputError(f"--umap-epochs must be between 1 and 10,000, got {cfg.umap_epochs}")
    cfg.min_cluster_size = parse_min_cluster_size(cfg.min_cluster_size)
    from memeatlas.cluster.granularity import CRITERIA

    if cfg.granularity_criterion not in CRITERIA:
        raise InputError(f"unknown --granularity-criterion {cfg.granularity_criterion!r}; "
                         f"choose one of {', '.join(CRITERIA)}")
    if cfg.stability and not 2 <= cfg.stability <= 50:
        raise InputError("--stability must be between 2 and 50 seeds (0: not measured)")
    from memeatlas.cluster.soft import check_assign_floor

    cfg.assign_floor = check_assign_floor(cfg.assign_floor)
    if cfg.layout_init not in ("spectral", "reduction"):
        raise InputError(f"--layout-init must be spectral or reduction, got {cfg.layout_init!r}")
    from memeatlas.cluster import engines

    engines.check(cfg.engine, cfg.algorithm)
    if cfg.engine != "cpu":
        engines.import_cuml()  # fail before loading vectors, with the install hint


def parse_sweep(items: list[str] | None) -> dict[str, list[Any]]:
    """['min_cluster_size=25,50'] → {'min_cluster_size': [25, 50]} with types checked."""
    out: dict[str, list[Any]] = {}
    for item in items or []:
        if "=" not in item:
            raise InputError(f"--sweep expects PARAM=V1,V2,..., got {item!r}")
        key, vals = (s.strip() for s in item.split("=", 1))
        key = key.replace("-", "_")
        if key not in SWEEPABLE:
            raise InputError(f"--sweep cannot vary {key!r}; choose from {', '.join(SWEEPABLE)}")
        try:
            out[key] = [SWEEPABLE[key](v.strip()) for v in vals.split(",") if v.strip()]
        except ValueError:
            raise InputError(f"--sweep {key} values must be {SWEEPABLE[key].__name__}s: "
                             f"{vals!r}") from None
        if not out[key]:
            raise InputError(f"--sweep {key} has no values")
    return out


def _variants(cfg: ClusterConfig) -> list[ClusterConfig]:
    if not cfg.sweep:
        return [cfg]
    keys = list(cfg.sweep)
    return [replace(cfg, sweep={}, **dict(zip(keys, combo, strict=True)))
            for combo in itertools.product(*(cfg.sweep[k] for k in keys))]


def _params(cfg: ClusterConfig, n: int) -> dict[str, Any]:
    p: dict[str, Any] = {"algorithm": cfg.algorithm, "spaces": list(cfg.spaces),
                         "where": cfg.where}
    if len(cfg.spaces) > 1:
        p.update(fusion=cfg.fusion, fusion_k=cfg.fusion_k)
    reduce_dims = cfg.umap_dims if cfg.algorithm == "hdbscan" else 0
    from memeatlas.cluster.config import DEFAULT_EPOCHS, reduce_epochs
    from memeatlas.cluster.knn import resolve as knn_method

    p["reduce"] = ({"method": "umap", "dims": reduce_dims, "neighbors": cfg.umap_neighbors,
                    "min_dist": cfg.umap_min_dist, "epochs": reduce_epochs(n, cfg.umap_epochs),
                    "metric": "cosine"}
                   if reduce_dims else {"method": "none"})
    if reduce_dims or cfg.layout:  # how the neighbour graph was found: part of the run's identity
        p["knn"] = knn_method(cfg.knn, n, cfg.exact_knn_max)
    if cfg.algorithm == "hdbscan":
        p.update(min_cluster_size=cfg.min_cluster_size or AUTO,
                 min_samples=cfg.min_samples,
                 cluster_selection_method=cfg.cluster_selection_method)
        if p["min_cluster_size"] == AUTO:
            p["granularity_criterion"] = cfg.granularity_criterion
        # Which noise memes count as assigned (soft.membership): part of the run's identity.
        p["assign_floor"] = cfg.assign_floor
    else:
        p["k"] = cfg.k
    if cfg.stability:
        p["stability"] = {"seeds": cfg.stability, "consensus": cfg.consensus}
    p["layout"] = ({"method": "umap", "dims": 2, "neighbors": cfg.umap_neighbors,
                    "min_dist": 0.1, "epochs": cfg.umap_epochs or DEFAULT_EPOCHS}
                   if cfg.layout else None)
    if p["layout"] and cfg.layout_init == "reduction" and reduce_dims and cfg.engine == "cpu":
        p["layout"]["init"] = "reduction"  # see reduce.init_from
    if cfg.engine == "cpu":  # which SGD made the coordinates (umap_sgd.py), so in the fingerprint
        from memeatlas.cluster.config import UMAP_OPTIMIZER

        for part in (p["reduce"], p["layout"]):
            if part and part.get("method") == "umap":
                part["optimizer"] = UMAP_OPTIMIZER
    from memeatlas.cluster.engines import version

    p.update(version(cfg.engine))
    return p


def _fingerprint_inputs(ids: list[str], x: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update("\n".join(ids).encode())
    h.update(np.ascontiguousarray(x, dtype=np.float32).tobytes())
    return h.hexdigest()


def _space_label(cfg: ClusterConfig) -> str:
    return cfg.spaces[0] if len(cfg.spaces) == 1 else "fused:" + "+".join(cfg.spaces)


class _Cache:
    """Work shared by the runs of one sweep: k-NN and UMAP reductions."""

    def __init__(self, x: np.ndarray, cfg: ClusterConfig) -> None:
        self.x = x
        self.cfg = cfg
        self._knn: tuple[np.ndarray, np.ndarray] | None = None
        self.knn_method = ""
        self._red: dict[tuple, np.ndarray] = {}
        self._shared: dict[int, Any] = {}  # n_neighbors → umap_sgd.SharedGraph
        self.timings: dict[str, float] = {}

    def _add(self, key: str, t0: float) -> None:
        self.timings[key] = self.timings.get(key, 0.0) + time.perf_counter() - t0

    def knn(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        from memeatlas.cluster import knn as knn_mod

        if self._knn is None or self._knn[0].shape[1] < min(k, self.x.shape[0]):
            t0 = time.perf_counter()
            kmax = max([k, self.cfg.fusion_k + 1,
                        *self.cfg.sweep.get("umap_neighbors", [])])
            self._knn, self.knn_method = knn_mod.knn(
                self.x, kmax, method=self.cfg.knn, exact_max=self.cfg.exact_knn_max,
                seed=self.cfg.seed)
            self._add("knn", t0)
        return self._knn[0][:, :k], self._knn[1][:, :k]

    def _shared_graph(self, nn: tuple[np.ndarray, np.ndarray], neighbors: int):
        """One fuzzy graph + spectral init per neighbour count, for the reduction and the map."""
        from memeatlas.cluster import umap_sgd

        k = max(2, min(neighbors, self.x.shape[0] - 1))
        if k not in self._shared:
            self._shared[k] = umap_sgd.SharedGraph(self.x, (nn[0][:, :k], nn[1][:, :k]), k)
        return self._shared[k]

    def record_inits(self, params: dict[str, Any], n: int, seed: int) -> dict[str, Any]:
        """`params` with the start each UMAP used where it was not the spectral one (a graph
        in too many pieces starts from PCA: umap_sgd.SharedGraph.spectral)."""
        from memeatlas.cluster.umap_sgd import default_epochs

        out = dict(params)
        for part in ("reduce", "layout"):
            p = out.get(part)
            if not p or p.get("method") != "umap" or p.get("init") == "reduction":
                continue
            k = max(2, min(int(p["neighbors"]), n - 1))
            sh = self._shared.get(k)
            epochs = p.get("epochs") or default_epochs(n)
            used = sh.init_method.get((seed, epochs)) if sh is not None else None
            if used and used != "spectral":
                out[part] = {**p, "init": used}
        return out

    def reduce(self, dims: int, neighbors: int, min_dist: float, seed: int,
               epochs: int | None, what: str, start: np.ndarray | None = None,
               start_key: tuple = ()) -> np.ndarray:
        from memeatlas.cluster.engines import reducer

        umap_reduce = reducer(self.cfg.engine)
        key = (dims, neighbors, min_dist, seed, epochs, *start_key)
        if key not in self._red:
            nn = self.knn(neighbors)
            if "import_umap" not in self.timings:  # library import, kept apart from compute
                from memeatlas.cluster.numba_cache import import_umap

                t0 = time.perf_counter()
                import_umap()
                self._add("import_umap", t0)
            t0 = time.perf_counter()
            kw: dict[str, Any] = {}
            if self.cfg.engine == "cpu":
                kw["shared"] = self._shared_graph(nn, neighbors)
            if start is not None:
                from memeatlas.cluster.reduce import init_from

                kw["init"] = init_from(start, dims)
            self._red[key] = umap_reduce(self.x, nn, n_components=dims, n_neighbors=neighbors,
                                         min_dist=min_dist, seed=seed, n_epochs=epochs, **kw)
            self._add(what, t0)
        return self._red[key]


def _layout(cache: _Cache, params: dict[str, Any], xr: np.ndarray, seed: int) -> np.ndarray:
    """The run's 2-D map (params['layout']), from its spectral start or from the reduction
    `xr` (--layout-init reduction)."""
    lay, red = params["layout"], params["reduce"]
    from_red = lay.get("init") == "reduction" and xr.shape[0] > 3
    return cache.reduce(2, lay["neighbors"], lay["min_dist"], seed, lay["epochs"], "layout",
                        start=xr if from_red else None,
                        start_key=(red["dims"], red["min_dist"]) if from_red else ())


class _Background:
    """`fn(*args)` in a daemon thread; `result()` waits and returns it (or raises its error).

    The map's epochs run without the GIL (umap_sgd._epochs) and its result does not depend on
    timing, so running it beside HDBSCAN changes only the wall time: on 200,000 caption
    vectors HDBSCAN's candidates keep one core busy for about 10 s. A daemon, so that Ctrl-C
    during HDBSCAN is not held up by the map."""

    def __init__(self, fn, *args) -> None:
        import threading

        self._out: list[Any] = []
        self._err: list[BaseException] = []

        def work() -> None:
            try:
                self._out.append(fn(*args))
            except BaseException as exc:  # handed to the caller by result()
                self._err.append(exc)

        self._thread = threading.Thread(target=work, name="memeatlas-layout", daemon=True)
        self._thread.start()

    def result(self) -> Any:
        self._thread.join()
        if self._err:
            raise self._err[0]
        return self._out[0]


def _existing(store, fingerprint: str, kind: str) -> str | None:
    return store.scalar("SELECT run_id FROM cluster_runs WHERE fingerprint = ? AND kind = ? "
                        "ORDER BY created_at DESC LIMIT 1", [fingerprint, kind])


def _write_run(store, *, run_id: str, cfg: ClusterConfig, params: dict[str, Any], seed: int,
               ids: list[str], labels: np.ndarray, probs: np.ndarray, xy: np.ndarray | None,
               fingerprint: str, spaces_json: list[dict], kind: str, parent: str | None,
               timings: dict[str, float], model_blob: bytes | None,
               assigned_by: str | list[str],
               soft: tuple[np.ndarray, np.ndarray] | None = None, choice=None,
               stability=None, reassigned: np.ndarray | None = None) -> None:
    """Store one run: its cluster_runs row, every meme's assignment with its membership
    (core / assigned / noise at the run's assign floor), granularity, stability and model,
    in one transaction. `assigned_by`: one value for every row, or one per meme."""
    import pyarrow as pa

    from memeatlas.cluster.config import ASSIGN_FLOOR
    from memeatlas.cluster.soft import membership

    n = len(ids)
    n_clusters = int(len(set(labels.tolist()) - {-1}))
    noise = float((labels < 0).mean()) if n else 0.0
    name = cfg.name
    soft_c, soft_p = soft if soft else (labels, probs)
    memb = membership(labels, soft_c, soft_p, float(params.get("assign_floor", ASSIGN_FLOOR)),
                      reassigned)
    by = [assigned_by] * n if isinstance(assigned_by, str) else list(assigned_by)
    tbl = pa.table({
        "meme_id": pa.array(ids, pa.string()),
        "cluster": pa.array(labels.astype(np.int32)),
        "probability": pa.array(probs.astype(np.float64)),
        "x": pa.array(xy[:, 0].astype(np.float64) if xy is not None else [None] * n,
                      pa.float64()),
        "y": pa.array(xy[:, 1].astype(np.float64) if xy is not None else [None] * n,
                      pa.float64()),
        "soft_cluster": pa.array(np.asarray(soft_c).astype(np.int32)),
        "soft_probability": pa.array(np.asarray(soft_p).astype(np.float64)),
        "membership": pa.array(memb.tolist(), pa.string()),
        "assigned_by": pa.array(by, pa.string()),
    })
    now = utcnow()
    with store.registered("_cluster_batch", tbl), store.transaction():
        store.execute(
            "INSERT INTO cluster_runs (run_id, name, space, spaces, algorithm, params, seed, "
            "n_items, n_clusters, noise_fraction, fingerprint, parent_run, kind, software, "
            "timings, created_at, stability) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
            "?, ?, ?)",
            [run_id, name, _space_label(cfg), stable_json(spaces_json), cfg.algorithm,
             stable_json(params), seed, n, n_clusters, noise, fingerprint, parent, kind,
             stable_json(software("numpy", "umap-learn", "hdbscan", "scikit-learn",
                                  "pynndescent", "numba")),
             stable_json({k: round(v, 4) for k, v in timings.items()}), now,
             None if stability is None else stability.mean_ari])
        store.execute(
            "INSERT INTO cluster_assignments (run_id, meme_id, cluster, probability, x, y, "
            "assigned_by, assigned_at, soft_cluster, soft_probability, membership) SELECT ?, "
            "meme_id, cluster, probability, x, y, assigned_by, ?, soft_cluster, "
            "soft_probability, membership FROM _cluster_batch", [run_id, now])
        if choice is not None:
            store.insert_rows(
                "cluster_granularity", ("run_id", "min_cluster_size", "min_samples", "criterion",
                                        "value", "n_clusters", "noise_fraction", "chosen"),
                [(run_id, c.min_cluster_size, c.min_samples, choice.criterion, c.row()["value"],
                  c.n_clusters, c.noise_fraction, c is choice.chosen)
                 for c in choice.candidates])
        if stability is not None:
            store.insert_rows(
                "cluster_stability", ("run_id", "cluster", "size", "jaccard", "together",
                                      "n_seeds"),
                [(run_id, r["cluster"], r["size"], r["jaccard"], r["together"],
                  stability.n_seeds) for r in stability.clusters])
        if model_blob is not None:
            store.execute("INSERT INTO cluster_models (run_id, format, model, created_at) "
                          "VALUES (?, ?, ?, ?)",
                          [run_id, "pickle:memeatlas-cluster-v1", model_blob, now])


def params_auto(params: dict[str, Any], v: ClusterConfig) -> dict[str, Any]:
    """The parameters a further seed is fitted with: the same procedure (auto stays auto)."""
    if v.algorithm == "hdbscan" and parse_min_cluster_size(v.min_cluster_size) == AUTO:
        return {**params, "min_cluster_size": AUTO, "min_samples": v.min_samples}
    return params


def _fit_seed(cache: _Cache, v: ClusterConfig, params: dict[str, Any], seed: int):
    """(labels, probs, model, reduced x, granularity choice or None) for one seed.

    The automatic size choice runs CPU HDBSCAN on the reduction whatever the engine: HDBSCAN
    is a small share of a run (docs/SCALE.md), and its models give soft membership.
    """
    from memeatlas.cluster import algorithms

    knn_idx, _ = cache.knn(max(v.umap_neighbors, 2))
    red = params["reduce"]
    if red["method"] == "umap":
        xr = cache.reduce(red["dims"], red["neighbors"], red["min_dist"], seed,
                          red["epochs"], "umap" if seed == v.seed else "_seed_umap")
    else:
        xr = cache.x
    if v.algorithm == "hdbscan" and params.get("min_cluster_size") == AUTO:
        from memeatlas.cluster.granularity import choose

        choice = choose(xr, min_samples=v.min_samples,
                        selection=v.cluster_selection_method,
                        criterion=v.granularity_criterion)
        c = choice.chosen
        return c.labels, c.probabilities, c.model, xr, choice
    labels, probs, model = algorithms.for_engine(v.engine, v.algorithm)(xr, params, knn_idx, seed)
    return labels, probs, model, xr, None


def _soft(model, labels: np.ndarray, probs: np.ndarray, knn_idx: np.ndarray | None = None
          ) -> tuple[np.ndarray, np.ndarray]:
    if model is None:
        return labels.copy(), probs.copy()
    from memeatlas.cluster.soft import soft_membership

    return soft_membership(model, labels, probs, knn_idx)


def run(store, cfg: ClusterConfig) -> list[str]:
    """Cluster the configured space(s); returns the run ids written (or found, when skipped).

    Same inputs + parameters + seed → same fingerprint → same assignments; an existing run with
    that fingerprint is returned without recomputing unless `cfg.force`.
    """
    from memeatlas.cluster.fuse import fuse, validate_weights
    from memeatlas.corpus.vectors import load_aligned

    _validate(cfg)
    if not cfg.spaces:
        cfg.spaces = [_only_space(store)]
    g = validate_weights(cfg.weights, len(cfg.spaces))
    t_all = time.perf_counter()
    t0 = time.perf_counter()
    from memeatlas.store.memory import capped_memory

    with capped_memory(store, LOAD_DUCKDB_MEMORY):  # no gigabytes of scanned blocks kept
        ids, mats = load_aligned(store, cfg.spaces, where=cfg.where)
    n = len(ids)
    if n < 3:
        raise InputError(f"only {n} meme(s) to cluster; need at least 3")
    _check_size_fits(cfg, n)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    x, finfo = fuse(mats, cfg.weights, method=cfg.fusion, k=cfg.fusion_k)
    del mats  # x (a normalised copy) is all that is needed from here: one copy held, not two
    t_fuse = time.perf_counter() - t0
    spaces_json = [{"space": s, "weight": float(w)} for s, w in zip(cfg.spaces, g, strict=True)]
    if "mean_meme_weights" in finfo:
        for d, mw in zip(spaces_json, finfo["mean_meme_weights"], strict=True):
            d["mean_meme_weight"] = round(float(mw), 4)
    input_fp = _fingerprint_inputs(ids, x)
    cache = _Cache(x, cfg)
    cache.timings.update(load=t_load, fuse=t_fuse)
    out: list[str] = []
    variants = _variants(cfg)
    for v in progress.track(variants, desc="cluster runs", unit="run") if len(variants) > 1 \
            else variants:
        params = _params(v, n)
        fp = short_hash({"inputs": input_fp, "params": params, "seed": v.seed}, 32)
        found = _existing(store, fp, "cluster")
        if found and not cfg.force:
            progress.info(f"run {found} has these inputs and parameters; skipping "
                          f"(--force to run again)")
            out.append(found)
            if v.stability and v.consensus:
                child = store.scalar("SELECT run_id FROM cluster_runs WHERE parent_run = ? "
                                     "AND kind = 'consensus' LIMIT 1", [found])
                if child:
                    out.append(child)
                else:
                    progress.info(f"run {found} has no consensus run; --force to make one")
            if cfg.reassign_noise:
                child = store.scalar("SELECT run_id FROM cluster_runs WHERE parent_run = ? "
                                     "AND kind = 'reassign_noise' LIMIT 1", [found])
                if child:
                    out.append(child)
                else:  # the stored run was made without --reassign-noise: derive it now
                    state = load_model(store, found)
                    stored = dict(store.fetchall("SELECT meme_id, probability FROM "
                                                 "cluster_assignments WHERE run_id = ?", [found]))
                    probs = np.array([stored.get(i, np.nan) for i in state["ids"]], dtype=float)
                    blob = store.scalar("SELECT model FROM cluster_models WHERE run_id = ?",
                                        [found])
                    rid = _write_reassigned(
                        store, v, params, state["ids"], state["clusterer"],
                        np.asarray(state["labels"]), probs, state["layout"], blob,
                        spaces_json, found, fp)
                    if rid:
                        out.append(rid)
            continue
        before = dict(cache.timings)
        t_run = time.perf_counter()
        knn_idx, _ = cache.knn(max(v.umap_neighbors, 2))
        red = params["reduce"]
        layout_job = None
        if params["layout"] and red["method"] == "umap" and v.engine == "cpu":
            # The 2-D map needs only the graph (and, with --layout-init reduction, the
            # reduction): it runs in a thread while HDBSCAN, mostly on one core, runs here.
            xr0 = cache.reduce(red["dims"], red["neighbors"], red["min_dist"], v.seed,
                               red["epochs"], "umap")
            layout_job = _Background(_layout, cache, params, xr0, v.seed)
        mid = dict(cache.timings)
        t0 = time.perf_counter()
        fitted = _fit_seed(cache, v, params, v.seed)
        labels, probs, model, xr, choice = fitted
        # HDBSCAN (all candidates) alone: the reductions done on the way are timed apart
        # (not the map, which runs beside it).
        t_cluster = time.perf_counter() - t0 - sum(
            cache.timings.get(k, 0.0) - mid.get(k, 0.0) for k in cache.timings if k != "layout")
        if choice is not None:  # the fingerprint keeps "auto"; the stored params say what it chose
            params = {**params, "min_cluster_size": choice.chosen.min_cluster_size,
                      "min_samples": choice.chosen.min_samples,
                      "granularity": choice.params()}
        t0 = time.perf_counter()
        soft, soft_p = _soft(model, labels, probs, knn_idx)
        timings_soft = time.perf_counter() - t0
        if model is not None and labels.size and labels.max() >= 0:
            from memeatlas.cluster.soft import method_for

            params = {**params, "soft": method_for(labels.size, int(labels.max()) + 1)}
        stab = None
        if v.stability:
            from memeatlas.cluster.stability import measure

            t0 = time.perf_counter()
            others = [_fit_seed(cache, v, params_auto(params, v), v.seed + i)
                      for i in range(1, v.stability)]
            stab = measure([(labels, soft)] + [(o[0], _soft(o[2], o[0], o[1], knn_idx)[0])
                                               for o in others],
                           seeds=[v.seed + i for i in range(v.stability)])
            cache.timings["stability"] = cache.timings.get("stability", 0.0) + \
                time.perf_counter() - t0
            params = {**params, "stability": {**params["stability"], **stab.params()}}
            seed_labels = [labels] + [o[0] for o in others]
        xy = None
        if layout_job is not None:
            xy = layout_job.result()
        elif params["layout"]:
            xy = _layout(cache, params, xr, v.seed)
        params = cache.record_inits(params, n, v.seed)
        timings = {k: cache.timings.get(k, 0.0) - before.get(k, 0.0)
                   for k in ("knn", "import_umap", "umap", "layout", "stability")}
        if not v.stability:
            timings.pop("stability")
        if not out:  # shared work is charged to the first run written
            timings.update(load=t_load, fuse=t_fuse)
        timings["cluster"] = t_cluster
        timings["soft"] = timings_soft
        blob = pickle.dumps({
            "version": 1, "algorithm": v.algorithm, "ids": ids, "clusterer": model,
            "reduced": xr if red["method"] == "umap" else None, "layout": xy,
            "labels": labels, "fusion": {"method": finfo["method"], "weights": g.tolist(),
                                         "k": cfg.fusion_k},
            "spaces": list(cfg.spaces), "knn_k": max(v.umap_neighbors, 2)},
            protocol=pickle.HIGHEST_PROTOCOL)
        run_id = new_run_id("cluster")
        t0 = time.perf_counter()
        timings["total"] = time.perf_counter() - t_run
        _write_run(store, run_id=run_id, cfg=v, params=params, seed=v.seed, ids=ids,
                   labels=labels, probs=probs, xy=xy, fingerprint=fp, spaces_json=spaces_json,
                   kind="cluster", parent=None, timings=timings, model_blob=blob,
                   assigned_by="fit", soft=(soft, soft_p), choice=choice, stability=stab)
        timings["write"] = time.perf_counter() - t0
        store.execute("UPDATE cluster_runs SET timings = ? WHERE run_id = ?",
                      [stable_json({k: round(val, 4) for k, val in timings.items()}), run_id])
        out.append(run_id)
        if labels.size and labels.max() < 0:
            progress.info(f"run {run_id}: no cluster among {n} memes (all noise at "
                          f"min_cluster_size {params.get('min_cluster_size')}); try "
                          f"--min-cluster-size {max(2, min(5, n // 3))} or more memes")
        if cfg.reassign_noise:
            rid = _write_reassigned(store, v, params, ids, model, labels, probs, xy, blob,
                                    spaces_json, run_id, fp)
            if rid:
                out.append(rid)
        if v.stability and v.consensus:
            out.append(_write_consensus(store, v, params, ids, seed_labels, knn_idx, xy,
                                        spaces_json, run_id, fp))
    progress.info(f"clustered {n} memes in {time.perf_counter() - t_all:.1f}s")
    return out


def _write_reassigned(store, v, params, ids, model, labels, probs, xy, blob, spaces_json,
                      parent: str, parent_fp: str) -> str | None:
    """Store the --reassign-noise variant of run `parent` as its own run; None if no noise model."""
    if model is None:
        progress.info(f"--reassign-noise: {v.algorithm} leaves no noise; no extra run")
        return None
    from memeatlas.cluster import algorithms  # imports hdbscan/sklearn: only when needed

    new_labels, new_probs = algorithms.reassign_noise(model, labels, probs)
    rid = new_run_id("cluster")
    rparams = {**params, "reassign_noise": "hdbscan.all_points_membership_vectors"}
    # Points that were noise in the parent are marked as reassigned (membership 'assigned':
    # this run moves every noise meme, whatever its membership; the floor is the parent's).
    was_noise = np.asarray(labels) < 0
    _write_run(store, run_id=rid, cfg=v, params=rparams, seed=v.seed, ids=ids,
               labels=new_labels, probs=new_probs, xy=xy,
               fingerprint=short_hash({"parent": parent_fp, "reassign": True}, 32),
               spaces_json=spaces_json, kind="reassign_noise", parent=parent,
               timings={}, model_blob=blob,
               assigned_by=np.where(was_noise, "reassign", "fit").tolist(),
               reassigned=was_noise)
    return rid


def _write_consensus(store, v, params, ids, seed_labels, knn_idx, xy, spaces_json,
                     parent: str, parent_fp: str) -> str:
    """Store the co-association consensus of the stability seeds as a derived run."""
    from memeatlas.cluster.stability import consensus

    size = int(params.get("min_cluster_size") or 5) if v.algorithm == "hdbscan" else 2
    labels, probs, soft = consensus(seed_labels, knn_idx, size)
    rid = new_run_id("cluster")
    cparams = {**params, "consensus": {"method": "knn co-association", "threshold": 0.5,
                                       "min_size": size, "seeds": len(seed_labels),
                                       "knn_k": int(knn_idx.shape[1])}}
    _write_run(store, run_id=rid, cfg=v, params=cparams, seed=v.seed, ids=ids, labels=labels,
               probs=probs, xy=xy, fingerprint=short_hash({"parent": parent_fp,
                                                           "consensus": True}, 32),
               spaces_json=spaces_json, kind="consensus", parent=parent, timings={},
               model_blob=None, assigned_by="consensus", soft=(soft, probs))
    return rid


def run_summary(store, run_id: str) -> dict[str, Any]:
    """n_items, n_clusters, noise_fraction and timings of a stored run (for CLI summaries)."""
    info = get_run_info(store, run_id)
    d = {k: info.get(k) for k in ("run_id", "kind", "space", "algorithm", "n_items", "n_clusters",
                                  "noise_fraction", "timings")}
    d["timings"] = d["timings"] or {}
    params = info.get("params") or {}
    d["min_cluster_size"] = params.get("min_cluster_size")
    g = params.get("granularity")
    if g:
        d["granularity"] = (f"{g['criterion']} over {len(g['candidates'])} sizes "
                            f"{g['candidates'][0]}–{g['candidates'][-1]}")
    d["stability"] = info.get("stability")
    d["assign_floor"] = params.get("assign_floor")
    d["membership"] = dict(store.fetchall(
        "SELECT membership, count(*) FROM cluster_assignments WHERE run_id = ? GROUP BY 1",
        [run_id]))
    return d
