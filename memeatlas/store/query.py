"""Read-only SQL, exports, and per-step counts."""

from __future__ import annotations

from pathlib import Path

import duckdb

from memeatlas.errors import InputError, NotFoundError, ReadOnlyViolation
from memeatlas.store.connection import Store
from memeatlas.store.sandbox import check_sql

EXPORT_FORMATS = ("parquet", "jsonl", "csv")


def run_readonly(store: Store, sql: str) -> tuple[list[str], list[tuple]]:
    """Run read-only SQL and return (columns, rows) of the last statement.

    Every statement is classified by DuckDB's parser first and anything that is not a read
    is refused before anything runs (`memeatlas.store.sandbox.check_sql`); the statements
    then run on a sandboxed connection (`Store.open(..., sandbox=True)`): read-only, with
    file access, extensions and settings locked.
    """
    statements = check_sql(sql)
    if not store.sandboxed:
        raise ValueError("run_readonly needs a store opened with Store.open(..., sandbox=True)")
    from memeatlas.store.sandbox import install_sql_functions

    install_sql_functions(store, sql)  # e.g. search(); its errors are memeatlas errors
    try:
        cur = None
        for st in statements:
            cur = store.con.execute(st.query)
        rows = cur.fetchall() if cur is not None and cur.description else []
        cols = [d[0] for d in cur.description] if cur is not None and cur.description else []
    except duckdb.Error as exc:
        msg = str(exc).splitlines()[0]
        # A registered function's own error (e.g. search()): its message, without the wrapper.
        msg = msg.split("Python exception occurred while executing the UDF: ", 1)[-1]
        if "read-only" in msg.lower():
            raise ReadOnlyViolation(f"`memeatlas sql` is read-only: {msg}") from None
        if "disabled by configuration" in msg or "configuration has been locked" in msg:
            raise ReadOnlyViolation(
                f"`memeatlas sql` reads the store only ({msg}); to read local files give "
                f"--allow-read DIR") from None
        raise InputError(f"SQL error: {msg}") from None
    return cols, rows


def relations(store: Store) -> list[str]:
    """Names of the tables and views users can query or export."""
    return [r[0] for r in store.fetchall(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
        "ORDER BY table_name")]


def _writable_target(out: Path) -> None:
    if out.is_dir():
        raise InputError(f"-o {out} is a folder; give a file name, e.g. {out / 'memes.parquet'}")
    if not out.parent.exists():
        raise InputError(f"cannot write {out}: folder {out.parent} does not exist; create it "
                         f"or choose another -o")


def export(store: Store, name: str, fmt: str, out: str | Path) -> int:
    """Write a table or view to Parquet, JSONL or CSV with DuckDB's COPY; returns the row count."""
    if fmt not in EXPORT_FORMATS:
        raise InputError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
    names = relations(store)
    if name not in names:
        raise NotFoundError(f"no table or view {name!r}; choose one of: {', '.join(names)}")
    out = Path(out)
    _writable_target(out)
    options = {"parquet": "FORMAT parquet", "jsonl": "FORMAT json", "csv": "FORMAT csv, HEADER"}
    path = str(out).replace("'", "''")
    try:
        store.execute(f"COPY (SELECT * FROM \"{name}\") TO '{path}' ({options[fmt]})")
    except duckdb.IOException as exc:
        raise InputError(f"cannot write {out}: {str(exc).splitlines()[0]}") from None
    return int(store.scalar(f'SELECT count(*) FROM "{name}"'))


