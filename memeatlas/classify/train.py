"""`classify train`: cross-validate a head on a labelled set, fit it on all of it, store it with provenance."""

from __future__ import annotations

import hashlib
import pickle
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from memeatlas import progress
from memeatlas.classify.heads import head_class, make_head
from memeatlas.classify.heads.base import balanced_class_weight
from memeatlas.classify.labels import load_labels
from memeatlas.classify.metrics import Scores, evaluation_rows, score
from memeatlas.errors import InputError, ModelNotFoundError
from memeatlas.provenance import new_run_id, software, stable_json, utcnow


@dataclass
class TrainConfig:
    """What to train: a task's labels, the spaces to read, the head and its parameters."""

    task: str
    spaces: list[str]
    head: str = "knn"
    params: dict[str, Any] = field(default_factory=dict)
    folds: int = 5
    seed: int = 0
    bootstrap: int = 1000
    unknown_quantile: float = 0.05   # share of correctly classified CV memes that may fall below the threshold
    coder: str | None = None
    classes: list[str] | None = None
    where: str | None = None
    force: bool = False


@dataclass
class TrainSummary:
    """What `train` did."""

    model_id: str
    task: str
    head: str
    spaces: list[str]
    classes: list[str]
    n_train: int
    n_unlabelled_vectors: int = 0      # labelled memes left out: no vectors in every space
    n_ties: int = 0
    folds: int = 0
    scores: Scores | None = None
    threshold: float = 0.0
    skipped: bool = False
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    eval_id: str | None = None


def class_name_text(name: str) -> str:
    """'Drake-Hotline_Bling' → 'Drake Hotline Bling': what a class name says, for a text encoder."""
    return " ".join(name.replace("_", " ").replace("-", " ").split())


def class_name_vectors(store, spaces: list[str], classes: list[str], notes: list[str]
                       ) -> list[np.ndarray | None]:
    """Embeddings of the class names in each text space's own model (None for image spaces)."""
    from memeatlas.embed import get_space
    from memeatlas.embed.text import get_text_encoder

    out: list[np.ndarray | None] = []
    for s in spaces:
        info = get_space(store, s)
        if info is None or info.kind != "text":
            out.append(None)
            continue
        try:
            enc = get_text_encoder(info.model)
            vec = enc.encode([class_name_text(c) for c in classes])
        except (ModelNotFoundError, OSError, ValueError) as exc:
            notes.append(f"class names not embedded for space {s} ({str(exc).splitlines()[0]}); "
                         f"random initialisation")
            out.append(None)
            continue
        out.append(vec if vec.shape[1] == info.dim else None)
    return out


def load_training_set(store, task: str, spaces: list[str], *, coder: str | None = None,
                      classes: list[str] | None = None, where: str | None = None, seed: int = 0
                      ) -> tuple[list[str], list[np.ndarray], np.ndarray, list[str], int, int, dict]:
    """(meme ids, matrices, y, classes, n labelled without vectors, n ties, fitted lexical transforms)."""
    from memeatlas.classify.lexical import load_inputs
    from memeatlas.corpus.vectors import filtered_ids

    keep = filtered_ids(store, where)
    ls = load_labels(store, task, coder=coder, meme_ids=keep)
    labels = ls.labels
    if classes:
        unknown = [c for c in classes if c not in ls.per_class]
        if unknown:
            raise InputError(f"unknown class(es) {', '.join(map(repr, unknown))} in task {task!r}; its classes: "
                             f"{', '.join(sorted(ls.per_class))}")
        labels = {m: lab for m, lab in labels.items() if lab in classes}
    if not labels:
        raise InputError(f"task {task!r} has no labelled memes to train on"
                         + (f" matching --where {where!r}" if where else ""))
    try:
        ids, mats, lexical = load_inputs(store, spaces, sorted(labels), seed=seed)
    except InputError as exc:
        if not str(exc).startswith(("no meme has vectors", "no meme has text")):
            raise
        raise InputError(f"none of the {len(labels)} memes labelled for task {task!r} has vectors in "
                         f"{', '.join(spaces)}; run `memeatlas embed` for them first") from None
    cls = sorted({labels[m] for m in ids})
    if len(cls) < 2:
        raise InputError(f"task {task!r} has only one class ({cls[0]!r}) among the memes with vectors; "
                         f"a classifier needs at least two")
    index = {c: i for i, c in enumerate(cls)}
    y = np.array([index[labels[m]] for m in ids], dtype=np.int64)
    return ids, mats, y, cls, len(labels) - len(ids), ls.n_ties, lexical


