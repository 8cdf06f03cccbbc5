"""`memeatlas sql`, `export`, `status` and `migrate`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from memeatlas.commands.common import DbOption, echo_err, echo_summary, open_store


def _check_format(fmt: str, allowed: tuple[str, ...]) -> None:
    """Refuse an unknown --format before anything is opened or run."""
    from memeatlas.errors import InputError

    if fmt not in allowed:
        raise InputError(f"unknown --format {fmt!r}; use one of {', '.join(allowed)}")


def sql(
    query: Annotated[str, typer.Argument(help="SQL to run (read-only: SELECT, EXPLAIN, ...).")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="table | csv | json.")] = "table",
    max_width: Annotated[int, typer.Option(
        "--max-width", help="Cut table cells at this many characters (0: never).")] = 60,
    allow_read: Annotated[list[Path] | None, typer.Option(
        "--allow-read", help="Let the query read local files under this folder (or this "
        "file), e.g. to join a CSV of your own; repeatable. Writing stays impossible.")] = None,
    timeout: Annotated[float, typer.Option(
        "--timeout", help="Stop the query after this many seconds (0: never).")] = 60.0,
    memory_limit: Annotated[str, typer.Option(
        "--memory-limit", help="Most memory the query may use, e.g. 512MB or 8GB (at least "
        "64MB); a query needing more stops with an error (nothing spills to disk).")] = "2GB",
    db: DbOption = None,
) -> None:
    """Run read-only SQL against the corpus; results go to stdout.

    The query runs on a read-only connection that cannot touch any file (unless
    --allow-read), load extensions or change settings, and only reading statements are
    accepted: SELECT (FROM-first, DESCRIBE, SHOW, SUMMARIZE, PIVOT, UNPIVOT), EXPLAIN
    [ANALYZE] of those, and reporting PRAGMAs such as table_info.
    """
    import math

    from memeatlas.errors import InputError
    from memeatlas.output import FORMATS, write_rows
    from memeatlas.store.query import run_readonly
    from memeatlas.store.sandbox import check_sql, memory_bytes

    _check_format(fmt, FORMATS)
    if not math.isfinite(timeout) or timeout < 0:
        raise InputError(f"--timeout {timeout:g}: give seconds >= 0 (0: no timeout)")
    memory_bytes(memory_limit)
    check_sql(query)  # refuse writes before the file is even opened
    with open_store(db, sandbox=True, allow_read=allow_read or (),
                    memory_limit=memory_limit) as store:
        cols, rows = run_readonly(store, query, timeout=timeout or None)
    write_rows(cols, rows, fmt, max_width=max_width or None)
    if fmt == "table":
        echo_err(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")


def export(
    name: Annotated[str | None, typer.Argument(
        help="Table or view, e.g. memes, entity_roles, cluster_members (or --all).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="parquet | jsonl | csv.")] = "parquet",
    out: Annotated[Path | None, typer.Option(
        "--output", "-o", help="File to write [default: export.parquet]; with --all, a "
        "folder [default: export/].")] = None,
    all_: Annotated[bool, typer.Option(
        "--all", help="Every table and view as Parquet, plus load.sql recreating the views "
        "over them, for clients that cannot open the DuckDB file.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Overwrite an existing -o file, or with --all write into a folder "
        "that is not empty.")] = False,
    run: Annotated[str | None, typer.Option(
        "--run", help="Instead of a table: members of this cluster run (with --cluster, of "
                      "one cluster).")] = None,
    cluster: Annotated[int | None, typer.Option(
        "--cluster", help="With --run: only this cluster's members.")] = None,
    ids: Annotated[Path | None, typer.Option(
        "--ids", help="Instead of a table: these memes (a file with a meme_id column: CSV, "
                      "JSONL or Parquet, e.g. from `search -f ids`).")] = None,
    label: Annotated[str | None, typer.Option(
        "--label", help="With --run/--ids: the label column's value, for `classify "
                        "import-labels` [default: the cluster's label].")] = None,
    db: DbOption = None,
) -> None:
    """Write a table or view to Parquet, JSONL or CSV, or the whole store with --all.

    An existing file or a folder with files in it is overwritten only with --force; what is
    written appears under its name only once complete (written beside it, then renamed).

    With --run R [--cluster C] or --ids FILE: the selected memes (meme_id, source_id, path,
    label, and the run's cluster and membership), a file that `classify import-labels`,
    `curate move --memes-file` and `report --ids` read.
    """
    from memeatlas.errors import InputError
    from memeatlas.store.query import EXPORT_FORMATS, export_all
    from memeatlas.store.query import export as run_export

    if run is not None or ids is not None or cluster is not None:
        from memeatlas.store.members import export_members, read_ids

        if name or all_:
            raise InputError("give a table name, --all, or --run/--ids, not several")
        _check_format(fmt, EXPORT_FORMATS)
        wanted = read_ids(ids) if ids is not None else None
        target = out or Path(f"members.{fmt}")
        with open_store(db, read_only=True) as store:
            n = export_members(store, target, fmt, run=run, cluster=cluster, ids=wanted,
                               label=label)
        echo_err(f"export: {n} memes -> {target}")
        return
    if all_:
        if name:
            raise InputError("give a table name or --all, not both")
        if fmt != "parquet":
            raise InputError("--all writes Parquet; leave out --format")
        folder = out or Path("export")
        with open_store(db, read_only=True) as store:
            s = export_all(store, folder, force=force)
        echo_summary(f"export: {len(s['relations'])} tables and views -> {folder}/", {
            "rows": s["rows"], "script": str(folder / "load.sql")})
        return
    if not name:
        raise InputError("name a table or view to export (e.g. memes), or give --all")
    _check_format(fmt, EXPORT_FORMATS)
    target = out or Path("export.parquet")
    with open_store(db, read_only=True) as store:
        n = run_export(store, name, fmt, target, force=force)
    echo_err(f"export: {n} rows of {name} -> {target}")


def status(
    fmt: Annotated[str, typer.Option("--format", "-f", help="table | csv | json.")] = "table",
    db: DbOption = None,
) -> None:
    """Counts per pipeline step (memes, annotations, embeddings, runs, ratings, ...), and the
    store's schema version and DuckDB storage format (which DuckDB versions read the file)."""
    from memeatlas.output import FORMATS, write_rows
    from memeatlas.pipeline import status as run_status

    _check_format(fmt, FORMATS)
    with open_store(db, read_only=True) as store:
        rows = run_status(store)
    write_rows(["step", "what", "count"], rows, fmt)


def migrate(
    storage_version: Annotated[str | None, typer.Option(
        "--storage-version", help="Also rewrite the file in this DuckDB storage format, e.g. "
        "v1.1.0 (readable by DuckDB 1.1 and later): copied to a new file, checked, then "
        "swapped in; the original is untouched until the swap.")] = None,
    db: DbOption = None,
) -> None:
    """Upgrade a store to this memeatlas's schema (and, optionally, DuckDB storage format)."""
    from memeatlas.store.convert import migrate_store

    s = migrate_store(db, storage_version=storage_version)
    fields = {"schema version": f"{s['schema_before']} -> {s['schema_after']}",
              "storage": s["storage_before"] if s["storage_before"] == s["storage_after"]
              else f"{s['storage_before']} -> {s['storage_after']}",
              "read by": s["readers"]}
    if s.get("rows_checked") is not None:
        fields["rows checked"] = s["rows_checked"]
    echo_summary(f"migrate: {s['path']}", fields)


def register(app: typer.Typer) -> None:
    """Add the store commands to the root app."""
    app.command("sql")(sql)
    app.command("export")(export)
    app.command("status")(status)
    app.command("migrate")(migrate)
