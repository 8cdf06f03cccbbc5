"""Read-only SQL, exports, and per-step counts."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

import duckdb

from memeatlas.errors import InputError, NotFoundError, ReadOnlyViolation
from memeatlas.store.connection import Store
from memeatlas.store.sandbox import check_sql

EXPORT_FORMATS = ("parquet", "jsonl", "csv")


def run_readonly(store: Store, sql: str, *, timeout: float | None = None
                 ) -> tuple[list[str], list[tuple]]:
    """Run read-only SQL and return (columns, rows) of the last statement.

    Every statement is classified by DuckDB's parser first and anything that is not a read
    is refused before anything runs (`memeatlas.store.sandbox.check_sql`); the statements
    then run on a sandboxed connection (`Store.open(..., sandbox=True)`): read-only, with
    file access, extensions and settings locked and memory capped. `timeout` (seconds, for
    all statements together; None or 0: none) stops the query from a timer thread with
    DuckDB's `interrupt()`. Ctrl-C while DuckDB runs becomes KeyboardInterrupt.
    """
    import threading

    statements = check_sql(sql)
    if not store.sandboxed:
        raise ValueError("run_readonly needs a store opened with Store.open(..., sandbox=True)")
    from memeatlas.store.sandbox import install_sql_functions

    install_sql_functions(store, sql)  # e.g. search(); its errors are memeatlas errors

    timed_out = threading.Event()
    stopping = threading.Event()  # Ctrl-C: start no further statement
    done: dict[str, object] = {}

    def work() -> None:  # DuckDB runs here; the main thread stays free for Ctrl-C and the clock
        try:
            cur = None
            for st in statements:
                if timed_out.is_set() or stopping.is_set():  # between two statements
                    raise duckdb.InterruptException("interrupted")
                cur = store.con.execute(st.query)
            described = cur is not None and cur.description
            done["rows"] = cur.fetchall() if described else []
            done["cols"] = [d[0] for d in cur.description] if described else []
        except BaseException as exc:  # handed to the main thread below
            done["exc"] = exc

    # The query runs in a worker thread while the main thread waits in short joins: a Ctrl-C
    # is then always delivered to Python at once (DuckDB alone notices it only at some points
    # of a query) and becomes con.interrupt(); the deadline is checked the same way.
    worker = threading.Thread(target=work, name="memeatlas-sql", daemon=True)
    deadline = time.monotonic() + timeout if timeout else None
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.05)
            if deadline is not None and time.monotonic() > deadline:
                timed_out.set()  # interrupted again each turn: the first may land between calls
                store.con.interrupt()
    except KeyboardInterrupt:
        timed_out.clear()
        stopping.set()
        give_up = time.monotonic() + 10
        while worker.is_alive() and time.monotonic() < give_up:
            store.con.interrupt()
            worker.join(0.05)
        raise
    try:
        if "exc" in done:
            raise done["exc"]  # type: ignore[misc]
        cols, rows = done["cols"], done["rows"]  # type: ignore[assignment]
    except (duckdb.Error, RuntimeError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        # A registered function's own error (e.g. search()): its message, without the wrapper.
        msg = msg.split("Python exception occurred while executing the UDF: ", 1)[-1]
        if timed_out.is_set():
            raise InputError(f"query stopped after {timeout:g} s (--timeout {timeout:g}); "
                             f"narrow it (WHERE, LIMIT) or pass a larger --timeout "
                             f"(0: none)") from None
        if isinstance(exc, duckdb.InterruptException) or msg == "Query interrupted":
            raise KeyboardInterrupt from None  # Ctrl-C: the CLI's one line and exit 130
        if isinstance(exc, duckdb.OutOfMemoryException) or "Out of Memory" in msg:
            raise InputError(f"query needs more memory than --memory-limit allows ({msg}); "
                             f"narrow it or pass a larger --memory-limit") from None
        if not isinstance(exc, duckdb.Error):
            raise
        if "read-only" in msg.lower():
            raise ReadOnlyViolation(f"`memeatlas sql` is read-only: {msg}") from None
        if "disabled by configuration" in msg or "configuration has been locked" in msg:
            raise ReadOnlyViolation(
                f"`memeatlas sql` reads the store only ({msg}); to read local files give "
                f"--allow-read DIR") from None
        raise InputError(f"SQL error: {msg}") from None
    return cols, rows  # type: ignore[return-value]


def relations(store: Store) -> list[str]:
    """Names of the tables and views users can query or export."""
    return [r[0] for r in store.fetchall(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
        "ORDER BY table_name")]


def _writable_target(out: Path, force: bool) -> None:
    if out.is_dir():
        raise InputError(f"-o {out} is a folder; give a file name, e.g. {out / 'memes.parquet'}")
    if not out.parent.exists():
        raise InputError(f"cannot write {out}: folder {out.parent} does not exist; create it "
                         f"or choose another -o")
    if out.exists() and not force:
        raise InputError(f"{out} exists; choose a new -o or pass --force to overwrite it")


def _incomplete_name(target: Path) -> Path:
    """A hidden name beside `target` that says what it is, for writing before the rename."""
    import os
    import secrets

    return target.with_name(f".{target.name}.incomplete-{os.getpid()}-{secrets.token_hex(3)}")


def _copy(store: Store, name: str, target: Path, options: str) -> None:
    """COPY one relation to `target` (a path memeatlas chose; user text never reaches SQL)."""
    path = str(target).replace("'", "''")
    try:
        store.execute(f"COPY (SELECT * FROM \"{name}\") TO '{path}' ({options})")
    except duckdb.IOException as exc:
        raise InputError(f"cannot write {target}: {str(exc).splitlines()[0]}") from None


def export(store: Store, name: str, fmt: str, out: str | Path, *, force: bool = False) -> int:
    """Write a table or view to Parquet, JSONL or CSV with DuckDB's COPY; returns the row count.

    An existing `out` is overwritten only with `force` (the rule of `export_all` too). The file
    is written under a hidden `.NAME.incomplete-…` name beside `out` and renamed at the end, so
    an interrupted export never leaves a partial file under the name asked for.
    """
    import os

    if fmt not in EXPORT_FORMATS:
        raise InputError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
    names = relations(store)
    if name not in names:
        raise NotFoundError(f"no table or view {name!r}; choose one of: {', '.join(names)}")
    out = Path(out)
    _writable_target(out, force)
    options = {"parquet": "FORMAT parquet", "jsonl": "FORMAT json", "csv": "FORMAT csv, HEADER"}
    tmp = _incomplete_name(out)
    try:
        _copy(store, name, tmp, options[fmt])
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
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

    A folder with files in it is written into only with `force`. The files are written to a
    hidden `.NAME.incomplete-…` folder beside it first, which is renamed to `folder` (or, when
    `folder` exists, whose files are moved in, `load.sql` last) only once all are written.
    """
    import os
    import shutil

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"-o {folder} is a file; --all writes a folder")
    if not folder.parent.exists():
        raise InputError(f"cannot write {folder}: folder {folder.parent} does not exist; create "
                         f"it or choose another -o")
    if folder.exists() and any(folder.iterdir()) and not force:
        raise InputError(f"{folder} is not empty; choose a new folder or pass --force to "
                         f"overwrite the files in it")
    # Everything is written to a hidden folder beside the target, then renamed: a kill leaves
    # `.NAME.incomplete-…`, never a folder that looks like a finished export.
    tmp = _incomplete_name(folder.resolve())
    tmp.mkdir()
    try:
        tables, views, rows = _write_all(store, tmp)
        if not folder.exists():
            os.replace(tmp, folder)  # one rename: the folder appears complete or not at all
        else:  # an existing (empty, or with --force) folder: ours moved in, load.sql last
            for f in sorted(tmp.iterdir(), key=lambda p: p.name == "load.sql"):
                os.replace(f, folder / f.name)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return {"relations": tables + [v[0] for v in views], "rows": sum(rows.values()),
            "per_relation": rows}


def _write_all(store: Store, folder: Path) -> tuple[list[str], list[tuple[str, str]],
                                                     dict[str, int]]:
    """Every table and view as Parquet in `folder`, then load.sql; (tables, views, rows)."""
    tables = [r[0] for r in store.fetchall(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'main' ORDER BY table_name")]
    views = store.fetchall(
        "SELECT view_name, sql FROM duckdb_views() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND NOT internal ORDER BY view_oid")
    views = _dependency_order(views)
    rows: dict[str, int] = {}
    for name in tables + [v[0] for v in views]:
        _copy(store, name, folder / f"{name}.parquet", "FORMAT parquet")
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
    return tables, views, rows


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


def status(store: Store, extra: Iterable[Callable[[Store], list[tuple[str, str, int]]]] = ()
           ) -> list[tuple[str, str, int | None]]:
    """(step, what, count) for every pipeline step, plus per-annotator and per-space detail.

    `extra` holds the rows of steps above the store (near-duplicates, template matches): the
    caller that knows every step passes them (`memeatlas.pipeline.status`), so the store never
    imports a step.
    """
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
    for rows in extra:
        out.extend(rows(store))
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
