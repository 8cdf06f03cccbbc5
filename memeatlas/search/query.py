"""`memeatlas search`: memes ranked by meaning, by words, or both, or like a given meme.

- semantic: the query embedded with each searched space's own model (the text space, and
  every CLIP-type image space, whose text tower shares the image space), nearest vectors;
- lexical: BM25 over the annotation text fields (memeatlas.search.lexical);
- hybrid (the default when both exist): reciprocal rank fusion of the lists;
- `like`: the nearest memes to a stored meme (id or source id) or to an image file.

The user's query is only ever tokenised or embedded: it never becomes SQL. `--where` is the
sandboxed filter of memeatlas.corpus.where.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from memeatlas.errors import InputError, NotFoundError
from memeatlas.search import indexes
from memeatlas.search.fusion import rrf
from memeatlas.search.tokenize import mark, terms

MODES = ("auto", "hybrid", "semantic", "lexical")
MAX_QUERY_CHARS = 2000
MAX_K = 10_000
#: Fields BM25 reads by default: every core annotation text field.
DEFAULT_FIELDS = ("description", "ocr_text", "intent", "template", "tone", "entities")
#: RRF weight of the lexical list against each semantic list: equal weights. On ImgFlip
#: template names RRF w = 1 beats both single lists (precision@20 0.356 against 0.326 and
#: 0.309), and convex score fusions did no better (benchmarks/results/search.md).
LEXICAL_WEIGHT = 1.0
#: Each list fetches this many candidates per wanted hit before fusion, and at least
#: FUSE_MIN, so the order of the first hits does not depend on -k.
FUSE_DEPTH = 3
FUSE_MIN = 100


@dataclass
class SearchRequest:
    """One search. Exactly one of `query` and `like`."""

    query: str | None = None
    like: str | None = None
    mode: str = "auto"
    space: str | None = None
    fields: tuple[str, ...] | None = None
    annotator: str | None = None
    k: int = 20
    where: str | None = None
    run: str | None = None
    backend: str = "auto"
    lexical_weight: float = LEXICAL_WEIGHT


@dataclass
class Hit:
    """One ranked meme."""

    rank: int
    score: float
    meme_id: str
    source_id: str | None = None
    text: str = ""
    matched: list[str] = field(default_factory=list)
    ranks: dict[str, int] = field(default_factory=dict)   # list name → rank in that list
    cluster: int | None = None
    label: str | None = None
    membership: float | None = None
    link: str | None = None
    path: str | None = None


@dataclass
class SearchResult:
    """Hits plus what was searched (for the summary and for reproducing it)."""

    hits: list[Hit]
    mode: str
    lists: list[str]
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    index_updates: dict[str, str] = field(default_factory=dict)


def check_request(req: SearchRequest) -> None:
    """Refuse bad input before anything is opened or loaded."""
    from memeatlas.search.vectors import check_backend

    if (req.query is None) == (req.like is None):
        raise InputError("give a QUERY or --like MEME (one of them)")
    if req.query is not None:
        if len(req.query) > MAX_QUERY_CHARS:
            raise InputError(f"the query is {len(req.query):,} characters; the most is "
                             f"{MAX_QUERY_CHARS:,} (search for a phrase, or use --like MEME)")
        if not req.query.strip():
            raise InputError("the query is empty; give words to search for, or --like MEME")
        if "\x00" in req.query:
            raise InputError("the query holds a NUL character")
    if req.like is not None and not req.like.strip():
        raise InputError("--like is empty; give a meme id, a source id or an image path")
    if req.mode not in MODES:
        raise InputError(f"unknown --mode {req.mode!r}; use one of {', '.join(MODES[1:])}")
    if req.like is not None and req.mode == "lexical":
        raise InputError("--like finds memes by their vectors; --mode lexical needs a QUERY")
    if not 1 <= req.k <= MAX_K:
        raise InputError(f"-k {req.k} is out of range; use 1 to {MAX_K:,}")
    if not 0 <= req.lexical_weight <= 100:
        raise InputError(f"lexical weight {req.lexical_weight} is out of range 0..100")
    check_backend(req.backend)


# --- choosing what to search -------------------------------------------------------------

def _spaces(store) -> list:
    from memeatlas.embed import list_spaces

    return [s for s in list_spaces(store) if s.n > 0]


def _pick_text_space(spaces: list, notes: list[str]):
    """The text space a text query searches: the only one, else the embed default's, else
    the one with the most vectors (named in a note)."""
    from memeatlas.search.encode import text_queryable

    text = [s for s in spaces if s.kind == "text" and text_queryable(s)]
    if not text:
        return None
    if len(text) == 1:
        return text[0]
    by_name = {s.space: s for s in text}
    chosen = by_name.get("text:description+intent") or max(text, key=lambda s: (s.n, s.space))
    notes.append(f"searched text space {chosen.space} (of {', '.join(sorted(by_name))}; "
                 f"--space chooses)")
    return chosen


def _lexical_annotator(store, annotator: str | None, fields: tuple[str, ...], text_space
                       ) -> str | None:
    """Whose annotations BM25 reads: --annotator, else the text space's annotator, else the
    only annotator with the fields (None when there are no annotations)."""
    from memeatlas.corpus.texts import choose_annotator

    if annotator:
        return choose_annotator(store, fields, annotator)
    if text_space is not None:
        a = ((text_space.params or {}).get("recipe") or {}).get("annotator")
        if a:
            return a
    if not store.scalar("SELECT count(*) FROM latest_annotations"):
        return None
    return choose_annotator(store, fields, None)


def _resolve_like(store, like: str) -> tuple[str | None, Path | None]:
    """(meme_id, None) for a stored meme named by id or source id; (None, path) for an image
    file; NotFoundError otherwise."""
    like = like.strip()
    if store.scalar("SELECT count(*) FROM memes WHERE meme_id = ?", [like]):
        return like, None
    rows = store.fetchall(
        "SELECT DISTINCT meme_id FROM (SELECT meme_id FROM memes WHERE source_id = $s "
        "UNION ALL SELECT meme_id FROM meme_sources WHERE source_id = $s) ORDER BY 1",
        {"s": like})
    if len(rows) == 1:
        return rows[0][0], None
    if len(rows) > 1:
        raise InputError(f"--like {like!r}: source id of {len(rows)} memes "
                         f"({', '.join(r[0][:12] for r in rows[:3])}…); give a meme id")
    p = Path(like).expanduser()
    if p.is_file():
        return None, p
    if p.exists():
        raise InputError(f"--like {like}: is a folder, not an image file")
    raise NotFoundError(f"--like {like!r}: no meme with that id or source id, and no such "
                        f"image file")


# --- the search --------------------------------------------------------------------------

@dataclass
class Ranking:
    """Fused ranking of one query: (meme_id, score) best first, and each list behind it."""

    mode: str
    ranked: list[tuple[str, float]]
    lists: list[tuple[str, list[str]]]
    matched: set[str]
    notes: list[str] = field(default_factory=list)


class Searcher:
    """Open indexes (and, lazily, query models) that rank without touching the store, so the
    same object serves the CLI and `search()` inside `memeatlas sql`."""

    def __init__(self, vectors: dict, infos: dict, text_spaces: list[str], lexical,
                 notes: list[str], updates: dict[str, str], timings: dict[str, float]) -> None:
        self.vectors = vectors          # space → indexes.OpenVectors
        self.infos = infos              # space → SpaceInfo
        self.text_spaces = text_spaces  # what a text query searches by default
        self.lexical = lexical          # indexes.OpenLexical | None
        self.notes = notes
        self.updates = updates
        self.timings = timings

    def rank(self, query: str, k: int, *, mode: str = "auto", space: str | None = None,
             keep: set[str] | None = None, lexical_weight: float = LEXICAL_WEIGHT) -> Ranking:
        """Rank memes for a text query (see the module docstring)."""
        from memeatlas.search.encode import embed_text

        query = query.strip()
        want = max(k * FUSE_DEPTH, FUSE_MIN)
        sem = [space] if space is not None else list(self.text_spaces)
        if mode == "auto":
            mode = ("hybrid" if sem and self.lexical else "semantic" if sem
                    else "lexical" if self.lexical else "none")
        if mode == "none":
            raise NotFoundError("nothing to search: no annotations and no embedding space a "
                                "text query can use; run `memeatlas caption` and `memeatlas "
                                "embed text` first")
        if mode in ("semantic", "hybrid") and not sem:
            raise NotFoundError(f"--mode {mode} needs a text space (or a CLIP image space): "
                                f"run `memeatlas embed text` first, or use --mode lexical")
        if mode in ("lexical", "hybrid") and self.lexical is None:
            raise NotFoundError(f"--mode {mode} needs annotations to search: run `memeatlas "
                                f"caption` or `import-annotations`, or use --mode semantic")
        lists: list[tuple[str, list[str], float]] = []
        scores: dict[str, dict[str, float]] = {}
        matched: set[str] = set()
        notes: list[str] = []
        if mode in ("semantic", "hybrid"):
            for name in sem:
                t = time.perf_counter()
                q = embed_text(self.infos[name], query)
                self.timings[f"embed {name}"] = time.perf_counter() - t
                t = time.perf_counter()
                ids, sc = _nearest(self.vectors[name], q, want, keep)
                self.timings[f"semantic {name}"] = time.perf_counter() - t
                lists.append((name, ids, 1.0))
                scores[name] = dict(zip(ids, sc, strict=True))
        if mode in ("lexical", "hybrid"):
            lex = self.lexical
            t = time.perf_counter()
            rows = lex.rows_of(keep) if keep is not None else None
            hit, sc, found = lex.index.top(query, want, rows=rows)
            self.timings["lexical"] = time.perf_counter() - t
            matched.update(found)
            ids = [lex.ids[r] for r in hit]
            lists.append(("lexical", ids, lexical_weight))
            scores["lexical"] = dict(zip(ids, (float(s) for s in sc), strict=True))
            if not found:
                notes.append(f"no query term occurs in the {lex.annotator} annotations "
                             f"({', '.join(lex.fields)})")
        return _fuse(mode, lists, scores, k, matched, notes)

    def like(self, space: str, vector: np.ndarray, k: int, *, exclude: str | None = None,
             keep: set[str] | None = None) -> Ranking:
        """The memes nearest `vector` in `space` (less `exclude`)."""
        t = time.perf_counter()
        ids, sc = _nearest(self.vectors[space], vector, k + 1, keep)
        self.timings["semantic"] = time.perf_counter() - t
        pairs = [(m, s) for m, s in zip(ids, sc, strict=True) if m != exclude][:k]
        return _fuse("semantic", [(space, [m for m, _ in pairs], 1.0)],
                     {space: dict(pairs)}, k, set(), [])


def _fuse(mode: str, lists: list[tuple[str, list[str], float]],
          scores: dict[str, dict[str, float]], k: int, matched: set[str], notes: list[str]
          ) -> Ranking:
    if len(lists) == 1:
        name, ids, _ = lists[0]
        ranked = [(m, float(scores[name][m])) for m in ids]
    else:
        ranked = rrf([ids for _, ids, _ in lists], [w for _, _, w in lists])
    return Ranking(mode, ranked[:k], [(n, ids) for n, ids, _ in lists], matched, notes)


def open_searcher(store, *, spaces: list[str] | None = None, text_spaces: list[str] | None = None,
                  annotator: str | None = None, fields: tuple[str, ...] = DEFAULT_FIELDS,
                  lexical: bool = True, backend: str = "auto", notes: list[str] | None = None,
                  quiet_lexical: bool = False) -> Searcher:
    """Open (building or updating first) the vector indexes of `spaces` and, with `lexical`,
    the BM25 index of `annotator`'s `fields`. `text_spaces`: what a text query searches by
    default (None: the chosen text space plus every CLIP-type image space)."""
    from memeatlas.search.encode import is_clip_like

    notes = notes if notes is not None else []
    timings: dict[str, float] = {}
    updates: dict[str, str] = {}
    infos = {s.space: s for s in _spaces(store)}
    if text_spaces is None:
        text_space = _pick_text_space(list(infos.values()), notes)
        text_spaces = ([text_space.space] if text_space else []) + [
            n for n, s in sorted(infos.items()) if s.kind == "image" and is_clip_like(s)]
    else:
        named = [infos[n] for n in text_spaces if n in infos and infos[n].kind == "text"]
        text_space = named[0] if named else None
    wanted = list(dict.fromkeys([*(spaces if spaces is not None else []), *text_spaces]))
    vectors = {}
    for name in wanted:
        if name not in infos:
            continue
        t = time.perf_counter()
        vectors[name] = indexes.open_vectors(store, name, backend=backend)
        updates[name] = vectors[name].update.action
        timings[f"index {name}"] = time.perf_counter() - t
    lex = None
    if lexical:
        try:
            who = _lexical_annotator(store, annotator, fields, text_space)
        except InputError:
            if not quiet_lexical:
                raise
            who = None  # several annotators: lexical search needs --annotator
        if who is not None:
            t = time.perf_counter()
            lex = indexes.open_lexical(store, who, tuple(fields))
            updates[f"lexical {who}"] = lex.update.action
            timings["index lexical"] = time.perf_counter() - t
    return Searcher(vectors, infos, [n for n in text_spaces if n in vectors], lex, notes,
                    updates, timings)


def search(store, req: SearchRequest) -> SearchResult:
    """Run one search (see the module docstring); raises InputError/NotFoundError for bad
    input with nothing written to the store."""
    check_request(req)
    t0 = time.perf_counter()
    notes: list[str] = []
    keep = _where(store, req.where)
    if req.run:
        _check_run(store, req.run)
    spaces = _spaces(store)
    by_name = {s.space: s for s in spaces}
    if req.space is not None and req.space not in by_name:
        from memeatlas.embed import list_spaces

        names = ", ".join(s.space for s in list_spaces(store)) or "none yet"
        raise NotFoundError(f"no embedding space {req.space!r} with vectors; spaces here: {names}")
    fields = req.fields or DEFAULT_FIELDS
    text_space = None
    if req.like is not None:
        meme, path = _resolve_like(store, req.like)
        info = _like_space(spaces, req.space, meme is None, store, meme)
        s = open_searcher(store, spaces=[info.space], text_spaces=[], lexical=False,
                          backend=req.backend, notes=notes)
        vecs = s.vectors[info.space]
        if meme is not None:
            if meme not in vecs.pos:
                raise NotFoundError(f"--like {req.like!r}: meme {meme[:12]}… has no vector in "
                                    f"space {info.space}; run `memeatlas embed` for it or "
                                    f"pick another --space")
            q = vecs.index.vector(vecs.pos[meme])
        else:
            from memeatlas.search.encode import embed_image_file

            q = embed_image_file(info, path)
        ranking = s.like(info.space, q, req.k, exclude=meme, keep=keep)
    else:
        from memeatlas.search.encode import embed_text, text_queryable

        if req.space is not None:
            info = by_name[req.space]
            if not text_queryable(info):
                embed_text(info, req.query)  # raises with the reason
            text_spaces = [req.space]
            text_space = info if info.kind == "text" else None
        else:
            text_spaces = None
            text_space = _pick_text_space(spaces, [])
        if req.mode == "lexical":
            text_spaces = []
        s = open_searcher(store, text_spaces=text_spaces, annotator=req.annotator,
                          fields=fields, lexical=req.mode != "semantic",
                          backend=req.backend, notes=notes)
        ranking = s.rank(req.query, req.k, mode=req.mode, keep=keep,
                         lexical_weight=req.lexical_weight)
        notes += ranking.notes
    ranked = ranking.ranked[:req.k]
    hits = [Hit(rank=i + 1, score=round(sc, 6), meme_id=m) for i, (m, sc) in enumerate(ranked)]
    for h in hits:
        for name, ids in ranking.lists:
            if h.meme_id in ids:
                h.ranks[name] = ids.index(h.meme_id) + 1
    matched = ranking.matched or (set(terms(req.query)) if req.query else set())
    annotator = s.lexical.annotator if s.lexical is not None else req.annotator
    if annotator is None and text_space is not None:
        annotator = ((text_space.params or {}).get("recipe") or {}).get("annotator")
    _describe(store, hits, matched, fields, annotator, req.run)
    s.timings["total"] = time.perf_counter() - t0
    return SearchResult(hits, ranking.mode, [n for n, _ in ranking.lists], notes, s.timings,
                        s.updates)


def _where(store, where: str | None) -> set[str] | None:
    from memeatlas.corpus.where import where_ids

    return where_ids(store, where)


def _check_run(store, run: str) -> None:
    if not store.scalar("SELECT count(*) FROM cluster_runs WHERE run_id = ?", [run]):
        recent = [r[0] for r in store.fetchall(
            "SELECT run_id FROM cluster_runs ORDER BY created_at DESC LIMIT 5")]
        raise NotFoundError(f"no cluster run {run!r}; recent runs: "
                            f"{', '.join(recent) or 'none (run `memeatlas cluster`)'}")


def _like_space(spaces: list, space: str | None, image: bool, store, meme: str | None):
    """The space --like searches: --space, else (for an image file) the only image space,
    else the meme's text space, else any space holding the meme."""
    by_name = {s.space: s for s in spaces}
    if space is not None:
        return by_name[space]
    if image:
        imgs = [s for s in spaces if s.kind == "image"]
        if not imgs:
            raise NotFoundError("--like with an image file needs an image space: run "
                                "`memeatlas embed image` first")
        if len(imgs) > 1:
            raise InputError(f"several image spaces ({', '.join(s.space for s in imgs)}); "
                             f"choose one with --space")
        return imgs[0]
    holding = {r[0] for r in store.fetchall("SELECT space FROM embeddings WHERE meme_id = ?",
                                            [meme])}
    cands = [s for s in spaces if s.space in holding]
    if not cands:
        raise NotFoundError(f"meme {meme[:12]}… has no vector in any space; run `memeatlas "
                            f"embed` first")
    notes: list[str] = []
    text = _pick_text_space([s for s in cands if s.kind == "text"], notes)
    return text or sorted(cands, key=lambda s: s.space)[0]


