"""Reciprocal rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009).

Each ranked list (semantic in a text space, semantic in an image space, BM25) contributes
w / (K + rank) to every meme it holds; memes are ordered by the sum. Ranks, not scores,
are fused, so cosine similarities and BM25 scores need no common scale.
"""

from __future__ import annotations

from collections.abc import Sequence

#: The constant of the original paper; larger values flatten the head of every list.
K = 60


def rrf(lists: Sequence[Sequence[str]], weights: Sequence[float] | None = None, *,
        k: int = K) -> list[tuple[str, float]]:
    """(meme_id, fused score) of every meme in any list, best first; ties by meme id."""
    weights = list(weights) if weights is not None else [1.0] * len(lists)
    if len(weights) != len(lists):
        raise ValueError(f"{len(weights)} weights for {len(lists)} lists")
    score: dict[str, float] = {}
    for ranked, w in zip(lists, weights, strict=True):
        for r, meme in enumerate(ranked, start=1):
            score[meme] = score.get(meme, 0.0) + w / (k + r)
    return sorted(score.items(), key=lambda kv: (-kv[1], kv[0]))
