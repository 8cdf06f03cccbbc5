"""How many of the store's memes a report's run covers, and why the rest are absent.

A run clusters the memes its space(s) embedded; memes the embed step left out (no
annotation by the space's annotator, empty text, no image, unreadable image), memes the
run's --where excluded, and memes embedded after the run are not in it. The report says so instead of showing a smaller corpus
without a word.
"""

from __future__ import annotations

import json
from typing import Any

from memeatlas.leftout import counted


def _space_names(run: dict[str, Any]) -> list[str]:
    spaces = run.get("spaces")
    if isinstance(spaces, str):
        try:
            spaces = json.loads(spaces)
        except ValueError:
            spaces = None
    if isinstance(spaces, list) and spaces:
        return [s["space"] if isinstance(s, dict) else str(s) for s in spaces]
    return [run["space"]] if run.get("space") else []


def coverage(store, run: dict[str, Any], n_in_run: int) -> dict[str, Any]:
    """{"in_store", "in_run", "absent": {reason: n}, "note"} for the run's memes."""
    total = int(store.scalar("SELECT count(*) FROM memes"))
    absent: dict[str, int] = {}
    if total > n_in_run:
        # Each absent meme is counted once, under the first reason that applies to it.
        reasons: list[tuple[str, str, list[Any]]] = []
        not_in = ("NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.meme_id = m.meme_id "
                  "AND e.space = ?)")
        for space in _space_names(run):
            row = store.fetchone("SELECT kind, params FROM embedding_spaces WHERE space = ?",
                                 [space])
            kind, params = (row[0], row[1]) if row else (None, None)
            params = json.loads(params) if isinstance(params, str) else (params or {})
            recipe = params.get("recipe") or {}
            if kind == "image":
                reasons.append(("no image", "NOT m.has_image OR m.path IS NULL", []))
                reasons.append((f"image not embedded in {space} (unreadable?)", not_in, [space]))
            elif kind == "text" and recipe.get("annotator"):
                who = recipe["annotator"]
                fields = "/".join(recipe.get("fields") or []) or "text"
                reasons.append((f"no annotation by {who}",
                                "NOT EXISTS (SELECT 1 FROM annotations a WHERE a.meme_id = "
                                "m.meme_id AND a.annotator = ?)", [who]))
                reasons.append((f"empty {fields}", not_in, [space]))
            else:
                reasons.append((f"not embedded in {space}", not_in, [space]))
        reasons.append(("embedded but not in this run (--where, or embedded after it)", "true",
                        []))
        case = " ".join(f"WHEN {cond} THEN {i}" for i, (_, cond, _) in enumerate(reasons))
        binds = [v for _, _, ps in reasons for v in ps] + [run["run_id"]]
        for i, n in store.fetchall(
                f"SELECT CASE {case} END AS why, count(*) FROM memes m WHERE m.meme_id NOT IN "
                f"(SELECT meme_id FROM cluster_assignments WHERE run_id = ?) GROUP BY 1 "
                f"ORDER BY 1", binds):
            absent[reasons[int(i)][0]] = int(n)
    note = f"covers {n_in_run:,} of the store's {total:,} memes"
    if absent:
        note += f"; {counted(absent).replace(' (', ' absent (', 1)}"
    return {"in_store": total, "in_run": n_in_run, "absent": absent, "note": note}
