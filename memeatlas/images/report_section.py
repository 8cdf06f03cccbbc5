"""The report's small "Near-duplicates and templates" section: data collected here, drawn by
the separate asset report_images.js, so the main report code stays untouched."""

from __future__ import annotations

from typing import Any

MAX_GROUPS = 12
MAX_MEMBERS = 6
MAX_TEMPLATES = 15


def image_structure(store, meme_ids: list[str], paths: list[Any],
                    thumb_paths: dict[int, str | None]) -> dict[str, Any] | None:
    """Newest near-duplicate run's largest groups and newest template run's counts, as meme
    indices of the report; adds the shown members to `thumb_paths`. None when neither ran."""
    if not store.table_exists("dup_runs"):
        return None
    index_of = {m: i for i, m in enumerate(meme_ids)}
    out: dict[str, Any] = {}
    dup = store.fetchone("SELECT run_id, params, n_memes, n_groups FROM dup_runs "
                         "ORDER BY updated_at DESC LIMIT 1")
    if dup:
        run_id, params, n_memes, n_groups = dup
        rows = store.fetchall(
            "SELECT group_id, n_memes, n_images, kind, meme_ids FROM near_duplicate_groups "
            "WHERE run_id = ? ORDER BY n_memes DESC, group_id LIMIT ?", [run_id, MAX_GROUPS])
        groups = []
        for gid, n, n_img, kind, members in rows:
            shown = [index_of[m] for m in members if m in index_of][:MAX_MEMBERS]
            for i in shown:
                thumb_paths.setdefault(i, paths[i] if isinstance(paths[i], str) else None)
            groups.append({"group": gid[:12], "n": int(n), "n_images": int(n_img),
                           "kind": kind, "members": shown})
        same = store.scalar("SELECT count(*) FROM near_duplicate_groups WHERE run_id = ? AND "
                            "kind = 'same_image'", [run_id])
        out["near_dups"] = {"run": run_id, "params": params, "n_memes": int(n_memes or 0),
                            "n_groups": int(n_groups or 0), "n_same_image": int(same or 0),
                            "groups": groups}
    tm = store.fetchone("SELECT run_id, gallery, threshold, n_templates FROM template_runs "
                        "ORDER BY created_at DESC LIMIT 1")
    if tm:
        run_id, gallery, thr, n_t = tm
        counts = store.fetchall(
            "SELECT template, count(*) FROM template_matches WHERE run_id = ? GROUP BY 1 "
            "ORDER BY 2 DESC, 1 LIMIT ?", [run_id, MAX_TEMPLATES])
        compared, agree = store.fetchone(
            "SELECT count(*) FILTER (WHERE agrees IS NOT NULL), count(*) FILTER (WHERE agrees) "
            "FROM meme_templates WHERE run_id = ?", [run_id])
        out["templates"] = {"run": run_id, "gallery": gallery, "threshold": round(thr, 4),
                            "n_templates": int(n_t or 0),
                            "counts": [[t, int(n)] for t, n in counts],
                            "vlm_compared": int(compared or 0), "vlm_agree": int(agree or 0)}
    return out or None
