"""`memeatlas migrate`: schema upgrade, and crash-safe conversion to another storage format.

The conversion never writes to the original file. DuckDB copies the whole database
(`COPY FROM DATABASE`: tables with their keys, views, sequences, macros) into
`<file>.converting`, attached with the wanted `STORAGE_VERSION`; every table's row count
is compared, the copy is checkpointed, closed and fsync'ed, and only then `os.replace`
swaps it in (an atomic rename on POSIX file systems). A crash before the swap leaves the original as it
was plus a stray `.converting` file that the next run deletes; a crash after it leaves the
converted file. The original stays attached read-only until the swap, so no memeatlas
writer can slip in between the copy and the swap.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import duckdb

from memeatlas.errors import DatabaseNotFoundError, InputError, MemeatlasError
from memeatlas.store.connection import Store, _record_format, resolve_path, storage_version

# What DuckDB's STORAGE_VERSION accepts: a release ('v1.1.0') or 'latest'.
_VERSION = re.compile(r"^(v\d+\.\d+\.\d+|latest)$")


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def convert_storage(path: str | os.PathLike[str], version: str) -> dict[str, Any]:
    """Rewrite the store at `path` in DuckDB storage format `version` (e.g. 'v1.1.0').

    Returns {storage_before, storage_after, rows_checked, seconds}. Raises InputError for
    an unknown version and MemeatlasError when the copy does not match (the original is
    then untouched and the partial copy deleted).
    """
    path = Path(path)
    if not _VERSION.match(version):
        raise InputError(f"--storage-version {version!r}: give a DuckDB release such as "
                         f"v1.1.0, or latest")
    tmp = path.with_name(path.name + ".converting")
    for stray in (tmp, tmp.with_name(tmp.name + ".wal")):
        stray.unlink(missing_ok=True)  # left by a conversion that was killed
    if path.with_name(path.name + ".wal").exists():
        raise MemeatlasError(f"{path} has an unfinished write-ahead log ({path.name}.wal); run "
                             f"`memeatlas status --db {path}` once, then convert")
    t0 = time.perf_counter()
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"ATTACH '{_quote(path)}' AS src (READ_ONLY)")
        con.execute("USE src")
        before = storage_version(con)
        try:
            con.execute(f"ATTACH '{_quote(tmp)}' AS dst (STORAGE_VERSION '{version}')")
        except duckdb.Error as exc:
            raise InputError(f"--storage-version {version}: {str(exc).splitlines()[0]}") from None
        con.execute("COPY FROM DATABASE src TO dst")
        rows = _verify(con)
        con.execute("USE dst")
        after = storage_version(con)
        _record_format(con, "converted", {"from": before, "to": after, "rows": rows,
                                          "storage_compatibility_version": version},
                       always=True)
        con.execute("USE memory")
        con.execute("DETACH dst")  # checkpoints and closes the copy
        if tmp.with_name(tmp.name + ".wal").exists():
            raise MemeatlasError(f"the converted copy {tmp} was not closed cleanly; "
                                 f"the original is unchanged")
        _fsync(tmp)
        os.replace(tmp, path)
        if os.name == "posix":
            _fsync(path.parent)
        con.execute("DETACH src")
    except BaseException:
        con.close()
        tmp.unlink(missing_ok=True)
        tmp.with_name(tmp.name + ".wal").unlink(missing_ok=True)
        raise
    con.close()
    return {"storage_before": before, "storage_after": after, "rows_checked": rows,
            "seconds": round(time.perf_counter() - t0, 3)}


def _verify(con: duckdb.DuckDBPyConnection) -> int:
    """Same tables, views and row counts in src and dst; returns the rows compared."""
    def names(db: str, fn: str, col: str, extra: str = "") -> list[str]:
        return [r[0] for r in con.execute(
            f"SELECT {col} FROM {fn}() WHERE database_name = ? {extra} ORDER BY 1",
            [db]).fetchall()]

    for fn, col, extra in (("duckdb_tables", "table_name", ""),
                           ("duckdb_views", "view_name", "AND NOT internal")):
        a, b = names("src", fn, col, extra), names("dst", fn, col, extra)
        if a != b:
            raise MemeatlasError(f"conversion check failed: {fn} differ ({a} vs {b}); "
                                 f"the original is unchanged")
    total = 0
    for t in names("src", "duckdb_tables", "table_name"):
        n_src = con.execute(f'SELECT count(*) FROM src."{t}"').fetchone()[0]
        n_dst = con.execute(f'SELECT count(*) FROM dst."{t}"').fetchone()[0]
        if n_src != n_dst:
            raise MemeatlasError(f"conversion check failed: {t} has {n_src} rows but the copy "
                                 f"{n_dst}; the original is unchanged")
        total += n_src
    return total


def migrate_store(db: str | os.PathLike[str] | None, *, storage_version: str | None = None
                  ) -> dict[str, Any]:
    """Apply pending schema migrations, then (optionally) convert the storage format."""
    from memeatlas.store import migrate
    from memeatlas.store.query import readers

    path = resolve_path(db)
    if not path.exists():
        raise DatabaseNotFoundError(f"no database at {path}; check --db (or $MEMEATLAS_DB)")
    with Store.open(path, read_only=True, check_schema=False) as old:
        schema_before = old.schema_version
        storage_before = _tag(old)
    with Store.open(path, create=False) as s:  # applies pending migrations
        schema_after = s.schema_version
    out: dict[str, Any] = {"path": str(path), "schema_before": schema_before,
                           "schema_after": schema_after, "storage_before": storage_before,
                           "storage_after": storage_before, "rows_checked": None}
    if schema_after != len(migrate.available()):
        raise MemeatlasError(f"{path}: schema version {schema_after} after migrating")
    if storage_version:
        c = convert_storage(path, storage_version)
        out.update(storage_after=c["storage_after"], rows_checked=c["rows_checked"],
                   seconds=c["seconds"])
    out["readers"] = readers(out["storage_after"])
    return out


def _tag(store: Store) -> str:
    return storage_version(store.con)
