"""Writing rows of the shared `evaluations` table (evaluate, classify, ... all record results there)."""

from __future__ import annotations

import math
from typing import Any

from memeatlas.provenance import stable_json, utcnow


def store_evaluations(store, eval_id: str, command: str, rows: list[dict[str, Any]]) -> None:
    """Insert result rows into `evaluations` (one transaction)."""
    now = utcnow()
    cols = ("eval_id", "run_id", "metric", "value", "ci_low", "ci_high", "n", "details", "created_at",
            "pair_set", "dimension", "command")
    data = [(eval_id, r.get("run_id"), r["metric"], _num(r.get("value")), _num(r.get("ci_low")),
             _num(r.get("ci_high")), None if r.get("n") is None else int(r["n"]),
             stable_json(_clean(r.get("details") or {})), now, r.get("pair_set"), r.get("dimension"), command)
            for r in rows]
    with store.transaction():
        store.insert_rows("evaluations", cols, data)


def _clean(obj: Any) -> Any:
    """NaN → None and numpy scalars → Python, so details are valid JSON."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj


def _num(v: Any) -> float | None:
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) else v
