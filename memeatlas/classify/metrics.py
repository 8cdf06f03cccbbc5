"""Classification scores: macro-F1, accuracy, per-class precision/recall/F1, bootstrap CIs, confusion matrix."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


def confusion(y: np.ndarray, yhat: np.ndarray, n_classes: int) -> np.ndarray:
    """[C, C] counts: row = true class, column = predicted class."""
    return np.bincount(n_classes * y + yhat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


@dataclass
class Scores:
    """Scores of one set of predictions, with 95 % percentile-bootstrap CIs over memes."""

    classes: list[str]
    n: int
    macro_f1: float
    accuracy: float
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    matrix: np.ndarray
    ci: dict[str, Any] = field(default_factory=dict)   # metric -> (low, high) or per-class arrays
    bootstrap: int = 0
    seed: int = 0

    def rows(self) -> list[dict[str, Any]]:
        """Per-class rows for a table."""
        out = []
        for i, c in enumerate(self.classes):
            if self.support[i] == 0:
                continue
            out.append({"class": c, "support": int(self.support[i]),
                        "precision": float(self.precision[i]), "recall": float(self.recall[i]),
                        "f1": float(self.f1[i]),
                        "f1_ci_low": _at(self.ci.get("f1_low"), i), "f1_ci_high": _at(self.ci.get("f1_high"), i)})
        return out


def _at(a, i):
    return None if a is None else float(a[i])


def score(y: np.ndarray, yhat: np.ndarray, classes: list[str], *, bootstrap: int = 1000,
          seed: int = 0, labels_in_scope: np.ndarray | None = None) -> Scores:
    """Scores of predictions `yhat` (−1 = unknown, always wrong) against `y` over `classes`.

    Macro-F1 averages over the classes that occur in `y` (labels_in_scope overrides that set).
    """
    C = len(classes)
    y = np.asarray(y, dtype=np.int64)
    yhat = np.asarray(yhat, dtype=np.int64)
    # 'unknown' goes into an extra column so it counts against recall but no class's precision.
    cm_full = confusion(y, np.where(yhat < 0, C, yhat), C + 1)[:C]
    cm = cm_full[:, :C]
    scope = labels_in_scope if labels_in_scope is not None else np.nonzero(np.bincount(y, minlength=C))[0]
    tp = np.diag(cm).astype(float)
    pred = cm.sum(axis=0)
    true = cm_full.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(pred > 0, tp / pred, 0.0)
        r = np.where(true > 0, tp / true, 0.0)
        f = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    s = Scores(classes=list(classes), n=len(y), macro_f1=float(f[scope].mean()) if len(scope) else float("nan"),
               accuracy=float((y == yhat).mean()) if len(y) else float("nan"), precision=p, recall=r, f1=f,
               support=true, matrix=cm_full, bootstrap=bootstrap, seed=seed)
    if bootstrap and len(y) > 1:
        s.ci = _bootstrap(y, yhat, C, scope, bootstrap, seed)
    return s


def _bootstrap(y, yhat, C, scope, B, seed) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    n = len(y)
    yh = np.where(yhat < 0, C, yhat)
    macro, acc = np.empty(B), np.empty(B)
    P, R, F = np.empty((B, C)), np.empty((B, C)), np.empty((B, C))
    for b in range(B):
        idx = rng.integers(0, n, n)
        yy, pp = y[idx], yh[idx]
        cm_full = np.bincount((C + 1) * yy + pp, minlength=C * (C + 1) + C + 1)[: C * (C + 1)].reshape(C, C + 1)
        tp = np.diag(cm_full[:, :C]).astype(float)
        pred = cm_full[:, :C].sum(axis=0)
        true = cm_full.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            p = np.where(pred > 0, tp / pred, 0.0)
            r = np.where(true > 0, tp / true, np.nan)
            f = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
        f = np.where(true > 0, f, np.nan)  # a class absent from the resample has no F1 there
        P[b], R[b], F[b] = p, r, f
        macro[b] = np.nanmean(f[scope])
        acc[b] = (yy == pp).mean()
    q = lambda a: (float(np.nanpercentile(a, 2.5)), float(np.nanpercentile(a, 97.5)))  # noqa: E731
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return {"macro_f1": q(macro), "accuracy": q(acc),
                    "precision_low": np.nanpercentile(P, 2.5, axis=0), "precision_high": np.nanpercentile(P, 97.5, axis=0),
                    "recall_low": np.nanpercentile(R, 2.5, axis=0), "recall_high": np.nanpercentile(R, 97.5, axis=0),
                    "f1_low": np.nanpercentile(F, 2.5, axis=0), "f1_high": np.nanpercentile(F, 97.5, axis=0)}


def evaluation_rows(s: Scores, *, model_id: str, task: str, details: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows for the `evaluations` table: macro_f1, accuracy, class_precision/recall/f1, confusion_matrix."""
    base = {"run_id": model_id, "dimension": task}
    d = {**details, "bootstrap": s.bootstrap, "seed": s.seed}
    mf = s.ci.get("macro_f1", (None, None))
    ac = s.ci.get("accuracy", (None, None))
    rows = [{**base, "metric": "macro_f1", "value": s.macro_f1, "ci_low": mf[0], "ci_high": mf[1], "n": s.n,
             "details": d},
            {**base, "metric": "accuracy", "value": s.accuracy, "ci_low": ac[0], "ci_high": ac[1], "n": s.n,
             "details": d}]
    for i, c in enumerate(s.classes):
        if s.support[i] == 0 and s.matrix[:, i].sum() == 0:
            continue
        for m, arr in (("precision", s.precision), ("recall", s.recall), ("f1", s.f1)):
            rows.append({**base, "metric": f"class_{m}", "value": float(arr[i]),
                         "ci_low": _at(s.ci.get(f"{m}_low"), i), "ci_high": _at(s.ci.get(f"{m}_high"), i),
                         "n": int(s.support[i]), "details": {**d, "class": c}})
    rows.append({**base, "metric": "confusion_matrix", "value": None, "n": s.n,
                 "details": {**d, "classes": s.classes, "columns": [*s.classes, "unknown"],
                             "matrix": s.matrix.tolist()}})
    return rows
