"""`search()` and `similarity()` inside `memeatlas sql`, on the same locked connection.

    SELECT * FROM search('student debt', k := 50) JOIN latest_annotations USING (meme_id)
    SELECT meme_id FROM memes ORDER BY similarity(meme_id, 'MEME') DESC LIMIT 10

DuckDB's Python API registers scalar functions only, so `search` is a TEMP table macro that
unnests the list a scalar Python function returns, and `similarity` a TEMP macro over a
vectorised (Arrow) Python function. Both are created on the sandboxed connection after it is
locked (temporary macros live in memory, so a read-only store stays untouched) and before
the user's statements run; the user cannot create or replace functions (CREATE is refused).

The Python side never reads a path or a setting from its arguments: the query text is only
tokenised and embedded, spaces are looked up by name among the store's spaces, memes by id
or source id, and the indexes it reads were opened (and brought up to date) from the store
before the user's SQL started.
"""

from __future__ import annotations

from memeatlas.errors import InputError, NotFoundError

#: Names (as written in user SQL) that make `install` prepare the search functions.
TRIGGERS = frozenset({"search", "similarity", "memeatlas_search", "memeatlas_similarity"})
MAX_K = 10_000

MACROS = (
    "CREATE OR REPLACE TEMP MACRO search(query, k := 50, mode := 'auto', space := NULL) "
    "AS TABLE SELECT h.meme_id AS meme_id, h.score AS score, h.rank AS rank "
    "FROM (SELECT unnest(memeatlas_search(query, k, mode, space)) AS h)",
    "CREATE OR REPLACE TEMP MACRO similarity(meme, other, space := NULL) "
    "AS memeatlas_similarity(meme, other, space)",
)


def _mentions(sql: str) -> bool:
    """Whether `sql` names one of TRIGGERS outside strings and comments (DuckDB's tokenizer)."""
    import duckdb

    try:
        toks = duckdb.tokenize(sql)
    except duckdb.Error:
        return False
    for i, (pos, kind) in enumerate(toks):
        name = kind.name if hasattr(kind, "name") else str(kind).split(".")[-1]
        if name in ("string_const", "comment"):
            continue
        end = toks[i + 1][0] if i + 1 < len(toks) else len(sql)
        if sql[pos:end].strip().strip('"').lower() in TRIGGERS:
            return True
    return False


