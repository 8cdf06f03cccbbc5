"""Embed: text embeddings of annotation fields and image embeddings, stored in DuckDB.

Public API (heavy libraries load only when a function is called)::

    from memeatlas.embed import TextEmbedConfig, embed_text, load_space
    summary = embed_text(store, TextEmbedConfig(fields=("description", "intent")))
    ids, X = load_space(store, summary.space)   # X: float32 [n, dim], rows L2-normalised
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from memeatlas.lazy import lazy_exports

_EXPORTS = {
    "TextEmbedConfig": "memeatlas.embed.config",
    "ImageEmbedConfig": "memeatlas.embed.config",
    "EmbedSummary": "memeatlas.embed.config",
    "embed_text": "memeatlas.embed.run",
    "embed_image": "memeatlas.embed.run",
    "load_space": "memeatlas.corpus.spaces",
    "list_spaces": "memeatlas.corpus.spaces",
    "get_space": "memeatlas.corpus.spaces",
    "SpaceInfo": "memeatlas.corpus.spaces",
}

__all__ = [
    "EmbedSummary", "ImageEmbedConfig", "SpaceInfo", "TextEmbedConfig", "embed_image",
    "embed_text", "get_space", "list_spaces", "load_space",
]

if TYPE_CHECKING:  # pragma: no cover
    from memeatlas.corpus.spaces import SpaceInfo, get_space, list_spaces, load_space
    from memeatlas.embed.config import EmbedSummary, ImageEmbedConfig, TextEmbedConfig
    from memeatlas.embed.run import embed_image, embed_text


__getattr__ = lazy_exports(__name__, _EXPORTS)
