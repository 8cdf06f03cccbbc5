"""Planted labelled corpora for classify tests: memes, labels and vectors written straight into the store."""

from __future__ import annotations

import numpy as np
from helpers_embed import add_meme, meme_id_for

from memeatlas.corpus.spaces import prepare_space, write_vectors
from memeatlas.provenance import utcnow


def norm(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def planted(n: int = 240, n_classes: int = 4, dim: int = 24, noise_dim: int = 12, spread: float = 0.7,
            seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y, informative vectors, pure-noise vectors): classes are separable in the first space only."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    centres = rng.normal(size=(n_classes, dim)) * 1.5
    return y, norm(centres[y] + spread * rng.normal(size=(n, dim))), norm(rng.normal(size=(n, noise_dim)))


def add_space(store, space: str, ids: list[str], X: np.ndarray, kind: str = "image", model: str = "planted"):
    prepare_space(store, space=space, kind=kind, model=model, dim=X.shape[1], recipe={"planted": True},
                  params={}, software={})
    write_vectors(store, space=space, model=model, ids=ids, vectors=X, input_hashes=[None] * len(ids))


def planted_store(store, n: int = 240, n_classes: int = 4, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Memes m0…m{n-1} (source_id = 's<i>') with spaces 'good' and 'noise'; returns (meme ids, y)."""
    y, good, noise = planted(n, n_classes, seed=seed)
    ids = [meme_id_for(f"planted:{i}") for i in range(n)]
    for i, m in enumerate(ids):
        add_meme(store, m)
        store.execute("UPDATE memes SET source_id = ?, added_at = ? WHERE meme_id = ?", [f"s{i}", utcnow(), m])
    add_space(store, "good", ids, good)
    add_space(store, "noise", ids, noise)
    return ids, y


def write_labels_csv(path, rows, header=("source_id", "coder", "label")):
    import csv

    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path
