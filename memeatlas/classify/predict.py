"""`classify predict` (class and probability for new memes, 'unknown' below the threshold) and
`classify evaluate` (a stored model scored on another labelled set)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from memeatlas.classify.labels import load_labels
from memeatlas.classify.metrics import Scores, evaluation_rows, score
from memeatlas.classify.store import ModelInfo, get_model, load_head
from memeatlas.errors import InputError
from memeatlas.provenance import new_run_id, stable_json, utcnow

TOP_STORED = 3
_BATCH = 4096


@dataclass
class PredictSummary:
    """What `predict` did."""

    model_id: str
    task: str
    n_candidates: int
    n_predicted: int
    n_skipped: int
    n_unknown: int
    threshold: float
    classes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def _proba(head, mats: list[np.ndarray]) -> np.ndarray:
    out = [head.predict_proba([m[s:s + _BATCH] for m in mats]) for s in range(0, len(mats[0]), _BATCH)]
    return np.concatenate(out) if out else np.zeros((0, head.n_classes))


def predict(store, model: str = "latest", *, task: str | None = None, where: str | None = None,
            include_labelled: bool = False, force: bool = False) -> PredictSummary:
    """Predict the model's task for memes with vectors in all its spaces.

    By default the memes not labelled in the task; `where` selects memes by a condition on `memes`
    (labelled or not), `include_labelled` adds the labelled ones. Memes this model already predicted
    are skipped unless `force`.
    """
    from memeatlas.classify.lexical import load_inputs
    from memeatlas.corpus.vectors import filtered_ids

    info = get_model(store, model, task)
    keep = filtered_ids(store, where)
    labelled = {r[0] for r in store.fetchall("SELECT DISTINCT meme_id FROM class_labels WHERE task = ?", [info.task])}
    done = {r[0] for r in store.fetchall("SELECT meme_id FROM class_predictions WHERE model_id = ?", [info.model_id])}
    t0 = time.perf_counter()
    try:
        ids, _ = _candidates(store, info, keep)
    except InputError:
        ids = []
    if where is None and not include_labelled:
        ids = [m for m in ids if m not in labelled]
    n_cand = len(ids)
    todo = ids if force else [m for m in ids if m not in done]
    if not todo:
        return PredictSummary(info.model_id, info.task, n_cand, 0, n_cand, 0, info.threshold,
                              seconds=time.perf_counter() - t0)
    head, lexical = load_head(store, info.model_id)
    ids2, mats, _ = load_inputs(store, info.spaces, todo, fitted=lexical)
    P = _proba(head, mats)
    rows = _rows(info, ids2, P)
    with store.transaction():
        if force:
            with store.registered("_cls_ids", _id_table(ids2)):
                store.execute("DELETE FROM class_predictions WHERE model_id = ? AND meme_id IN "
                              "(SELECT meme_id FROM _cls_ids)", [info.model_id])
        store.insert_rows("class_predictions", ("model_id", "meme_id", "task", "label", "probability",
                                                "is_unknown", "top", "predicted_at"), rows)
    n_unknown = sum(r[5] for r in rows)
    counts = Counter("unknown" if r[5] else r[3] for r in rows)
    return PredictSummary(info.model_id, info.task, n_cand, len(rows), n_cand - len(rows), n_unknown,
                          info.threshold, dict(counts.most_common()), time.perf_counter() - t0)


def _id_table(ids):
    import pyarrow as pa

    return pa.table({"meme_id": pa.array(list(ids), pa.string())})


def _candidates(store, info: ModelInfo, keep: set[str] | None) -> tuple[list[str], None]:
    """Memes with vectors in every space of the model (and in `keep`)."""
    from memeatlas.classify.lexical import is_lexical

    common: set[str] | None = None
    if all(is_lexical(s) for s in info.spaces):  # text only: memes with annotations (filtered later)
        common = {r[0] for r in store.fetchall("SELECT DISTINCT meme_id FROM latest_annotations")}
    for s in (s for s in info.spaces if not is_lexical(s)):
        got = {r[0] for r in store.fetchall("SELECT meme_id FROM embeddings WHERE space = ?", [s])}
        common = got if common is None else common & got
    common = common or set()
    if keep is not None:
        common &= keep
    return sorted(common), None


def _rows(info: ModelInfo, ids: list[str], P: np.ndarray) -> list[tuple]:
    now = utcnow()
    top = np.argsort(-P, axis=1)[:, :TOP_STORED]
    out = []
    for i, mid in enumerate(ids):
        best = int(top[i, 0])
        p = float(P[i, best])
        out.append((info.model_id, mid, info.task, info.classes[best], p, bool(p < info.threshold),
                    stable_json([{"label": info.classes[int(j)], "p": round(float(P[i, j]), 6)} for j in top[i]]),
                    now))
    return out


@dataclass
class EvaluateSummary:
    """What `evaluate_model` found."""

    model_id: str
    model_task: str
    task: str
    n: int                       # memes of known classes scored
    closed: Scores | None        # every meme gets its most probable class
    open: Scores | None          # 'unknown' below the threshold counts as wrong
    unknown_rate: float
    n_unseen: int = 0            # memes whose class the model does not know
    unseen_unknown_rate: float | None = None
    unseen_classes: list[str] = field(default_factory=list)
    eval_id: str | None = None
    notes: list[str] = field(default_factory=list)


def evaluate_model(store, model: str, task: str, *, coder: str | None = None, where: str | None = None,
                   bootstrap: int = 1000, seed: int = 0) -> EvaluateSummary:
    """Score a stored model on the labels of `task` (e.g. memes from another source).

    Memes whose class the model knows are scored closed-set (argmax) and open-set (below the
    threshold = 'unknown' = wrong); for memes of classes it does not know, the share it calls
    'unknown' is reported (open-set rejection). Stored as evaluations (command classify-evaluate).
    """
    from memeatlas.classify.lexical import load_inputs
    from memeatlas.corpus.vectors import filtered_ids
    from memeatlas.store.evaluations import store_evaluations

    info = get_model(store, model)
    keep = filtered_ids(store, where)
    ls = load_labels(store, task, coder=coder, meme_ids=keep)
    if not ls.labels:
        raise InputError(f"task {task!r} has no labelled memes" + (f" matching --where {where!r}" if where else ""))
    known = set(info.classes)
    eval_classes = set(ls.labels.values())
    if not eval_classes & known:
        raise InputError(f"none of the classes of task {task!r} ({', '.join(sorted(eval_classes)[:8])}"
                         f"{' ...' if len(eval_classes) > 8 else ''}) is a class of model {info.model_id} "
                         f"({', '.join(info.classes[:8])}{' ...' if len(info.classes) > 8 else ''})")
    head, lexical = load_head(store, info.model_id)
    try:
        ids, mats, _ = load_inputs(store, info.spaces, sorted(ls.labels), fitted=lexical)
    except InputError:
        raise InputError(f"none of the memes labelled for task {task!r} has vectors in "
                         f"{', '.join(info.spaces)}; run `memeatlas embed` for them first") from None
    notes = []
    if len(ids) < len(ls.labels):
        notes.append(f"{len(ls.labels) - len(ids)} labelled memes have no vectors in every space; left out")
    P = _proba(head, mats)
    top = P.argmax(axis=1)
    pmax = P.max(axis=1)
    unk = pmax < info.threshold
    index = {c: i for i, c in enumerate(info.classes)}
    is_known = np.array([ls.labels[m] in index for m in ids])
    unseen = sorted({ls.labels[m] for m in ids if ls.labels[m] not in index})
    y = np.array([index[ls.labels[m]] for m, k in zip(ids, is_known, strict=True) if k], dtype=np.int64)
    closed = open_ = None
    if len(y):
        closed = score(y, top[is_known], info.classes, bootstrap=bootstrap, seed=seed)
        open_ = score(y, np.where(unk[is_known], -1, top[is_known]), info.classes, bootstrap=bootstrap, seed=seed)
    n_unseen = int((~is_known).sum())
    s = EvaluateSummary(model_id=info.model_id, model_task=info.task, task=task, n=len(y), closed=closed,
                        open=open_, unknown_rate=float(unk[is_known].mean()) if len(y) else float("nan"),
                        n_unseen=n_unseen, unseen_unknown_rate=float(unk[~is_known].mean()) if n_unseen else None,
                        unseen_classes=unseen, notes=notes)
    rows: list[dict[str, Any]] = []
    details = {"what": f"model {info.model_id} (task {info.task}) on task {task}", "threshold": info.threshold}
    if closed:
        rows += evaluation_rows(closed, model_id=info.model_id, task=task, details={**details, "mode": "closed"})
        for r in evaluation_rows(open_, model_id=info.model_id, task=task, details={**details, "mode": "open"}):
            if r["metric"] in ("macro_f1", "accuracy"):
                rows.append({**r, "metric": f"{r['metric']}_open"})
        rows.append({"run_id": info.model_id, "dimension": task, "metric": "unknown_rate", "value": s.unknown_rate,
                     "n": len(y), "details": details})
    if n_unseen:
        rows.append({"run_id": info.model_id, "dimension": task, "metric": "unseen_unknown_rate",
                     "value": s.unseen_unknown_rate, "n": n_unseen, "details": {**details, "classes": unseen}})
    s.eval_id = new_run_id("eval-classify")
    store_evaluations(store, s.eval_id, "classify-evaluate", rows)
    return s