class _Functions:
    """The Python bodies of the SQL functions, over a prepared Searcher."""

    def __init__(self, store, searcher) -> None:
        self.s = searcher
        self._sources: dict[str, list[str]] | None = None
        self._store = store
        self.default_space = next(iter(searcher.text_spaces), None) or next(
            iter(sorted(searcher.vectors)), None)

    def _load_sources(self) -> None:
        """source_id → meme ids, read before the user's SQL runs (the connection is busy
        during it)."""
        cur = self._store.con.cursor()
        try:
            rows = cur.execute(
                "SELECT source_id, meme_id FROM memes WHERE source_id IS NOT NULL UNION "
                "SELECT source_id, meme_id FROM meme_sources WHERE source_id IS NOT NULL"
            ).fetchall()
        finally:
            cur.close()
        out: dict[str, list[str]] = {}
        for sid, mid in rows:
            out.setdefault(sid, []).append(mid)
        self._sources = out

    def _space(self, space: str | None) -> str:
        if space is None:
            if self.default_space is None:
                raise NotFoundError("no embedding space with vectors; run `memeatlas embed` "
                                    "first")
            return self.default_space
        if space not in self.s.vectors:
            raise NotFoundError(f"no embedding space {space!r}; spaces here: "
                                f"{', '.join(sorted(self.s.vectors)) or 'none'}")
        return space

    def search(self, query, k, mode, space) -> list[dict]:
        from memeatlas.search.query import MODES, SearchRequest, check_request

        if query is None:
            return []
        k = 50 if k is None else int(k)
        mode = mode or "auto"
        check_request(SearchRequest(query=str(query), mode=mode, k=min(max(k, 1), MAX_K)))
        if not 1 <= k <= MAX_K:
            raise InputError(f"search(): k := {k} is out of range; use 1 to {MAX_K:,}")
        if mode not in MODES:
            raise InputError(f"search(): unknown mode {mode!r}")
        if space is not None:
            self._space(space)
        r = self.s.rank(str(query), k, mode=mode, space=space)
        return [{"meme_id": m, "score": float(sc), "rank": i + 1}
                for i, (m, sc) in enumerate(r.ranked)]

    def _resolve(self, other: str) -> str:
        if any(other in v.pos for v in self.s.vectors.values()):
            return other
        if self._sources is None:
            raise NotFoundError(f"similarity(): no meme {other!r}")
        got = self._sources.get(other, [])
        if len(got) != 1:
            raise NotFoundError(f"similarity(): no meme with id or source id {other!r}"
                                if not got else f"similarity(): source id {other!r} names "
                                f"{len(got)} memes; give a meme id")
        return got[0]

    def similarity(self, memes, others, spaces):
        """Cosine similarity of each meme to `other` in the space (Arrow in, Arrow out)."""
        import numpy as np
        import pyarrow as pa

        memes, others, spaces = memes.to_pylist(), others.to_pylist(), spaces.to_pylist()
        out = np.full(len(memes), np.nan)
        groups: dict[tuple[str, str], list[int]] = {}
        for i, (m, o, sp) in enumerate(zip(memes, others, spaces, strict=True)):
            if m is None or o is None:
                continue
            groups.setdefault((self._space(sp), o), []).append(i)
        for (space, other), idx in groups.items():
            v = self.s.vectors[space]
            oid = self._resolve(other)
            if oid not in v.pos:
                raise NotFoundError(f"similarity(): meme {other!r} has no vector in space "
                                    f"{space}")
            q = v.index.vector(v.pos[oid])
            rows = v.pos.rows([memes[i] for i in idx])
            ok = rows >= 0
            if ok.any():
                sel = np.asarray(idx)[ok]
                out[sel] = np.asarray(v.index.matrix[np.sort(rows[ok])] @ q)[
                    np.argsort(np.argsort(rows[ok]))]
        mask = np.isnan(out)
        return pa.array(out, pa.float64(), mask=mask)


def install(store, sql: str) -> None:
    """Prepare `search()` and `similarity()` on the store's sandboxed connection when `sql`
    uses them (a hook of `memeatlas.store.sandbox.add_sql_functions`)."""
    if not _mentions(sql):
        return
    import duckdb
    from duckdb.sqltypes import DOUBLE, INTEGER, VARCHAR

    from memeatlas.search.query import open_searcher

    con = store.con
    if "memeatlas_search" in {f[0] for f in con.execute(
            "SELECT function_name FROM duckdb_functions() WHERE function_name = "
            "'memeatlas_search'").fetchall()}:
        return  # already installed on this connection
    searcher = open_searcher(store, spaces=None, lexical=True, quiet_lexical=True)
    from memeatlas.embed import list_spaces

    for s in list_spaces(store):  # every space, for similarity() and search(space := …)
        if s.n and s.space not in searcher.vectors:
            from memeatlas.search import indexes

            searcher.vectors[s.space] = indexes.open_vectors(store, s.space)
            searcher.infos[s.space] = s
    fns = _Functions(store, searcher)
    fns._load_sources()
    hit = duckdb.struct_type({"meme_id": VARCHAR, "score": DOUBLE, "rank": INTEGER})
    con.create_function("memeatlas_search", fns.search, [VARCHAR, INTEGER, VARCHAR, VARCHAR],
                        duckdb.list_type(hit), null_handling="special")
    con.create_function("memeatlas_similarity", fns.similarity, [VARCHAR, VARCHAR, VARCHAR],
                        DOUBLE, type="arrow", null_handling="special")
    for m in MACROS:
        con.execute(m)
