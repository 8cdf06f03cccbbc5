"""Read-only SQL, exports, and per-step counts."""

from __future__ import annotations

import duckdb

from memeatlas.errors import InputError, NotFoundError, ReadOnlyViolation
from memeatlas.store.connection import Store

_READ_TYPES = {"SELECT", "EXPLAIN", "PRAGMA", "SET", "VARIABLE_SET"}
EXPORT_FORMATS = ("parquet", "jsonl", "csv")


def run_readonly(store: Store, sql: str) -> tuple[list[str], list[tuple]]:
    """Run read-only SQL and return (columns, rows) of the last statement.

    Write statements are refused before anything runs (and the store should be
    opened read-only as a second guard).
    """
    try:
        statements = store.con.extract_statements(sql)
    except duckdb.Error as exc:
        raise InputError(f"SQL error: {exc}") from None
    if not statements:
        raise InputError("no SQL statement given")
    for st in statements:
        kind = st.type.name
        if kind not in _READ_TYPES:
            raise ReadOnlyViolation(
                f"`memeatlas sql` is read-only and refuses {kind} statements; use the memeatlas "
                f"commands to change the corpus, or open the file with duckdb yourself")
    try:
        cur = None
        for st in statements:
            cur = store.con.execute(st.query)
        rows = cur.fetchall() if cur is not None and cur.description else []
        cols = [d[0] for d in cur.description] if cur is not None and cur.description else []
    except duckdb.Error as exc:
        msg = str(exc).splitlines()[0]
        if "read-only" in msg.lower():
            raise ReadOnlyViolation(f"`memeatlas sql` is read-only: {msg}") from None
        raise InputError(f"SQL error: {msg}") from None
    return cols, rows


def relations(store: Store) -> list[str]:
    """Names of the tables and views users can query or export."""
    return [r[0] for r in store.fetchall(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
        "ORDER BY table_name")]


def export(store: Store, name: str, fmt: str, out: str) -> int:
    """Write a table or view to Parquet, JSONL or CSV with DuckDB's COPY; returns the row count."""
    if fmt not in EXPORT_FORMATS:
        raise InputError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
    names = relations(store)
    if name not in names:
        raise NotFoundError(f"no table or view {name!r}; choose one of: {', '.join(names)}")
    options = {"parquet": "FORMAT parquet", "jsonl": "FORMAT json", "csv": "FORMAT csv, HEADER"}
    path = out.replace("'", "''")
    store.execute(f"COPY (SELECT * FROM \"{name}\") TO '{path}' ({options[fmt]})")
    return int(store.scalar(f'SELECT count(*) FROM "{name}"'))


_STATUS = [
    ("ingest", "memes", "SELECT count(*) FROM memes"),
    ("ingest", "memes with image", "SELECT count(*) FROM memes WHERE has_image"),
    ("ingest", "ingest errors", "SELECT count(*) FROM ingest_errors"),
    ("caption", "annotations", "SELECT count(*) FROM annotations"),
    ("caption", "annotated memes", "SELECT count(DISTINCT meme_id) FROM annotations"),
    ("caption", "annotators", "SELECT count(DISTINCT annotator) FROM annotations"),
    ("caption", "caption failures", "SELECT count(*) FROM caption_failures"),
    ("embed", "spaces", "SELECT count(*) FROM embedding_spaces"),
    ("embed", "embeddings", "SELECT count(*) FROM embeddings"),
    ("cluster", "cluster runs", "SELECT count(*) FROM cluster_runs"),
    ("label", "labelled runs", "SELECT count(DISTINCT run_id) FROM cluster_labels"),
    ("evaluate", "pair sets", "SELECT count(*) FROM pair_sets"),
    ("evaluate", "ratings", "SELECT count(*) FROM ratings"),
    ("evaluate", "evaluations", "SELECT count(*) FROM evaluations"),
]


def status(store: Store) -> list[tuple[str, str, int]]:
    """(step, what, count) for every pipeline step, plus per-annotator and per-space detail."""
    out = []
    for step, what, sql in _STATUS:
        out.append((step, what, int(store.scalar(sql))))
    for annotator, n in store.fetchall(
            "SELECT annotator, count(*) FROM annotations GROUP BY 1 ORDER BY 1"):
        out.append(("caption", f"  by {annotator}", int(n)))
    for space, n in store.fetchall(
            "SELECT space, count(*) FROM embeddings GROUP BY 1 ORDER BY 1"):
        out.append(("embed", f"  in {space}", int(n)))
    from memeatlas.images.status import status_rows  # near-duplicates, template matches

    out.extend(status_rows(store))
    return out
