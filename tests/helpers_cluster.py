"""Synthetic memes and embeddings for the cluster tests (written straight into the store)."""

from __future__ import annotations

import hashlib
import json

import numpy as np


def meme_id(i: int) -> str:
    return hashlib.sha256(f"meme-{i}".encode()).hexdigest()


def blobs(n_per: int, n_clusters: int, dim: int = 64, spread: float = 0.1, seed: int = 0,
          latent: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Well-separated clusters on the unit sphere: random centres + low-rank in-cluster noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    basis = rng.normal(size=(n_clusters, latent, dim)) / np.sqrt(dim)
    labels = np.repeat(np.arange(n_clusters), n_per)
    z = rng.normal(size=(labels.size, latent))
    x = centres[labels] + spread * np.einsum("nl,nld->nd", z, basis[labels]) * np.sqrt(dim / latent)
    x += 0.02 * rng.normal(size=x.shape)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    perm = rng.permutation(labels.size)
    return x[perm].astype(np.float32), labels[perm]


def add_memes(store, ids: list[str], texts: list[str] | None = None,
              annotator: str = "human:test") -> None:
    """Rows in `memes` (and, with texts, one annotation each whose description is the text)."""
    for i, mid in enumerate(ids):
        store.execute("INSERT OR IGNORE INTO memes (meme_id, path, source, has_image) "
                      "VALUES (?, ?, 'folder', false)", [mid, f"/tmp/{mid[:8]}.png"])
        if texts is not None:
            store.execute(
                "INSERT OR REPLACE INTO annotations (meme_id, annotator, prompt_hash, "
                "schema_hash, description, intent, ocr_text) VALUES (?, ?, '', '', ?, '', '')",
                [mid, annotator, texts[i]])


def add_space(store, space: str, ids: list[str], x: np.ndarray, *, kind: str = "text",
              model: str = "synthetic", params: dict | None = None,
              annotator: str | None = None) -> None:
    """An embedding space with the given vectors (rows L2-normalised here)."""
    x = np.asarray(x, dtype=np.float32)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    dim = int(x.shape[1])
    store.execute("INSERT OR IGNORE INTO embedding_spaces (space, kind, model, dim, params) "
                  "VALUES (?, ?, ?, ?, ?)", [space, kind, model, dim, json.dumps(params or {})])
    import pandas as pd

    df = pd.DataFrame({"meme_id": ids, "vector": [row.tolist() for row in x]})
    store.con.register("_t_vecs", df)
    store.execute("INSERT INTO embeddings (meme_id, space, model, dim, vector, annotator) "
                  "SELECT meme_id, ?, ?, ?, vector::FLOAT[], ? FROM _t_vecs",
                  [space, model, dim, annotator])
    store.con.unregister("_t_vecs")


def synthetic_store(store, *, n_per: int = 60, n_clusters: int = 4, dim: int = 64,
                    seed: int = 0, space: str = "text:synthetic"):
    """Memes + one space of separated clusters; returns (ids, vectors, true labels)."""
    x, y = blobs(n_per, n_clusters, dim=dim, seed=seed)
    ids = [meme_id(i) for i in range(len(y))]
    add_memes(store, ids)
    add_space(store, space, ids, x)
    return ids, x, y
