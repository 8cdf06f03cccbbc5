"""`--where`: one boolean expression over `memes` (alias `m`), checked and evaluated in a sandbox.

The user's text is never put into a statement on the store's (write) connection. It is
parsed by DuckDB's parser (`json_serialize_sql`) as the WHERE clause of the fixed query
`SELECT * FROM memes AS m WHERE …`; the parse tree must be exactly that query with one
WHERE expression (no extra statements, set operations, ORDER/LIMIT/GROUP/QUALIFY/SAMPLE,
parameters), the expression must be BOOLEAN, and it is evaluated on a private in-memory
copy of `memes` in a connection with file access, extensions and settings locked
(`memeatlas.store.sandbox.restrict`). What runs is the statement regenerated from the
checked parse tree. The result is a set of meme ids the caller filters with.

`user_query` does the same for a whole user SELECT (`--truth "SELECT meme_id, label ..."`):
one reading statement, run on a locked-down copy of exactly the relations it names.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

from memeatlas.errors import InputError
from memeatlas.store.sandbox import restrict, tokens

_FIXED = "SELECT * FROM memes AS m WHERE "


def _strip_locations(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_locations(v) for k, v in node.items()
                if not k.startswith("query_location")}
    if isinstance(node, list):
        return [_strip_locations(v) for v in node]
    return node


def _refuse(where: str, why: str) -> InputError:
    return InputError(f"--where {where!r} is not one condition on memes (alias m): {why}")


def _sandbox(store, relations: tuple[str, ...] = ("memes",)) -> duckdb.DuckDBPyConnection:
    """An in-memory connection holding copies of `relations` (tables or views of the store, as
    tables of the same name), locked down before user text runs."""
    mem = duckdb.connect(":memory:")
    # A cursor of its own: the caller's connection may hold a half-read result (DuckDB 2.0).
    cur = store.con.cursor()
    try:
        for name in relations:
            table = cur.sql(f'SELECT * FROM "{name}"').to_arrow_table()
            mem.register("_src", table)
            mem.execute(f'CREATE TABLE "{name}" AS SELECT * FROM _src')
            mem.unregister("_src")
    finally:
        cur.close()
    # json_serialize_sql lives in the json extension; load it while loading is still allowed.
    mem.execute("LOAD json")
    return restrict(mem)


def _base_tables(node: Any) -> set[str]:
    """Names a parse tree reads as tables (BASE_TABLE refs; CTE names included)."""
    found: set[str] = set()
    if isinstance(node, dict):
        if node.get("type") == "BASE_TABLE" and node.get("table_name"):
            found.add(str(node["table_name"]))
        for v in node.values():
            found |= _base_tables(v)
    elif isinstance(node, list):
        for v in node:
            found |= _base_tables(v)
    return found


def user_query(store, sql: str, option: str) -> tuple[list[str], list[tuple]]:
    """Run one user-given SELECT (e.g. `--truth "SELECT meme_id, label FROM ..."`) without
    letting it near the store's connection: it must be a single reading statement, and it runs
    on a locked-down in-memory copy of exactly the store's tables and views it names.
    Returns (columns, rows); anything else is an InputError naming `option`."""
    from memeatlas.errors import ReadOnlyViolation
    from memeatlas.store.sandbox import check_sql

    try:
        statements = check_sql(sql)
    except (InputError, ReadOnlyViolation) as exc:
        raise InputError(f"{option}: {exc}") from None
    if len(statements) != 1:
        raise InputError(f"{option} must be one SELECT statement, not {len(statements)}")
    parser = duckdb.connect(":memory:")
    try:
        parser.execute("LOAD json")
        tree = json.loads(parser.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0])
    finally:
        parser.close()
    if tree.get("error"):
        raise InputError(f"{option}: {str(tree.get('error_message')).splitlines()[0]}")
    names = {r[0] for r in store.fetchall(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'")}
    used = tuple(sorted(_base_tables(tree) & names))
    mem = _sandbox(store, used)
    try:
        cur = mem.execute(sql)
        rows = cur.fetchall()
        cols = [d[0] for d in cur.description] if cur.description else []
    except duckdb.Error as exc:
        raise InputError(f"{option} failed: {str(exc).splitlines()[0]}") from None
    finally:
        mem.close()
    return cols, rows


def _parse(mem: duckdb.DuckDBPyConnection, where: str) -> dict[str, Any]:
    """The parse tree of the fixed query with `where` as its WHERE clause, checked for shape."""
    tree = json.loads(mem.execute("SELECT json_serialize_sql(?)", [_FIXED + where]).fetchone()[0])
    depth = 0
    for _pos, kind, text in tokens(where):
        depth += (text == "(") - (text == ")") if kind == "operator" else 0
        if depth == 0 and kind == "keyword" and text.upper() == "WINDOW":
            # the parser drops an unused WINDOW clause, so the tree alone cannot show it
            raise _refuse(where, "a WINDOW clause is not a condition")
    if tree.get("error"):
        msg = str(tree.get("error_message", "does not parse")).splitlines()[0]
        if "Only SELECT statements" in msg:  # `true; DELETE ...`: a second statement
            msg = "only one expression is allowed, not further statements"
        raise _refuse(where, msg)
    statements = tree.get("statements") or []
    if len(statements) != 1:
        raise _refuse(where, "it holds more than one statement")
    node = statements[0].get("node") or {}
    if statements[0].get("named_param_map"):
        raise _refuse(where, "parameters ($1, ?) are not allowed")
    reference = json.loads(mem.execute("SELECT json_serialize_sql(?)",
                                       [_FIXED + "true"]).fetchone()[0])["statements"][0]["node"]
    got = _strip_locations({k: v for k, v in node.items() if k != "where_clause"})
    want = _strip_locations({k: v for k, v in reference.items() if k != "where_clause"})
    if got != want or not node.get("where_clause"):
        raise _refuse(where, "it must be a single expression, without ORDER BY, LIMIT, GROUP BY, "
                             "QUALIFY, UNION, SAMPLE or a second statement")
    return tree


def _sql(mem: duckdb.DuckDBPyConnection, tree: dict[str, Any]) -> str:
    return mem.execute("SELECT json_deserialize_sql(?)", [json.dumps(tree)]).fetchone()[0]


def where_ids(store, where: str | None) -> set[str] | None:
    """meme_ids matching the user's `--where` (None: no filter given).

    Raises InputError (one line, naming `--where`) for anything but one BOOLEAN expression
    over `memes m`; nothing is written anywhere, whatever the text.
    """
    if where is None or not where.strip():
        return None
    mem = _sandbox(store)
    try:
        tree = _parse(mem, where)
        node = tree["statements"][0]["node"]
        probe = json.loads(json.dumps(tree))
        pnode = probe["statements"][0]["node"]
        pnode["select_list"] = [node["where_clause"]]
        pnode["where_clause"] = None
        try:
            kinds = [r[1] for r in mem.execute(f"DESCRIBE {_sql(mem, probe)}").fetchall()]
            if kinds != ["BOOLEAN"]:
                raise _refuse(where, f"it is {', '.join(kinds)}, not a true/false condition")
            rows = mem.execute(f"SELECT meme_id FROM ({_sql(mem, tree)})").fetchall()
        except duckdb.Error as exc:
            raise _refuse(where, str(exc).splitlines()[0]) from None
        return {r[0] for r in rows}
    finally:
        mem.close()
