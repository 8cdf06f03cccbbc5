"""Reading and aligning the vectors a clustering runs on."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from memeatlas.errors import InputError


def load_space(store, space: str, meme_ids: Sequence[str] | None = None
               ) -> tuple[list[str], np.ndarray]:
    """(ids sorted, float32 matrix) of one space: `memeatlas.embed.load_space`."""
    from memeatlas.corpus.spaces import load_space as embed_load

    return embed_load(store, space, meme_ids=meme_ids)


def filtered_ids(store, where: str | None) -> set[str] | None:
    """meme_ids of `memes` matching the user's --where (None: no filter); checked and
    evaluated in a sandbox, never run on the store's connection (memeatlas.corpus.where)."""
    from memeatlas.corpus.where import where_ids

    return where_ids(store, where)


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
    if len(loaded) == 1 and len(ids) == len(loaded[0][0]):
        return ids, [np.ascontiguousarray(loaded[0][1], dtype=np.float32)]  # already in id order
    mats = []
    for space_ids, m in loaded:
        pos = {mid: i for i, mid in enumerate(space_ids)}
        mats.append(np.ascontiguousarray(m[[pos[i] for i in ids]], dtype=np.float32))
    return ids, mats
