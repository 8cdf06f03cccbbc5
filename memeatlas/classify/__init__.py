"""Classify: learn known categories from labelled memes and apply them to the rest.

Public API (heavy libraries load only when a function is called)::

    from memeatlas.classify import import_labels, train, predict
    import_labels(store, "coded.csv", task="stance", coder="ana")
    s = train(store, TrainConfig(task="stance", spaces=["text:description+intent"], head="knn"))
    predict(store, s.model_id)          # rows in class_predictions / latest_class_predictions
"""

from __future__ import annotations

from memeatlas.lazy import lazy_exports

_EXPORTS = {
    "import_labels": "memeatlas.classify.labels",
    "labels_from_meta": "memeatlas.classify.labels",
    "load_labels": "memeatlas.classify.labels",
    "TrainConfig": "memeatlas.classify.train",
    "train": "memeatlas.classify.train",
    "predict": "memeatlas.classify.predict",
    "evaluate_model": "memeatlas.classify.predict",
    "HEADS": "memeatlas.classify.heads",
    "make_head": "memeatlas.classify.heads",
    "tune_encoder": "memeatlas.classify.metric",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
