"""The study steps of the offline demo: timestamps from the manifest, trends, a hierarchy."""

from __future__ import annotations

from memeatlas.errors import MemeatlasError


def demo_study(store, run_id: str | None, *, key: str = "posted", force: bool = False
               ) -> tuple[int, str]:
    """Timestamps from the demo manifest's `posted` column, weekly trends and the cluster tree
    of `run_id`. Returns (steps that wrote something, a one-line note); stored work is reused."""
    from memeatlas.study.hierarchy import hierarchy
    from memeatlas.study.times import set_timestamps
    from memeatlas.study.trends import trends

    if not run_id:
        return 0, "no text run"
    work = 0
    have = store.scalar("SELECT count(*) FROM meme_times WHERE source = ?", [f"meta:{key}"])
    want = store.scalar("SELECT count(*) FROM memes WHERE meta ->> ? IS NOT NULL", [key])
    if force or have < want:
        set_timestamps(store, key)
        work += 1
    s = trends(store, run_id, period="week", force=force)
    work += not s.skipped
    parts = [f"{want} timestamps", f"{s.n_periods} weeks",
             f"rising {s.rising or '-'}", f"fading {s.fading or '-'}"]
    try:
        h = hierarchy(store, run_id, force=force)
        work += not h.skipped
        parts.append(f"tree of {h.n_leaves} clusters ({h.method})")
    except MemeatlasError as exc:  # e.g. a tiny --n demo with a single cluster
        parts.append(f"no tree ({exc})")
    return work, ", ".join(parts)
