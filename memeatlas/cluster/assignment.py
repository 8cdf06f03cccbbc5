"""`memeatlas assign`: place memes that arrived after a run into its clusters.

New memes (vectors in every space of the run, no row in the run yet, optionally filtered by
`--where` on `memes`) are fused like the fit and matched to their k nearest fitted memes (exact
cosine). Their UMAP coordinates — both the clustered reduction and the 2-D map — are the
neighbours' coordinates averaged with weights exp(−(d_j − d_1)/σ), σ = mean(d_j − d_1) (UMAP's
own transform starts from this and only refines it). Then:
* HDBSCAN runs: `hdbscan.approximate_predict` on the interpolated reduction gives the cluster
  (−1 = noise) and its membership strength → assigned_by 'assign:hdbscan';
* other algorithms: a similarity-weighted vote of the k neighbours' clusters; probability =
  the winner's vote share → assigned_by 'assign:knn'.
Each new meme's membership follows the run's own rule (soft.membership at the run's
`assign_floor`): core when it lands in a cluster, assigned when noise with a soft membership at
least the floor, else noise.
"""

from __future__ import annotations

import time

import numpy as np

from memeatlas.cluster.config import AssignSummary
from memeatlas.errors import InputError


def _interp_weights(d: np.ndarray) -> np.ndarray:
    rel = d - d[:, :1]
    sigma = rel.mean(axis=1, keepdims=True) + 1e-6
    w = np.exp(-rel / sigma)
    return w / w.sum(axis=1, keepdims=True)


def knn_vote(labels: np.ndarray, idx: np.ndarray, d: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """Similarity-weighted vote of neighbour labels → (label, vote share)."""
    sim = np.clip(1.0 - d, 1e-6, None)
    nl = labels[idx]
    uniq = np.unique(labels)
    scores = np.stack([(sim * (nl == u)).sum(axis=1) for u in uniq], axis=1)
    best = scores.argmax(axis=1)
    return uniq[best].astype(np.int64), scores.max(axis=1) / scores.sum(axis=1)


def assign(store, run_id: str, where: str | None = None, *, k: int = 15) -> AssignSummary:
    """Assign memes that are not in run `run_id` (and match `where`) to its clusters."""
    import pyarrow as pa

    from memeatlas.cluster.fuse import fuse, fuse_new
    from memeatlas.cluster.knn import exact_knn
    from memeatlas.corpus.runs import load_model
    from memeatlas.corpus.vectors import filtered_ids, load_aligned
    from memeatlas.provenance import utcnow

    t0 = time.perf_counter()
    model = load_model(store, run_id)  # NotFoundError for an unknown run
    spaces = model["spaces"]
    have = {r[0] for r in store.fetchall(
        "SELECT meme_id FROM cluster_assignments WHERE run_id = ?", [run_id])}
    # Candidates: memes with vectors in every space of the run, not yet in the run.
    cand: set[str] | None = None
    for s in spaces:
        ids_s = {r[0] for r in store.fetchall(
            "SELECT meme_id FROM embeddings WHERE space = ?", [s])}
        cand = ids_s if cand is None else cand & ids_s
    cand = (cand or set()) - have
    keep = filtered_ids(store, where)
    if keep is not None:
        cand &= keep
    method = "hdbscan" if model["clusterer"] is not None else "knn"
    if not cand:
        return AssignSummary(run_id, 0, 0, method, time.perf_counter() - t0)

    train_ids_all = model["ids"]
    tr_ids, tr_mats = load_aligned(store, spaces, meme_ids=train_ids_all)
    pos = {m: i for i, m in enumerate(train_ids_all)}
    rows = np.array([pos[m] for m in tr_ids])
    if len(tr_ids) < 2:
        raise InputError(f"run {run_id}: its fitted memes no longer have vectors; re-run "
                         f"`memeatlas cluster`")
    new_ids, new_mats = load_aligned(store, spaces, meme_ids=sorted(cand))
    fz = model["fusion"]
    x_tr, _ = fuse(tr_mats, fz["weights"], method=fz["method"] if len(spaces) > 1 else "concat",
                   k=fz["k"])
    x_new = fuse_new(tr_mats, new_mats, fz["weights"], method=fz["method"], k=fz["k"])
    kk = max(1, min(k, len(tr_ids)))
    idx, d = exact_knn(x_tr, kk, queries=x_new)
    w = _interp_weights(d)
    labels_tr = np.asarray(model["labels"])[rows]

    def interp(coords):
        if coords is None:
            return None
        c = np.asarray(coords)[rows]
        return np.einsum("nk,nkd->nd", w, c[idx])

    xy = interp(model["layout"])
    if method == "hdbscan":
        from memeatlas.cluster.engines import approximate_predict  # hdbscan's or cuML's

        red = interp(model["reduced"]) if model["reduced"] is not None else x_new
        lab, prob = approximate_predict(model["clusterer"], np.asarray(red, dtype=np.float64))
        lab = np.asarray(lab, dtype=np.int64)
        soft, soft_p = lab.copy(), np.asarray(prob, dtype=np.float64).copy()
        noise = lab < 0
        import hdbscan

        if (noise.any() and np.asarray(model["labels"]).max() >= 0
                and isinstance(model["clusterer"], hdbscan.HDBSCAN)):
            # Soft clusters for new noise memes too, as `cluster` stores them for the fit
            # (a cuML model keeps its noise as noise: hdbscan's membership API is not its own).
            memb = np.asarray(hdbscan.membership_vector(
                model["clusterer"], np.asarray(red, dtype=np.float64)[noise]), dtype=np.float64)
            memb = memb.reshape(int(noise.sum()), -1)
            soft[noise] = memb.argmax(axis=1)
            soft_p[noise] = memb.max(axis=1)
    else:
        lab, prob = knn_vote(labels_tr, idx, d)
        soft, soft_p = lab, np.asarray(prob, dtype=np.float64)
    from memeatlas.cluster.config import ASSIGN_FLOOR
    from memeatlas.cluster.soft import membership
    from memeatlas.corpus.runs import get_run_info

    floor = float((get_run_info(store, run_id).get("params") or {}).get("assign_floor",
                                                                         ASSIGN_FLOOR))
    memb = membership(lab, soft, soft_p, floor)
    n = len(new_ids)
    tbl = pa.table({
        "meme_id": pa.array(new_ids, pa.string()),
        "cluster": pa.array(lab.astype(np.int32)),
        "probability": pa.array(np.asarray(prob, dtype=np.float64)),
        "x": pa.array(xy[:, 0] if xy is not None else [None] * n, pa.float64()),
        "y": pa.array(xy[:, 1] if xy is not None else [None] * n, pa.float64()),
        "soft_cluster": pa.array(np.asarray(soft).astype(np.int32)),
        "soft_probability": pa.array(np.asarray(soft_p, dtype=np.float64)),
        "membership": pa.array(memb.tolist(), pa.string()),
    })
    with store.registered("_assign_batch", tbl), store.transaction():
        store.execute("INSERT INTO cluster_assignments (run_id, meme_id, cluster, probability, "
                      "x, y, assigned_by, assigned_at, soft_cluster, soft_probability, "
                      "membership) SELECT ?, meme_id, cluster, probability, x, y, ?, ?, "
                      "soft_cluster, soft_probability, membership FROM _assign_batch",
                      [run_id, f"assign:{method}", utcnow()])
    return AssignSummary(run_id, n, int((memb == "noise").sum()), method,
                         time.perf_counter() - t0)
