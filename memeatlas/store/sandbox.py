"""Restricted DuckDB connections for user SQL (`memeatlas sql`, `--where`).

Two independent guards, both from DuckDB itself rather than string matching:

1. the connection: read-only (or an in-memory copy), `enable_external_access = false` and
   `lock_configuration = true` set before any user text runs, so no statement can open a
   file (read or write), load an extension, attach a database, or change a setting;
2. the statements: split and classified by DuckDB's parser (`extract_statements`) and its
   tokenizer (`duckdb.tokenize`, which knows strings and comments), and only reading kinds
   are let through (SELECT and its sugar: FROM-first, DESCRIBE, SHOW, SUMMARIZE, PIVOT,
   UNPIVOT; EXPLAIN [ANALYZE] of those; a short list of reading PRAGMAs).

`--allow-read DIR` lifts guard 1 for reading files under DIR only: DuckDB's
`allowed_directories` would also let COPY write there, so guard 2 is what keeps that
connection write-free, and it refuses every statement kind that can write (COPY, EXPORT,
SET/PRAGMA assignments, CALL, ATTACH, ...), including inside EXPLAIN ANALYZE.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import duckdb

from memeatlas.errors import InputError, ReadOnlyViolation

# PRAGMAs that only report; anything else (including `PRAGMA x = y`) is refused.
READ_PRAGMAS = frozenset({
    "table_info", "show_tables", "show_tables_expanded", "show", "database_size",
    "database_list", "storage_info", "version", "platform", "functions", "collations",
    "metadata_info", "user_agent", "show_databases",
})


# Defaults of `memeatlas sql` (docs/reliability.md): a runaway query is stopped, not left to
# take the machine's memory (DuckDB's own default is 80 % of RAM) or hours.
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MEMORY_LIMIT = "2GB"
MIN_MEMORY_BYTES = 64 * 1000**2
_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
          "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}

# Settings whose values are paths that say nothing about the corpus (the home directory's
# secrets, extension and temp folders): blanked, so `duckdb_settings()` does not show them,
# and, for temp_directory, so a query over the memory cap fails instead of spilling to disk.
_HIDDEN_PATHS = ("secret_directory", "extension_directory", "temp_directory")


def memory_bytes(limit: str, option: str = "--memory-limit") -> int:
    """Bytes of a DuckDB memory size such as '2GB' or '512MiB'; InputError with the valid
    range otherwise (checked before any file is opened)."""
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(limit))
    unit = (m.group(2) or "b").lower() if m else ""
    if not m or unit not in _UNITS:
        raise InputError(f"{option} {limit!r}: give a size such as 2GB, 512MB or 1GiB "
                         f"(at least 64MB)")
    n = int(float(m.group(1)) * _UNITS[unit])
    if n < MIN_MEMORY_BYTES:
        raise InputError(f"{option} {limit!r} is below the minimum of 64MB; give 64MB or more")
    return n


def restrict(con: duckdb.DuckDBPyConnection, allow_read: Sequence[str | os.PathLike[str]] = (),
             *, memory_limit: str = DEFAULT_MEMORY_LIMIT) -> duckdb.DuckDBPyConnection:
    """Lock `con` down before user SQL runs: no file access (except reads under `allow_read`),
    no extensions, no setting changes, memory capped at `memory_limit` (no spilling to disk),
    paths outside the corpus hidden. Irreversible for the connection's database.

    Everything is set here, in one place, before `lock_configuration` freezes it."""
    dirs = []
    for d in allow_read:
        p = Path(d).expanduser().resolve()
        if not p.exists():
            raise InputError(f"--allow-read {d}: no such file or directory")
        dirs.append(str(p) + ("/" if p.is_dir() else ""))
    if dirs:
        folders = [d for d in dirs if d.endswith("/")]
        files = [d for d in dirs if not d.endswith("/")]
        if folders:
            con.execute("SET allowed_directories = ?", [folders])
        if files:
            con.execute("SET allowed_paths = ?", [files])
    con.execute("SET memory_limit = ?", [f"{memory_bytes(memory_limit)}B"])
    con.execute("SET max_temp_directory_size = '0B'")
    for name in _HIDDEN_PATHS:
        con.execute(f"SET {name} = ''")
    con.execute("SET allow_persistent_secrets = false")
    con.execute("SET enable_progress_bar = false")  # stdout is the query's data
    con.execute("SET enable_external_access = false")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET lock_configuration = true")
    return con


def tokens(sql: str) -> list[tuple[int, str, str]]:
    """(position, type, text) of every non-comment token, from DuckDB's own tokenizer."""
    raw = duckdb.tokenize(sql)
    out = []
    for i, (pos, kind) in enumerate(raw):
        end = raw[i + 1][0] if i + 1 < len(raw) else len(sql)
        name = kind.name if hasattr(kind, "name") else str(kind).split(".")[-1]
        if name == "comment":
            continue
        out.append((pos, name, sql[pos:end].strip()))
    return out


