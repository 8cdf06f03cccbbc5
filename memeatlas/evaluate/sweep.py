"""CQ against a clustering parameter (min_cluster_size by default) across a sweep of runs.

This is the curve Arminio et al. (2025, fig. 2) plot for VLM-description clustering against VGG16
features: one line per embedding space, one panel per rating dimension, CQ with its bootstrap 95 % CI
on the y axis. The runs are whatever `memeatlas cluster` produced (e.g. one run per
min_cluster_size); the x value is read from each run's params JSON (searched at any depth).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memeatlas.corpus.runs import get_run_info
from memeatlas.errors import InputError
from memeatlas.evaluate.common import resolve_runs
from memeatlas.evaluate.quality import quality


def find_param(params: Any, key: str) -> Any:
    """The value of `key` anywhere in a nested params dict (first match, breadth first); None if absent."""
    queue = [params]
    while queue:
        cur = queue.pop(0)
        if isinstance(cur, dict):
            if key in cur and not isinstance(cur[key], (dict, list)):
                return cur[key]
            queue.extend(cur.values())
        elif isinstance(cur, list):
            queue.extend(cur)
    return None


@dataclass
class SweepResult:
    pair_set: str
    param: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    png: Path | None = None
    eval_id: str | None = None
    columns: tuple[str, ...] = ("series", "dimension", "param", "run", "cq", "ci_low", "ci_high",
                                "n_within", "n_between", "clusters", "noise_fraction")


def sweep(store, runs, pair_set: str, *, param: str = "min_cluster_size", series: str = "space",
          dimension: str | None = None, bootstrap: int = 2000, seed: int = 0, noise: str = "assigned",
          weights: str = "auto", png: str | Path | None = None, save: bool = True) -> SweepResult:
    """CQ (with CI) for each run, keyed by `param` and grouped into series by `series`.

    `series` is a cluster_runs column (space, algorithm, name, kind) or a params key. Stored in
    `evaluations` with command 'sweep'; a PNG is written when `png` is given.
    """
    run_ids = resolve_runs(store, runs)
    infos = {r: get_run_info(store, r) for r in run_ids}
    xs: dict[str, Any] = {}
    missing = []
    for r in run_ids:
        x = find_param(infos[r].get("params") or {}, param)
        if x is None:
            missing.append(r)
        xs[r] = x
    if missing:
        raise InputError(f"runs without a {param!r} parameter: {', '.join(missing[:10])}; pass --param "
                         f"with a key of their params JSON")
    q = quality(store, run_ids, pair_set, dimension=dimension, bootstrap=bootstrap, seed=seed, noise=noise,
                weights=weights, save=save, deltas=False, command="sweep")
    res = SweepResult(pair_set=pair_set, param=param, notes=list(q.notes), eval_id=q.eval_id)
    for row in q.rows:
        r = row["run"]
        info = infos[r]
        s = info.get(series)
        if s is None:
            s = find_param(info.get("params") or {}, series)
        res.rows.append({"series": str(s if s is not None else r), "dimension": row["dimension"],
                         "param": xs[r], "run": r, "cq": row["value"], "ci_low": row["ci_low"],
                         "ci_high": row["ci_high"], "n_within": row["n_within"],
                         "n_between": row["n_between"], "clusters": info.get("n_clusters"),
                         "noise_fraction": info.get("noise_fraction")})
    res.rows.sort(key=lambda r: (r["dimension"], r["series"], _sort_key(r["param"])))
    if png is not None:
        res.png = plot(res, png)
    return res


def _sort_key(x: Any):
    try:
        return (0, float(x), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(x))


def plot(res: SweepResult, out: str | Path) -> Path:
    """One panel per dimension, one line per series, CQ with 95 % CI error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims = sorted({r["dimension"] for r in res.rows})
    fig, axes = plt.subplots(1, max(1, len(dims)), figsize=(5.2 * max(1, len(dims)), 4), squeeze=False,
                             sharey=True)
    for ax, dim in zip(axes[0], dims, strict=False):
        rows = [r for r in res.rows if r["dimension"] == dim]
        for s in sorted({r["series"] for r in rows}):
            pts = [r for r in rows if r["series"] == s]
            x = [_sort_key(r["param"])[1] if _sort_key(r["param"])[0] == 0 else i for i, r in enumerate(pts)]
            y = [r["cq"] for r in pts]
            lo = [0 if math.isnan(r["ci_low"]) else r["cq"] - r["ci_low"] for r in pts]
            hi = [0 if math.isnan(r["ci_high"]) else r["ci_high"] - r["cq"] for r in pts]
            ax.errorbar(x, y, yerr=[lo, hi], marker="o", capsize=3, label=s)
        ax.axhline(0, color="grey", lw=0.8, ls=":")
        ax.set_title(f"{dim}")
        ax.set_xlabel(res.param)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("cluster quality (CQ)")
    axes[0][-1].legend(fontsize=8, loc="best")
    fig.suptitle(f"CQ against {res.param} — pair set {res.pair_set}", fontsize=10)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
