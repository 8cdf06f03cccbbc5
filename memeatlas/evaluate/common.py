"""Helpers shared by the evaluate modules: resolving runs, loading assignments, rendering tables."""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from memeatlas.errors import InputError, NotFoundError
from memeatlas.provenance import new_run_id
from memeatlas.store.evaluations import store_evaluations  # noqa: F401  (re-exported)

NOISE = -1
NOISE_MODES = ("assigned", "apart", "drop", "cluster")
DEFAULT_NOISE = "assigned"
FORMATS = ("table", "csv", "json")


def parse_list(value: str | Sequence[str] | None) -> list[str]:
    """'a,b, c' (or a list of such strings) → ['a', 'b', 'c'], dropping empties and duplicates."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    return out


def resolve_runs(store, runs: str | Sequence[str], *, min_runs: int = 1) -> list[str]:
    """Run ids from a comma list; items may be shell patterns (`text-*`) or `latest`.

    Raises NotFoundError naming the missing run and the runs that exist.
    """
    wanted = parse_list(runs)
    if not wanted:
        raise InputError("no runs given; pass --runs RUN_ID[,RUN_ID...] (see `memeatlas sql "
                         "\"SELECT run_id, space, n_clusters FROM cluster_runs\"`)")
    rows = store.fetchall("SELECT run_id FROM cluster_runs ORDER BY created_at, run_id")
    known = [r[0] for r in rows]
    # Runs with assignments but no cluster_runs row (e.g. written by hand) still count.
    for (rid,) in store.fetchall("SELECT DISTINCT run_id FROM cluster_assignments ORDER BY run_id"):
        if rid not in known:
            known.append(rid)
    out: list[str] = []
    for w in wanted:
        if w == "latest":
            if not known:
                raise NotFoundError("no clustering runs in this database; run `memeatlas cluster` first")
            matches = [known[-1]]
        elif any(ch in w for ch in "*?["):
            matches = [k for k in known if fnmatch.fnmatchcase(k, w)]
        else:
            matches = [w] if w in known else []
        if not matches:
            shown = ", ".join(known[:10]) + (" ..." if len(known) > 10 else "")
            raise NotFoundError(f"clustering run {w!r} not found; runs in this database: "
                                f"{shown or '(none)'}")
        for m in matches:
            if m not in out:
                out.append(m)
    if len(out) < min_runs:
        raise InputError(f"this command needs at least {min_runs} runs, got {len(out)}: {', '.join(out)}")
    return out


def load_assignments(store, run_ids: Iterable[str], *, assigned: bool = False
                     ) -> dict[str, dict[str, int]]:
    """{run_id: {meme_id: cluster}} for the given runs (cluster −1 = noise), read from the one
    membership (`cluster_membership`) the report, label and cluster_members use.

    `assigned`: memes assigned from noise (soft membership at least the run's assign floor)
    are in their cluster; otherwise only core members are, every other meme is −1.
    """
    from memeatlas.cluster.config import member_cluster_sql

    col = member_cluster_sql("assigned" if assigned else "apart")
    out: dict[str, dict[str, int]] = {}
    for rid in run_ids:
        rows = store.fetchall(
            f"SELECT meme_id, {col} FROM cluster_membership WHERE run_id = ?", [rid])
        out[rid] = {m: int(c) for m, c in rows}
    return out


def check_noise(noise: str) -> str:
    if noise not in NOISE_MODES:
        raise InputError(f"--noise must be one of {', '.join(NOISE_MODES)}, got {noise!r}")
    return noise


NOISE_TEXT = {
    "assigned": "memes assigned from noise (soft membership at least the run's assign floor) are "
                "in that cluster; the rest of the noise (cluster -1) counts as apart",
    "apart": "noise points (cluster -1) are in no cluster: every pair with a noise point counts as apart",
    "drop": "pairs with a noise point (cluster -1) in a run are left out for that run",
    "cluster": "noise points (cluster -1) form one cluster of their own",
}


def together(ca: int, cb: int, noise: str) -> bool | None:
    """Whether a clustering puts two memes together; None when the pair is dropped."""
    if ca == NOISE or cb == NOISE:
        if noise in ("apart", "assigned"):
            return False
        if noise == "drop":
            return None
    return ca == cb


def new_eval_id(kind: str) -> str:
    return new_run_id(f"eval-{kind}")


def fmt_value(v: Any, digits: int = 3) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:.{digits}f}"
    return str(v)


def render(rows: list[dict[str, Any]], columns: Sequence[str], fmt: str = "table",
           digits: int = 3) -> str:
    """Rows as an aligned plain-text table, CSV or JSON (the `--format` of every evaluate command)."""
    if fmt not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "json":
        clean = [{c: (None if isinstance(r.get(c), float) and math.isnan(r[c]) else r.get(c))
                  for c in columns} for r in rows]
        return json.dumps(clean, indent=2, default=str) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow(["" if r.get(c) is None else r.get(c) for c in columns])
        return buf.getvalue()
    cells = [[fmt_value(r.get(c), digits) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]

    def line(vals: Sequence[str]) -> str:
        out = []
        for i, v in enumerate(vals):
            # Numbers right-aligned, text left-aligned: easier to scan a column of CIs.
            numeric = all(_is_num(row[i]) for row in cells) if cells else False
            out.append(v.rjust(widths[i]) if numeric else v.ljust(widths[i]))
        return "  ".join(out).rstrip()

    lines = [line(columns), "  ".join("-" * w for w in widths)]
    lines += [line(row) for row in cells]
    return "\n".join(lines) + "\n"


def _is_num(s: str) -> bool:
    if s in ("", "nan"):
        return True
    try:
        float(s)
        return True
    except ValueError:
        return False

