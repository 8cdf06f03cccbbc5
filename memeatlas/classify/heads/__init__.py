"""Classifier heads, chosen by name. Each turns one or several aligned vector spaces into class probabilities.

Every head has ``fit(Xs, y, n_classes, class_weight=..., seed=..., class_name_vectors=...)`` and
``predict_proba(Xs) -> [n, n_classes]``, a ``params`` dict (defaults filled in) and pickles with
plain numpy state, so a stored model loads without the training code's globals.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from memeatlas.errors import InputError

# name -> "module:Class"; factories import torch / scikit-learn only when used.
HEADS: dict[str, str] = {
    "knn": "memeatlas.classify.heads.knn:KnnHead",
    "linear": "memeatlas.classify.heads.linear:LinearHead",
    "adapter": "memeatlas.classify.heads.adapter:AdapterHead",
    "mlp": "memeatlas.classify.heads.mlp:MlpHead",
}


def head_class(name: str):
    """The head class registered as `name`; an unknown name lists the valid ones."""
    target = HEADS.get(name)
    if target is None:
        raise InputError(f"unknown head {name!r}; choose one of: {', '.join(HEADS)}")
    mod, cls = target.split(":")
    return getattr(import_module(mod), cls)


def make_head(name: str, params: dict[str, Any] | None = None):
    """A new, unfitted head `name` with `params` (unknown parameters are an error naming the valid ones)."""
    cls = head_class(name)
    params = dict(params or {})
    bad = sorted(set(params) - set(cls.DEFAULTS))
    if bad:
        raise InputError(f"head {name!r} has no parameter {', '.join(bad)}; its parameters: "
                         f"{', '.join(f'{k}={v}' for k, v in cls.DEFAULTS.items())}")
    return cls(**params)