def fingerprint(ids: list[str], mats: list[np.ndarray], y: np.ndarray, cfg: TrainConfig,
                params: dict[str, Any], classes: list[str]) -> str:
    """Same labels, vectors, head, parameters, folds and seed → same fingerprint (and same model)."""
    h = hashlib.sha256()
    h.update(stable_json([cfg.task, cfg.spaces, cfg.head, params, cfg.seed, cfg.folds, cfg.unknown_quantile,
                          classes, ids]).encode())
    h.update(y.tobytes())
    for m in mats:
        h.update(np.ascontiguousarray(m).tobytes())
    return h.hexdigest()[:32]


def cross_validate(head_name: str, params: dict[str, Any], mats: list[np.ndarray], y: np.ndarray,
                   n_classes: int, *, folds: int, seed: int, names=None) -> np.ndarray:
    """Out-of-fold probabilities [n, C] from stratified k-fold CV (each fold a fresh, seeded head)."""
    from sklearn.model_selection import StratifiedKFold

    oof = np.zeros((len(y), n_classes))
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    # A class with fewer members than folds cannot be in every fold; scikit-learn warns, we note it.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        splits = list(skf.split(np.zeros(len(y)), y))
    for k, (tr, te) in enumerate(progress.track(splits, desc="cross-validation")):
        head = make_head(head_name, params)
        head.fit([m[tr] for m in mats], y[tr], n_classes, class_weight=balanced_class_weight(y[tr], n_classes),
                 seed=seed + k, class_name_vectors=names)
        oof[te] = head.predict_proba([m[te] for m in mats])
    return oof


def calibrate_threshold(proba: np.ndarray, y: np.ndarray, quantile: float) -> float:
    """The `quantile` of the top probability over correctly classified out-of-fold memes.

    Below it a new meme is 'unknown': by construction about `quantile` of the memes the model gets
    right in CV would be rejected, and memes of unseen classes (usually less certain) more often.
    """
    top = proba.max(axis=1)
    ok = proba.argmax(axis=1) == y
    if not ok.any() or quantile <= 0:
        return 0.0
    return float(np.quantile(top[ok], quantile))


