"""The `images` lines of `memeatlas status`: near-duplicate groups and template matches."""

from __future__ import annotations


def status_rows(store) -> list[tuple[str, str, int]]:
    """(step, what, count) rows; none for a store without the tables (an older schema)."""
    if not store.table_exists("dup_runs"):
        return []
    out: list[tuple[str, str, int]] = []
    for run_id, n_memes, n_groups in store.fetchall(
            "SELECT run_id, n_memes, n_groups FROM dup_runs ORDER BY updated_at DESC"):
        grouped = store.scalar("SELECT count(*) FROM dup_members WHERE run_id = ? AND "
                               "group_size > 1", [run_id])
        same = store.scalar("SELECT count(*) FROM near_duplicate_groups WHERE run_id = ? AND "
                            "kind = 'same_image'", [run_id])
        out.append(("images", f"near-duplicate groups ({run_id})", int(n_groups or 0)))
        out.append(("images", "  of them one image (reposts)", int(same or 0)))
        out.append(("images", "  memes in groups", int(grouped or 0)))
        out.append(("images", "  memes compared", int(n_memes or 0)))
    for run_id, gallery, n_known, n_unknown in store.fetchall(
            "SELECT r.run_id, r.gallery, count(*) FILTER (WHERE m.template <> 'unknown'), "
            "count(*) FILTER (WHERE m.template = 'unknown') FROM template_runs r "
            "JOIN template_matches m USING (run_id) GROUP BY 1, 2 ORDER BY 1"):
        name = str(gallery).rstrip("/").rsplit("/", 1)[-1]
        out.append(("images", f"template matches ({name}, {run_id})", int(n_known or 0)))
        out.append(("images", "  unknown template", int(n_unknown or 0)))
    return out
