"""The lexical index a report page carries, so its search box works with no server.

For the memes on the page: the vocabulary, each term's postings (page index of the meme and
the term's count in it) and each meme's length, over the same annotation fields and with
the same tokenizer as `memeatlas search` (the page's JavaScript re-implements the
tokenizer's rules, and reads the stop words from here). The page fuses BM25 hits with the
precomputed nearest neighbours of the best hits (reciprocal rank fusion), the in-page
counterpart of hybrid search.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from memeatlas.search.lexical import K1, B
from memeatlas.search.tokenize import STOP_WORDS, terms


def page_index(store, meme_ids: Sequence[str], space: str | None = None,
               fields: Sequence[str] | None = None) -> dict[str, Any] | None:
    """{terms, docs, tfs, len, k1, b, stop, fields, annotator} for the page's memes, or None
    when they have no annotation text. The annotator is the one whose text `space` embeds,
    else the only one."""
    import json

    from memeatlas.corpus.texts import annotation_texts
    from memeatlas.search.query import DEFAULT_FIELDS

    fields = tuple(fields or DEFAULT_FIELDS)
    params = store.scalar("SELECT params FROM embedding_spaces WHERE space = ?", [space or ""])
    annotator = ((json.loads(params) if params else {}).get("recipe") or {}).get("annotator")
    if annotator is None:
        who = store.fetchall("SELECT DISTINCT annotator FROM latest_annotations ORDER BY 1")
        if len(who) != 1:
            return None
        annotator = who[0][0]
    pos = {m: i for i, m in enumerate(meme_ids)}
    rows, _ = annotation_texts(store, annotator, fields, meme_ids=list(meme_ids))
    postings: dict[str, tuple[list[int], list[int]]] = {}
    lengths = [0] * len(meme_ids)
    for meme, text in rows:
        toks = terms(text)
        i = pos[meme]
        lengths[i] = len(toks)
        for t, n in Counter(toks).items():
            d, f = postings.setdefault(t, ([], []))
            d.append(i)
            f.append(n)
    if not postings:
        return None
    vocab = sorted(postings)
    return {"terms": vocab, "docs": [postings[t][0] for t in vocab],
            "tfs": [postings[t][1] for t in vocab], "len": lengths, "k1": K1, "b": B,
            "stop": sorted(STOP_WORDS), "fields": list(fields), "annotator": annotator}
