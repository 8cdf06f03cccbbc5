"""Opening the DuckDB file: path resolution, migrations, and readable lock errors."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from memeatlas.errors import DatabaseLockedError, DatabaseNotFoundError, InputError
from memeatlas.store import migrate

DEFAULT_DB = "memeatlas.duckdb"
ENV_DB = "MEMEATLAS_DB"


def resolve_path(db: str | os.PathLike[str] | None) -> Path:
    """`--db`, else $MEMEATLAS_DB, else ./memeatlas.duckdb."""
    return Path(db or os.environ.get(ENV_DB) or DEFAULT_DB)


_LOCK = re.compile(r"Conflicting lock is held in (.*?) \(PID (\d+)\)")


def _connect(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(str(path), read_only=read_only)
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

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path, read_only: bool) -> None:
        self.con = con
        self.path = path
        self.read_only = read_only

    @classmethod
    def open(cls, db: str | os.PathLike[str] | None = None, *, read_only: bool = False,
             migrate_to: int | None = None) -> Store:
        """Open (creating if needed) and migrate; read-only opens never create or migrate.

        `migrate_to` stops at an older migration, which tests use to build old databases.
        """
        path = resolve_path(db)
        if read_only:
            if not path.exists():
                raise DatabaseNotFoundError(
                    f"no database at {path}; run `memeatlas ingest` first or pass --db"
                )
            return cls(_connect(path, read_only=True), path, True)
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        con = _connect(path, read_only=False)
        migrate.apply(con, target=migrate_to)
        return cls(con, path, False)

    @property
    def schema_version(self) -> int:
        """The highest migration applied to this file."""
        return migrate.current_version(self.con)

    def close(self) -> None:
        """Close the connection (checkpointing the WAL)."""
        self.con.close()

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
        """BEGIN … COMMIT, rolling back on any exception so nothing is half-written."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield self.con
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        else:
            self.con.execute("COMMIT")

    def table_exists(self, name: str) -> bool:
        return bool(self.scalar(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]))
