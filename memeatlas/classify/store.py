"""Reading and writing trained classifiers (`classify_models`)."""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from typing import Any

from memeatlas.errors import NotFoundError


@dataclass
class ModelInfo:
    """One `classify_models` row, without the blob."""

    model_id: str
    task: str
    head: str
    spaces: list[str]
    classes: list[str]
    params: dict[str, Any]
    seed: int
    n_train: int
    fingerprint: str
    threshold: float
    cv: dict[str, Any]
    created_at: Any


_COLS = "model_id, task, head, spaces, classes, params, seed, n_train, fingerprint, threshold, cv, created_at"


def _info(row: tuple) -> ModelInfo:
    (mid, task, head, spaces, classes, params, seed, n, fp, thr, cv, created) = row
    return ModelInfo(mid, task, head, json.loads(spaces), json.loads(classes), json.loads(params or "{}"),
                     seed, n, fp, float(thr or 0.0), json.loads(cv or "{}"), created)


def list_models(store, task: str | None = None) -> list[ModelInfo]:
    sql = f"SELECT {_COLS} FROM classify_models"
    params: list = []
    if task:
        sql += " WHERE task = ?"
        params.append(task)
    return [_info(r) for r in store.fetchall(sql + " ORDER BY created_at, model_id", params)]


def get_model(store, model: str, task: str | None = None) -> ModelInfo:
    """A model by id, or the newest one (of `task`) for 'latest'."""
    models = list_models(store, task if model == "latest" else None)
    if model == "latest":
        if not models:
            raise NotFoundError("no trained classifier" + (f" for task {task!r}" if task else "")
                                + " in this database; run `memeatlas classify train` first")
        return models[-1]
    for m in models:
        if m.model_id == model:
            return m
    shown = ", ".join(m.model_id for m in models[-10:])
    raise NotFoundError(f"classifier {model!r} not found; models here: {shown or '(none)'}")


def load_head(store, model_id: str):
    """(fitted head, fitted lexical transforms by space) of a stored model."""
    blob = store.scalar("SELECT model FROM classify_models WHERE model_id = ?", [model_id])
    if blob is None:
        raise NotFoundError(f"classifier {model_id!r} has no stored model")
    obj = pickle.loads(bytes(blob))
    return obj["head"], obj.get("lexical") or {}