def _nearest(vecs, q: np.ndarray, k: int, keep: set[str] | None) -> tuple[list[str], list[float]]:
    rows = vecs.rows_of(keep) if keep is not None else None
    if rows is not None and rows.size == 0:
        return [], []
    hit, sc = vecs.index.search(q, k, rows)
    return [vecs.ids[r] for r in hit], [float(s) for s in sc]


def _describe(store, hits: list[Hit], wanted: set[str], fields: tuple[str, ...],
              annotator: str | None, run: str | None) -> None:
    """Fill in source id, marked text, link, path and (with --run) cluster of each hit."""
    if not hits:
        return
    from memeatlas.corpus.texts import build_text

    ids = [h.meme_id for h in hits]
    rows = store.fetchall(
        "SELECT meme_id, source_id, path, coalesce(meta->>'url', meta->>'link', "
        "meta->>'post_url', meta->>'permalink') FROM memes WHERE meme_id IN "
        "(SELECT unnest($ids::VARCHAR[]))", {"ids": ids})
    info = {r[0]: r[1:] for r in rows}
    cur = store.execute(
        "SELECT * FROM latest_annotations WHERE meme_id IN (SELECT unnest($ids::VARCHAR[])) "
        + ("AND annotator = $a " if annotator else "") + "ORDER BY meme_id, created_at DESC",
        {"ids": ids, **({"a": annotator} if annotator else {})})
    cols = [d[0] for d in cur.description]
    texts: dict[str, str] = {}
    for r in cur.fetchall():
        row = dict(zip(cols, r, strict=True))
        texts.setdefault(row["meme_id"], build_text(row, fields))
    clusters: dict[str, tuple] = {}
    if run:
        clusters = {r[0]: r[1:] for r in store.fetchall(
            "SELECT a.meme_id, a.cluster, a.probability, l.label FROM cluster_assignments a "
            "LEFT JOIN cluster_labels l ON l.run_id = a.run_id AND l.cluster = a.cluster "
            "WHERE a.run_id = $r AND a.meme_id IN (SELECT unnest($ids::VARCHAR[]))",
            {"r": run, "ids": ids})}
    for h in hits:
        src, path, link = info.get(h.meme_id, (None, None, None))
        h.source_id, h.path, h.link = src, path, link
        h.text, h.matched = mark(texts.get(h.meme_id, ""), wanted)
        if h.meme_id in clusters:
            c, p, label = clusters[h.meme_id]
            h.cluster, h.membership, h.label = int(c), None if p is None else float(p), label


def hit_rows(hits: list[Hit], *, with_run: bool) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows of hits for `memeatlas.output.write_rows`."""
    cols = ["rank", "score", "meme_id", "source_id", "text"]
    if with_run:
        cols += ["cluster", "label", "membership"]
    cols += ["link", "found_by"]
    rows = []
    for h in hits:
        r: list[Any] = [h.rank, h.score, h.meme_id, h.source_id, h.text]
        if with_run:
            r += [h.cluster, h.label, h.membership]
        r += [h.link or h.path, ", ".join(f"{k}#{v}" for k, v in h.ranks.items())]
        rows.append(r)
    return cols, rows
