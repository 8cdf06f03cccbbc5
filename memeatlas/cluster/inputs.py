"""Reading and aligning the vectors a clustering runs on."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from memeatlas.errors import InputError, NotFoundError


def _load_space_direct(store, space: str, meme_ids: Sequence[str] | None = None
                       ) -> tuple[list[str], np.ndarray]:
    """Fallback reader of the `embeddings` table (used if memeatlas.embed is unavailable)."""
    rows = store.fetchall("SELECT meme_id, vector FROM embeddings WHERE space = ? "
                          "ORDER BY meme_id", [space])
    if meme_ids is not None:
        keep = set(meme_ids)
        rows = [r for r in rows if r[0] in keep]
    if not rows:
        return [], np.zeros((0, 0), dtype=np.float32)
    return [r[0] for r in rows], np.asarray([r[1] for r in rows], dtype=np.float32)


def load_space(store, space: str, meme_ids: Sequence[str] | None = None
               ) -> tuple[list[str], np.ndarray]:
    """(ids sorted, float32 matrix) of one space via memeatlas.embed.load_space."""
    try:
        from memeatlas.embed import load_space as embed_load
    except ImportError:
        embed_load = None
    if embed_load is None:
        try:
            from memeatlas.embed.space import load_space as embed_load
        except ImportError:
            embed_load = None
    if embed_load is not None:
        return embed_load(store, space, meme_ids=meme_ids) if meme_ids is not None \
            else embed_load(store, space)
    if not store.scalar("SELECT count(*) FROM embeddings WHERE space = ?", [space]):
        raise NotFoundError(f"no embedding space {space!r}; run `memeatlas embed` first")
    return _load_space_direct(store, space, meme_ids)


def filtered_ids(store, where: str | None) -> set[str] | None:
    """meme_ids of `memes` matching a user SQL condition (None: no filter)."""
    if not where:
        return None
    try:
        return {r[0] for r in store.fetchall(f"SELECT meme_id FROM memes m WHERE {where}")}
    except Exception as exc:  # duckdb errors → user-facing
        raise InputError(f"--where {where!r} is not a valid condition on the memes table: "
                         f"{exc}") from None


def load_aligned(store, spaces: Sequence[str], where: str | None = None,
                 meme_ids: Sequence[str] | None = None
                 ) -> tuple[list[str], list[np.ndarray]]:
    """Vectors of every space for the memes present in all of them (sorted by meme_id)."""
    if not spaces:
        raise InputError("give at least one --space")
    if len(set(spaces)) != len(spaces):
        raise InputError(f"--space given twice: {list(spaces)}")
    keep = filtered_ids(store, where)
    loaded = [load_space(store, s, meme_ids=meme_ids) for s in spaces]
    common = set(loaded[0][0])
    for ids, _ in loaded[1:]:
        common &= set(ids)
    if keep is not None:
        common &= keep
    ids = sorted(common)
    if not ids:
        raise InputError(f"no meme has vectors in all of {', '.join(spaces)}"
                         + (f" and matches --where {where!r}" if where else "")
                         + "; run `memeatlas embed` for them first")
    mats = []
    for space_ids, m in loaded:
        pos = {mid: i for i, mid in enumerate(space_ids)}
        mats.append(np.ascontiguousarray(m[[pos[i] for i in ids]], dtype=np.float32))
    return ids, mats