def _refuse(kind: str, what: str = "") -> ReadOnlyViolation:
    return ReadOnlyViolation(
        f"`memeatlas sql` is read-only and refuses {kind} statements{what}; use the memeatlas "
        f"commands to change the corpus, or open a copy of the file with duckdb yourself")


def _check_pragma(sql: str) -> None:
    toks = tokens(sql)
    name = toks[1][2].lower() if len(toks) > 1 and toks[0][2].upper() == "PRAGMA" else ""
    if name not in READ_PRAGMAS:
        raise _refuse("PRAGMA", f" other than {', '.join(sorted(READ_PRAGMAS))}")
    if any(t[1] == "operator" and "=" in t[2] for t in toks[2:]):
        raise _refuse("PRAGMA assignment")


def _explained(sql: str) -> str:
    """The statement an EXPLAIN wraps (its text), found with DuckDB's tokenizer."""
    toks = tokens(sql)
    i = 1  # toks[0] is EXPLAIN
    if i < len(toks) and toks[i][2].upper() == "ANALYZE":
        i += 1
    elif i < len(toks) and toks[i][2] == "(":
        depth = 0
        while i < len(toks):
            if toks[i][1] == "operator" and toks[i][2] == "(":
                depth += 1
            elif toks[i][1] == "operator" and toks[i][2] == ")":
                depth -= 1
                if depth == 0:
                    i += 1
                    break
            i += 1
    if i >= len(toks):
        raise _refuse("EXPLAIN", " without a statement")
    return sql[toks[i][0]:]


def check_statement(st: duckdb.Statement, *, depth: int = 0) -> None:
    """Raise ReadOnlyViolation unless `st` (one parsed statement) can only read."""
    kind = st.type.name
    if kind == "SELECT":
        return
    if kind == "MULTI":  # PIVOT without an explicit IN list plans as several statements
        toks = tokens(st.query)
        if toks and toks[0][2].upper() in ("PIVOT", "PIVOT_WIDER", "UNPIVOT", "PIVOT_LONGER"):
            return
        raise _refuse(kind)
    if kind == "PRAGMA":
        _check_pragma(st.query)
        return
    if kind == "EXPLAIN" and depth == 0:
        inner = duckdb.extract_statements(_explained(st.query))
        if len(inner) != 1:
            raise _refuse("EXPLAIN", " of more than one statement")
        try:
            check_statement(inner[0], depth=1)
        except ReadOnlyViolation:
            raise _refuse(f"EXPLAIN {inner[0].type.name}") from None
        return
    raise _refuse(kind)


def check_sql(sql: str) -> list[duckdb.Statement]:
    """Parse `sql` with DuckDB and return its statements if every one only reads."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise InputError(f"SQL error: {str(exc).splitlines()[0]}") from None
    if not statements:
        raise InputError("no SQL statement given")
    for st in statements:
        check_statement(st)
    return statements


def allowed_kinds() -> Iterable[str]:
    """For messages and docs: what `sql` runs."""
    return ("SELECT (incl. FROM-first, DESCRIBE, SHOW, SUMMARIZE, PIVOT, UNPIVOT, VALUES)",
            "EXPLAIN [ANALYZE] of those", f"PRAGMA {', '.join(sorted(READ_PRAGMAS))}")


# Functions that layers above the store add to user SQL (memeatlas.search adds search() and
# similarity()). The store cannot import them; they register here when their commands load.
# Each hook gets (store, sql) on the sandboxed connection after it is locked and before the
# user's statements run, and may create TEMP macros and Python functions on it.
_SQL_FUNCTIONS: list = []


def add_sql_functions(hook) -> None:
    """Register `hook(store, sql)`, called by `run_readonly` before user SQL runs."""
    if hook not in _SQL_FUNCTIONS:
        _SQL_FUNCTIONS.append(hook)


def install_sql_functions(store, sql: str) -> None:
    """Run every registered hook (see add_sql_functions)."""
    for hook in _SQL_FUNCTIONS:
        hook(store, sql)
