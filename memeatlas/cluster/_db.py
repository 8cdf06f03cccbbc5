"""Small query helpers that always drain their result.

DuckDB 2.0 refuses new work on a connection while an earlier result is not fully fetched, and
`fetchone()` does not finish a result; these read everything and return the first row/value.
"""

from __future__ import annotations

from typing import Any


def one(store, sql: str, params: Any = None) -> tuple | None:
    rows = store.execute(sql, params).fetchall()
    return rows[0] if rows else None


def scalar(store, sql: str, params: Any = None) -> Any:
    row = one(store, sql, params)
    return None if row is None else row[0]


def register(store, name: str, table: Any) -> None:
    """`con.register` after draining any result another module left half-read."""
    store.execute("SELECT 1").fetchall()
    store.con.register(name, table)
