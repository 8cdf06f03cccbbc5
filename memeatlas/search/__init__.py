"""Search: memes by meaning, by words, or by example, in the CLI and inside `memeatlas sql`.

Public API (heavy libraries load only when a function is called)::

    from memeatlas.search import SearchRequest, search
    result = search(store, SearchRequest(query="student debt", k=20))
    for hit in result.hits:
        print(hit.rank, hit.meme_id, hit.text)

Indexes live beside the store in `<store>.search/` (memeatlas.search.indexes) and are
brought up to date before every search.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from memeatlas.lazy import lazy_exports

_EXPORTS = {
    "SearchRequest": "memeatlas.search.query",
    "SearchResult": "memeatlas.search.query",
    "Hit": "memeatlas.search.query",
    "search": "memeatlas.search.query",
    "open_searcher": "memeatlas.search.query",
    "open_vectors": "memeatlas.search.indexes",
    "open_lexical": "memeatlas.search.indexes",
    "index_root": "memeatlas.search.indexes",
    "rrf": "memeatlas.search.fusion",
}

__all__ = [
    "Hit", "SearchRequest", "SearchResult", "index_root", "open_lexical", "open_searcher",
    "open_vectors", "rrf", "search",
]

if TYPE_CHECKING:  # pragma: no cover
    from memeatlas.search.fusion import rrf
    from memeatlas.search.indexes import index_root, open_lexical, open_vectors
    from memeatlas.search.query import Hit, SearchRequest, SearchResult, open_searcher, search


__getattr__ = lazy_exports(__name__, _EXPORTS)
