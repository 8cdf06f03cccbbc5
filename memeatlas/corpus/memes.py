"""Which meme a user means: meme ids and corpus source ids, and row errors of imported files.

Shared by every step that reads ids from a user's file (ratings, class labels, selections).
"""

from __future__ import annotations

from pathlib import Path

from memeatlas.errors import InputError

MAX_ERRORS_SHOWN = 20


class RowErrors:
    """Row problems of an imported file, raised together: nothing is imported while any remain."""


    def __init__(self) -> None:
        self.items: list[tuple[int, str]] = []

    def add(self, line: int, msg: str) -> None:
        self.items.append((line, msg))

    def raise_if_any(self, path: Path) -> None:
        if not self.items:
            return
        self.items.sort(key=lambda t: t[0])
        shown = [f"  line {ln}: {msg}" for ln, msg in self.items[:MAX_ERRORS_SHOWN]]
        more = len(self.items) - MAX_ERRORS_SHOWN
        if more > 0:
            shown.append(f"  ... and {more} more")
        lines = sorted({ln for ln, _ in self.items})
        raise InputError(
            f"{path}: {len(self.items)} problem(s) on {len(lines)} row(s); nothing was imported. "
            f"Fix the rows and import the file again:\n" + "\n".join(shown))


def meme_resolver(store):
    """meme id or corpus source id → meme_id (None if unknown, 'AMBIGUOUS' if several)."""
    ids = {r[0] for r in store.fetchall("SELECT meme_id FROM memes")}
    by_source: dict[str, set[str]] = {}
    for mid, sid in store.fetchall("SELECT meme_id, source_id FROM memes WHERE source_id IS NOT NULL"):
        by_source.setdefault(str(sid), set()).add(mid)
    if store.table_exists("meme_sources"):
        for mid, sid in store.fetchall(
                "SELECT meme_id, source_id FROM meme_sources WHERE source_id IS NOT NULL"):
            by_source.setdefault(str(sid), set()).add(mid)

    def resolve(text: str) -> str | None:
        if text in ids:
            return text
        hits = by_source.get(text)
        if not hits:
            return None
        if len(hits) > 1:
            return "AMBIGUOUS"
        return next(iter(hits))

    return resolve
