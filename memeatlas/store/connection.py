"""Opening the DuckDB file: path resolution, migrations, and readable lock errors."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from memeatlas.errors import (
    DatabaseLockedError,
    DatabaseNotFoundError,
    InputError,
    SchemaVersionError,
)
from memeatlas.store import migrate

DEFAULT_DB = "memeatlas.duckdb"
ENV_DB = "MEMEATLAS_DB"
# New stores are written in the oldest DuckDB storage format that holds everything the schema
# uses (FLOAT[]/VARCHAR[]/DOUBLE[] lists, JSON, BLOB, views with QUALIFY and from_json):
# DuckDB's tag 'v1.0.0+', which DuckDB 1.1 to 2.x read (docs/sql.md has the measurements).
STORAGE_VERSION = "v1.1.0"
CREATING_COMMANDS = "ingest, import-annotations, demo or run"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_DUCKDB_MAGIC = b"DUCK"  # at offset 8, after the header checksum
_HEADER_BYTES = 16


def resolve_path(db: str | os.PathLike[str] | None) -> Path:
    """`--db`, else $MEMEATLAS_DB, else ./memeatlas.duckdb."""
    return Path(db or os.environ.get(ENV_DB) or DEFAULT_DB)


_LOCK = re.compile(r"Conflicting lock is held in (.*?) \(PID (\d+)\)")


def _not_duckdb(head: bytes) -> str | None:
    """What a file's first bytes say it is, when that is not a DuckDB database (else None).

    A DuckDB file starts with an 8-byte checksum and the magic bytes "DUCK" (every storage
    version since 0.x); DuckDB itself would open a CSV, JSON or Parquet file given as a
    database as an in-memory view of it, so the header is checked before DuckDB sees the path.
    """
    if head[8:12] == _DUCKDB_MAGIC:
        return None
    if head.startswith(_SQLITE_MAGIC):
        return "a SQLite database"
    if head.startswith(b"PAR1"):
        return "a Parquet file"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "not a DuckDB database file"
    return "a text file (CSV, JSON, ...), not a DuckDB database file"


def _check_file(path: Path) -> None:
    """One-line errors for a --db that is no DuckDB file at all (before DuckDB sees it)."""
    if path.is_dir():
        raise InputError(f"--db {path} is a directory; pass a file name such as "
                         f"{path / DEFAULT_DB}")
    if path.exists() and not path.is_file():
        raise InputError(f"--db {path} is not a regular file; pass a DuckDB file")
    if path.is_file():
        try:
            with path.open("rb") as fh:
                head = fh.read(_HEADER_BYTES)
        except OSError as exc:
            raise InputError(f"cannot read {path} ({exc.strerror}); pass another --db") from None
        if not head:
            return  # an empty file: a new store (creating commands) or "empty" (the others)
        what = _not_duckdb(head)
        if what == "a SQLite database":
            raise InputError(f"{path} is a SQLite database, not a DuckDB file; memeatlas keeps "
                             f"its corpus in a DuckDB file: pass another --db (a new name is "
                             f"created by `memeatlas ingest`)")
        if what:
            raise InputError(f"--db {path} is {what}; memeatlas keeps its corpus in a DuckDB "
                             f"file: pass another --db (a new name is created by `memeatlas "
                             f"ingest`)")


def _connect(path: Path, read_only: bool, config: dict[str, Any] | None = None
             ) -> duckdb.DuckDBPyConnection:
    try:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config or {})
        except duckdb.ConnectionException as exc:
            # This process already holds the file under the other setting (a store created
            # here with the compatibility version, then opened again, or the reverse): DuckDB
            # shares one instance per file, so join it as it was opened.
            if "different configuration" not in str(exc):
                raise
            other = {} if config else {"storage_compatibility_version": STORAGE_VERSION}
            return duckdb.connect(str(path), read_only=read_only, config=other)
    except duckdb.IOException as exc:
        msg = str(exc)
        if "lock" in msg.lower():
            m = _LOCK.search(msg)
            who = f" (PID {m.group(2)})" if m else ""
            raise DatabaseLockedError(
                f"database {path} is in use by another process{who}; wait for it to finish "
                f"or pass another --db"
            ) from None
        # Not a DuckDB file, a directory, unreadable...: the user's --db, so no traceback.
        raise InputError(f"cannot open {path} as a memeatlas database ({msg.splitlines()[0]}); "
                         f"pass another --db") from None


class Store:
    """One DuckDB file holding the whole corpus. Use `Store.open(path)`; close it or use `with`."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path, read_only: bool,
                 sandboxed: bool = False) -> None:
        self.con = con
        self.path = path
        self.read_only = read_only
        self.sandboxed = sandboxed
        self._tx_depth = 0  # open transaction() blocks; inner ones join the outermost

    @classmethod
    def open(cls, db: str | os.PathLike[str] | None = None, *, read_only: bool = False,
             migrate_to: int | None = None, create: bool = True, sandbox: bool = False,
             allow_read: Sequence[str | os.PathLike[str]] = (),
             memory_limit: str | None = None, check_schema: bool = True) -> Store:
        """Open (creating if needed and `create`) and migrate; read-only opens never create or
        migrate, and refuse a store whose schema is older or newer than this memeatlas.

        `sandbox`: read-only, and locked down for user SQL (no file access except reads under
        `allow_read`, no extensions, no settings, memory capped at `memory_limit` or
        the sandbox's default; `memeatlas.store.sandbox`).
        `create=False`: a missing file is an error naming the path (commands that only work
        on existing memes). `migrate_to` stops at an older migration, which tests use to build
        old databases. A DuckDB file without memeatlas's `schema_migrations` table that holds
        tables is refused, never turned into a store.
        """
        path = resolve_path(db)
        _check_file(path)
        if read_only or sandbox:
            if not path.exists():
                raise DatabaseNotFoundError(
                    f"no database at {path}; run `memeatlas ingest` first or pass --db"
                )
            con = _connect(path, read_only=True)
            try:
                _check_foreign(con, path)
                if check_schema:
                    _check_schema(con, path, writable=False)
                if sandbox:
                    from memeatlas.store.sandbox import restrict

                    restrict(con, allow_read,
                             **({"memory_limit": memory_limit} if memory_limit else {}))
            except BaseException:
                con.close()
                raise
            return cls(con, path, True, sandboxed=sandbox)
        new = not path.exists() or path.stat().st_size == 0
        if new and not create:
            raise DatabaseNotFoundError(
                f"no database at {path}; only `memeatlas {CREATING_COMMANDS}` create a store: "
                f"check --db (or $MEMEATLAS_DB), or ingest memes first")
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        if new and path.exists():
            path.unlink()  # a 0-byte file (e.g. from `touch`): DuckDB refuses it, nothing to keep
        con = _connect(path, read_only=False,
                       config={"storage_compatibility_version": STORAGE_VERSION} if new else None)
        try:
            if not new:
                _check_foreign(con, path)
                if check_schema:
                    _check_schema(con, path, writable=True)
            migrate.apply(con, target=migrate_to)
            _record_format(con, "created" if new else "recorded")
        except BaseException:
            con.close()
            if new and path.exists() and path.stat().st_size == 0:
                path.unlink()
            raise
        return cls(con, path, False)

    @property
    def schema_version(self) -> int:
        """The highest migration applied to this file."""
        return migrate.current_version(self.con)

    def close(self) -> None:
        """Close the connection (checkpointing the WAL)."""
        try:
            self.con.close()
        except duckdb.Error:
            # A read-only sandbox whose query was just interrupted (Ctrl-C) may still count as
            # busy; it wrote nothing, and the process ends anyway.
            if not self.sandboxed:
                raise

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Thin helpers so callers don't each re-spell cursor handling.
    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None
                ) -> duckdb.DuckDBPyConnection:
        """Run one statement with parameters."""
        return self.con.execute(sql, params) if params is not None else self.con.execute(sql)

    def fetchall(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None
                 ) -> list[tuple]:
        return self.execute(sql, params).fetchall()

    def fetchone(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None
                 ) -> tuple | None:
        # fetchall, not fetchone: DuckDB 2.0 keeps a half-read result open, and a later
        # con.register() on the same connection then fails with "unfinished result".
        rows = self.execute(sql, params).fetchall()
        return rows[0] if rows else None

    def scalar(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> Any:
        row = self.fetchone(sql, params)
        return None if row is None else row[0]

    def fetch_dict(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None
                   ) -> dict[str, Any] | None:
        """The first row as a {column: value} dict, or None."""
        cur = self.execute(sql, params)
        rows = cur.fetchall()
        return dict(zip([d[0] for d in cur.description], rows[0], strict=True)) if rows else None

    @contextmanager
    def registered(self, name: str, table: Any) -> Iterator[None]:
        """Expose an Arrow table (or DataFrame) to SQL as `name` for the duration of the block.

        Bulk writes go through this: DuckDB's executemany costs milliseconds per row.
        """
        self.con.register(name, table)
        try:
            yield
        finally:
            self.con.unregister(name)

    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
                    ) -> None:
        """Bulk INSERT of row tuples through a registered Arrow table."""
        import pyarrow as pa

        if not rows:
            return
        data = pa.table({c: [r[i] for r in rows] for i, c in enumerate(columns)})
        cols = ", ".join(columns)
        with self.registered(f"_memeatlas_ins_{table}", data):
            self.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _memeatlas_ins_{table}")

    def df(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None):
        """Result as a pandas DataFrame."""
        return self.execute(sql, params).df()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """BEGIN … COMMIT, rolling back on any exception so nothing is half-written.

        A block opened inside another joins it: only the outermost commits, so a derived run
        and everything that makes it whole (e.g. a curated run and its labels, written by
        `cluster.label`'s own block) commit together. An exception in an inner block rolls
        back the whole transaction when it reaches the outer one.
        """
        if self._tx_depth:
            self._tx_depth += 1
            try:
                yield self.con
            finally:
                self._tx_depth -= 1
            return
        self.con.execute("BEGIN TRANSACTION")
        self._tx_depth = 1
        try:
            yield self.con
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        else:
            self.con.execute("COMMIT")
        finally:
            self._tx_depth = 0

    def table_exists(self, name: str) -> bool:
        return bool(self.scalar(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]))


