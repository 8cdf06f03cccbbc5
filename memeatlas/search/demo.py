"""The demo's search step: one hybrid query over the demo corpus, scored by its themes."""

from __future__ import annotations

DEMO_QUERY = "coffee on monday morning"
DEMO_THEME = "monday"


def demo_search(store, k: int = 10) -> tuple[int, str]:
    """(hits, one-line summary) of `memeatlas search DEMO_QUERY` on the demo store, with how
    many hits are memes of the theme the query is about (the manifest's `theme`)."""
    from memeatlas.search.query import SearchRequest, search

    res = search(store, SearchRequest(query=DEMO_QUERY, k=k))
    ids = [h.meme_id for h in res.hits]
    on_theme = store.scalar(
        "SELECT count(*) FROM memes WHERE meme_id IN (SELECT unnest($ids::VARCHAR[])) AND "
        "meta->>'theme' = $t", {"ids": ids, "t": DEMO_THEME}) if ids else 0
    return len(ids), (f'"{DEMO_QUERY}" ({res.mode}): {on_theme} of {len(ids)} hits are '
                      f'{DEMO_THEME} memes')