def _dependency_order(views: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Views ordered so each comes after the views its SQL names (DuckDB binds on CREATE)."""
    import re

    left = dict(views)
    done: list[tuple[str, str]] = []
    while left:
        ready = [n for n, q in left.items()
                 if not any(o != n and re.search(rf'\b"?{re.escape(o)}"?\b', q) for o in left)]
        for n in sorted(ready or left):  # a cycle cannot be created; keep going regardless
            done.append((n, left.pop(n)))
    return done


def export_all(store: Store, folder: str | Path, *, force: bool = False) -> dict:
    """Every table and view as `<name>.parquet` in `folder`, plus `load.sql`.

    `load.sql` recreates the store over the Parquet files for any DuckDB (or other engine
    with read_parquet): each table becomes a view over its file, then the store's own view
    definitions are replayed in creation order. Views are exported as files too, for
    clients without SQL (pandas, R arrow, Polars). Returns {relations, rows}.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"-o {folder} is a file; --all writes a folder")
    if not folder.parent.exists():
        raise InputError(f"cannot write {folder}: folder {folder.parent} does not exist; create "
                         f"it or choose another -o")
    if folder.exists() and any(folder.iterdir()) and not force:
        raise InputError(f"{folder} is not empty; choose a new folder or pass --force to "
                         f"overwrite the files in it")
    folder.mkdir(exist_ok=True)
    tables = [r[0] for r in store.fetchall(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'main' ORDER BY table_name")]
    views = store.fetchall(
        "SELECT view_name, sql FROM duckdb_views() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND NOT internal ORDER BY view_oid")
    views = _dependency_order(views)
    rows: dict[str, int] = {}
    for name in tables + [v[0] for v in views]:
        target = str(folder / f"{name}.parquet").replace("'", "''")
        try:
            store.execute(f"COPY (SELECT * FROM \"{name}\") TO '{target}' (FORMAT parquet)")
        except duckdb.IOException as exc:
            raise InputError(f"cannot write {target}: {str(exc).splitlines()[0]}") from None
        rows[name] = int(store.scalar(f'SELECT count(*) FROM "{name}"'))
    lines = [
        f"-- memeatlas store {store.path.name}, schema version {store.schema_version}: "
        f"{len(tables)} tables as Parquet files and {len(views)} views.",
        "-- Run from this folder: duckdb -init load.sql  (or, in a session: .read load.sql).",
        "-- Tables become views over their files; then the store's views are recreated.",
    ]
    for name in tables:
        lines.append(f"CREATE OR REPLACE VIEW \"{name}\" AS SELECT * FROM "
                     f"read_parquet('{name}.parquet');")
    for _name, view_sql in views:
        text = view_sql.strip().rstrip(";")
        lines.append(text.replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1) + ";")
    (folder / "load.sql").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"relations": tables + [v[0] for v in views], "rows": sum(rows.values()),
            "per_relation": rows}


_STATUS = [
    ("ingest", "memes", "SELECT count(*) FROM memes"),
    ("ingest", "memes with image", "SELECT count(*) FROM memes WHERE has_image"),
    ("ingest", "ingest errors", "SELECT count(*) FROM ingest_errors"),
    ("caption", "annotations", "SELECT count(*) FROM annotations"),
    ("caption", "annotated memes", "SELECT count(DISTINCT meme_id) FROM annotations"),
    ("caption", "annotators", "SELECT count(DISTINCT annotator) FROM annotations"),
    ("caption", "caption failures", "SELECT count(*) FROM caption_failures"),
    ("caption", "interrupted caption runs",
     "SELECT count(*) FROM caption_runs WHERE status = 'interrupted' OR finished_at IS NULL"),
    ("embed", "spaces", "SELECT count(*) FROM embedding_spaces"),
    ("embed", "embeddings", "SELECT count(*) FROM embeddings"),
    ("embed", "memes in no space (see each embed summary's left out)",
     "SELECT count(*) FROM memes m WHERE NOT EXISTS "
     "(SELECT 1 FROM embeddings e WHERE e.meme_id = m.meme_id)"),
    ("cluster", "cluster runs", "SELECT count(*) FROM cluster_runs"),
    ("label", "labelled runs", "SELECT count(DISTINCT run_id) FROM cluster_labels"),
    ("evaluate", "pair sets", "SELECT count(*) FROM pair_sets"),
    ("evaluate", "ratings", "SELECT count(*) FROM ratings"),
    ("evaluate", "evaluations", "SELECT count(*) FROM evaluations"),
]


def status(store: Store) -> list[tuple[str, str, int | None]]:
    """(step, what, count) for every pipeline step, plus per-annotator and per-space detail."""
    from memeatlas.store.connection import storage_version

    tag = storage_version(store.con)
    out: list[tuple[str, str, int | None]] = [
        ("store", "schema version", store.schema_version),
        ("store", f"DuckDB storage format {tag}: {readers(tag)}", None),
    ]
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


# DuckDB's storage tag -> the oldest DuckDB that reads such a file (measured: docs/sql.md).
# DuckDB 1.0 reads tag v1.0.0+ in principle, but not the primary-key indexes DuckDB 2 writes.
_READERS = {"v0.10.0+": "1.1", "v1.0.0+": "1.1", "v1.2.0+": "1.2", "v1.3.0+": "1.3",
            "v1.4.0+": "1.4", "v1.5.0+": "1.5", "v2.0.0+": "2.0"}


def readers(tag: str) -> str:
    """Which DuckDB versions read a file with storage tag `tag`, in words."""
    oldest = _READERS.get(tag)
    if oldest is None:
        return "read by the DuckDB that wrote it (unknown format tag)"
    note = "" if oldest != "2.0" else (" (convert with `memeatlas migrate --storage-version "
                                       "v1.1.0` for 1.x clients)")
    return f"read by DuckDB {oldest} and later{note}"
