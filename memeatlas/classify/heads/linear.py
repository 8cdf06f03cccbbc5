"""`linear`: a logistic-regression probe (scikit-learn) on the concatenated spaces."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from memeatlas.classify.heads.base import Head, balanced_class_weight
from memeatlas.ranges import Range


class LinearHead(Head):
    """Multinomial logistic regression, L2-penalised (C), class-weighted, on [x_1 | x_2 | …]."""

    name = "linear"
    DEFAULTS = {"C": 10.0, "max_iter": 2000, "class_weight": "balanced"}
    RANGES = {"C": Range(0, 1e6, lo_open=True), "max_iter": Range(1, 1_000_000, integer=True),
              "class_weight": ("balanced", "none")}

    def fit(self, Xs, y, n_classes, *, class_weight=None, seed=0, class_name_vectors=None):
        from sklearn.linear_model import LogisticRegression

        Xs = self._check(Xs)
        self.dims = [x.shape[1] for x in Xs]
        self.n_classes = n_classes
        X = np.hstack(Xs)
        cw = None
        if self.params["class_weight"] == "balanced":
            w = class_weight if class_weight is not None else balanced_class_weight(y, n_classes)
            cw = {int(c): float(w[c]) for c in np.unique(y)}
        self.model = LogisticRegression(C=float(self.params["C"]), max_iter=int(self.params["max_iter"]),
                                        class_weight=cw, random_state=seed)
        self.model.fit(X, y)
        return self

    def predict_proba(self, Xs: Sequence[np.ndarray]) -> np.ndarray:
        Xs = self._check(Xs)
        p = self.model.predict_proba(np.hstack(Xs))
        out = np.zeros((p.shape[0], self.n_classes))
        out[:, self.model.classes_] = p  # a class absent from a CV fold keeps probability 0
        return out