def _user_relations(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Tables and views of the file itself (not DuckDB's internal ones)."""
    return [r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "UNION ALL SELECT view_name FROM duckdb_views() WHERE database_name = current_database() "
        "AND NOT internal ORDER BY 1").fetchall()]


def _check_foreign(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Refuse a non-empty DuckDB file that memeatlas did not create."""
    rels = _user_relations(con)
    if rels and "schema_migrations" not in rels:
        shown = ", ".join(rels[:3]) + (", ..." if len(rels) > 3 else "")
        raise InputError(
            f"{path} is a DuckDB database memeatlas did not create (it has {len(rels)} "
            f"table(s)/view(s): {shown}, and no schema_migrations); memeatlas keeps its corpus "
            f"in a file of its own: pass --db with a new file name, e.g. --db {DEFAULT_DB}")


def _check_schema(con: duckdb.DuckDBPyConnection, path: Path, *, writable: bool) -> None:
    """A newer schema is never opened; an older one only by commands that migrate."""
    have = migrate.current_version(con)
    latest = len(migrate.available())
    if have > latest:
        raise SchemaVersionError(
            f"{path} has schema version {have}, written by a newer memeatlas (this one knows "
            f"versions up to {latest}); upgrade memeatlas to use it")
    if not writable and have < latest:
        if have == 0 and not _user_relations(con):
            raise SchemaVersionError(
                f"{path} is an empty DuckDB file, not a memeatlas store yet; "
                f"`memeatlas ingest --db {path} ...` fills it")
        raise SchemaVersionError(
            f"{path} has schema version {have}; this memeatlas reads version {latest}: run "
            f"`memeatlas migrate --db {path}` to upgrade it in place (any write command, "
            f"such as ingest, upgrades it too)")


def storage_version(con: duckdb.DuckDBPyConnection) -> str:
    """DuckDB's tag for the storage format of the connection's file, e.g. 'v1.0.0+'."""
    row = con.execute("SELECT tags FROM duckdb_databases() WHERE database_name = "
                      "current_database()").fetchone()
    tags = row[0] if row else None
    return str((tags or {}).get("storage_version") or "unknown")


def _record_format(con: duckdb.DuckDBPyConnection, event: str, detail: dict | None = None,
                   *, always: bool = False) -> None:
    """Note the file's storage format in `store_format` (once per store, and per conversion)."""
    import json

    from memeatlas import __version__

    if not con.execute("SELECT count(*) FROM information_schema.tables "
                       "WHERE table_name = 'store_format'").fetchone()[0]:
        return  # a store held at an older migration (tests)
    if not always and con.execute("SELECT count(*) FROM store_format").fetchone()[0]:
        return
    con.execute("INSERT INTO store_format (storage_version, duckdb_version, memeatlas_version, "
                "event, detail) VALUES (?, ?, ?, ?, ?)",
                [storage_version(con), duckdb.__version__, __version__, event,
                 json.dumps(detail) if detail else None])