def train(store, cfg: TrainConfig) -> TrainSummary:
    """Cross-validate, fit and store one classifier; a re-run with the same fingerprint is skipped."""
    from memeatlas.store.evaluations import store_evaluations

    cls_ = head_class(cfg.head)
    make_head(cfg.head, cfg.params)  # parameter errors before any loading
    params = {**cls_.DEFAULTS, **make_head(cfg.head, cfg.params).params}
    if not cfg.spaces:
        raise InputError("give at least one --space")
    if cfg.folds == 1 or cfg.folds < 0:
        raise InputError("--folds must be 0 (no cross-validation) or at least 2")
    if not 0 <= cfg.unknown_quantile < 1:
        raise InputError("--unknown-quantile must be in [0, 1)")
    t0 = time.perf_counter()
    ids, mats, y, classes, n_novec, n_ties, lexical = load_training_set(
        store, cfg.task, cfg.spaces, coder=cfg.coder, classes=cfg.classes, where=cfg.where, seed=cfg.seed)
    C = len(classes)
    notes: list[str] = []
    counts = np.bincount(y, minlength=C)
    folds = cfg.folds
    if folds and folds > len(y):
        raise InputError(f"--folds {folds} is more than the {len(y)} labelled memes")
    if folds and counts.max() < folds:
        # scikit-learn refuses folds that no class can fill: use what the largest class allows.
        fewer = int(counts.max())
        notes.append(f"every class has fewer than {folds} examples: "
                     + (f"{fewer}-fold cross-validation instead" if fewer >= 2 else "no cross-validation"))
        folds = fewer if fewer >= 2 else 0
    if folds and counts.min() < folds:
        small = [classes[i] for i in np.nonzero(counts < folds)[0]]
        notes.append(f"{len(small)} class(es) have fewer than {folds} examples ({', '.join(small[:5])}"
                     f"{' ...' if len(small) > 5 else ''}); they are missing from some CV folds")
    fp = fingerprint(ids, mats, y, cfg, params, classes)
    if not cfg.force:
        row = store.fetchone("SELECT model_id, threshold FROM classify_models WHERE fingerprint = ? "
                             "ORDER BY created_at DESC LIMIT 1", [fp])
        if row:
            return TrainSummary(model_id=row[0], task=cfg.task, head=cfg.head, spaces=cfg.spaces, classes=classes,
                                n_train=len(y), n_unlabelled_vectors=n_novec, n_ties=n_ties, folds=folds,
                                threshold=float(row[1] or 0), skipped=True,
                                notes=["same labels, vectors and parameters as this stored model: nothing "
                                       "to do (pass --force to train again)"])
    t_load = time.perf_counter() - t0
    names = class_name_vectors(store, cfg.spaces, classes, notes) if cls_.uses_class_names else None

    model_id = new_run_id(f"classify-{cfg.head}")
    scores = None
    threshold = 0.0
    t1 = time.perf_counter()
    if folds:
        oof = cross_validate(cfg.head, cfg.params, mats, y, C, folds=folds, seed=cfg.seed, names=names)
        scores = score(y, oof.argmax(axis=1), classes, bootstrap=cfg.bootstrap, seed=cfg.seed)
        threshold = calibrate_threshold(oof, y, cfg.unknown_quantile)
    t_cv = time.perf_counter() - t1
    t2 = time.perf_counter()
    head = make_head(cfg.head, cfg.params)
    head.fit(mats, y, C, class_weight=balanced_class_weight(y, C), seed=cfg.seed, class_name_vectors=names)
    t_fit = time.perf_counter() - t2
    blob = pickle.dumps({"head": head, "lexical": lexical}, protocol=pickle.HIGHEST_PROTOCOL)
    cv = ({"folds": folds, "macro_f1": scores.macro_f1, "accuracy": scores.accuracy,
           "macro_f1_ci": scores.ci.get("macro_f1"), "unknown_quantile": cfg.unknown_quantile}
          if scores else {"folds": 0})
    timings = {"load": round(t_load, 3), "cv": round(t_cv, 3), "fit": round(t_fit, 3)}
    full_params = {**params, "fit": head.info, "lexical": {k: v.describe() for k, v in lexical.items()}, "coder": cfg.coder, "classes_filter": cfg.classes,
                   "where": cfg.where, "class_counts": {c: int(n) for c, n in zip(classes, counts, strict=True)}}
    with store.transaction():
        store.execute(
            "INSERT INTO classify_models (model_id, task, head, spaces, classes, params, seed, n_train, fingerprint,"
            " threshold, cv, format, model, software, timings, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [model_id, cfg.task, cfg.head, stable_json(cfg.spaces), stable_json(classes), stable_json(full_params),
             cfg.seed, len(y), fp, threshold, stable_json(cv), f"pickle:memeatlas.classify/{cfg.head}", blob,
             stable_json(software("numpy", "scikit-learn", "torch", "sentence-transformers")),
             stable_json(timings), utcnow()])
    eval_id = None
    if scores:
        eval_id = new_run_id("eval-classify")
        store_evaluations(store, eval_id, "classify-train", evaluation_rows(
            scores, model_id=model_id, task=cfg.task,
            details={"what": f"{folds}-fold cross-validation", "head": cfg.head, "spaces": cfg.spaces}))
    return TrainSummary(model_id=model_id, task=cfg.task, head=cfg.head, spaces=cfg.spaces, classes=classes,
                        n_train=len(y), n_unlabelled_vectors=n_novec, n_ties=n_ties, folds=folds, scores=scores,
                        threshold=threshold, seconds=timings, notes=notes, eval_id=eval_id)
