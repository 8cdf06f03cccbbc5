"""What every head shares: parameter handling, class weights, input checks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from memeatlas.errors import InputError
from memeatlas.ranges import Range, check_choice


def balanced_class_weight(y: np.ndarray, n_classes: int) -> np.ndarray:
    """w_c = n / (C · n_c): every class weighs the same in the loss, however many examples it has."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    w = np.zeros(n_classes)
    present = counts > 0
    w[present] = len(y) / (present.sum() * counts[present])
    return w


def coerce(value: Any, default: Any) -> Any:
    """A CLI string (`--param k=3`) as the type of the parameter's default ('none' → None)."""
    if not isinstance(value, str):
        return value
    v = value.strip()
    if v.lower() == "none":
        return None
    if isinstance(default, bool):
        return v.lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return int(v)
    if isinstance(default, float):
        return float(v)
    # A str or None default ('auto', None): a number when it reads as one.
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


class Head:
    """Base class: `DEFAULTS` lists the parameters; `params` holds those in use."""

    name: ClassVar[str] = ""
    DEFAULTS: ClassVar[dict[str, Any]] = {}
    # Valid values per parameter: a Range for numbers, a tuple of words for choices. Every
    # head's parameters pass here (CLI strings and Python values alike), before any work.
    RANGES: ClassVar[dict[str, Range | tuple[str, ...]]] = {}
    uses_class_names: ClassVar[bool] = False

    def __init__(self, **params: Any) -> None:
        p = dict(self.DEFAULTS)
        for k, v in params.items():
            p[k] = self.check_param(k, v)
        self.params = p
        self.n_classes = 0
        self.dims: list[int] = []
        self.info: dict[str, Any] = {}   # what fitting found (e.g. temperatures), for provenance

    @classmethod
    def check_param(cls, key: str, value: Any) -> Any:
        """One parameter in its type, or InputError naming it and its valid values."""
        spec = cls.RANGES.get(key)
        what = f"{cls.name} parameter {key}"
        if isinstance(spec, Range):
            return spec.check(what, value)
        if isinstance(spec, tuple):
            v = check_choice(what, value, spec)
            return None if v == "none" else v
        return coerce(value, cls.DEFAULTS.get(key))

    def _check(self, Xs: Sequence[np.ndarray]) -> list[np.ndarray]:
        Xs = [np.ascontiguousarray(x, dtype=np.float32) for x in Xs]
        if self.dims and [x.shape[1] for x in Xs] != self.dims:
            raise InputError(f"this {self.name} model expects spaces of dimension {self.dims}, "
                             f"got {[x.shape[1] for x in Xs]}")
        return Xs

    def fit(self, Xs: Sequence[np.ndarray], y: np.ndarray, n_classes: int, *,
            class_weight: np.ndarray | None = None, seed: int = 0,
            class_name_vectors: Sequence[np.ndarray | None] | None = None) -> Head:
        raise NotImplementedError

    def predict_proba(self, Xs: Sequence[np.ndarray]) -> np.ndarray:
        raise NotImplementedError
