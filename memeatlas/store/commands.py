"""`memeatlas sql`, `export` and `status`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from memeatlas.cli_common import DbOption, echo_err, open_store


def sql(
    query: Annotated[str, typer.Argument(help="SQL to run (read-only: SELECT, EXPLAIN, ...).")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="table | csv | json.")] = "table",
    max_width: Annotated[int, typer.Option(
        "--max-width", help="Cut table cells at this many characters (0: never).")] = 60,
    db: DbOption = None,
) -> None:
    """Run read-only SQL against the corpus; results go to stdout."""
    from memeatlas.output import write_rows
    from memeatlas.store.query import run_readonly

    with open_store(db, read_only=True) as store:
        cols, rows = run_readonly(store, query)
    write_rows(cols, rows, fmt, max_width=max_width or None)
    if fmt == "table":
        echo_err(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")


def export(
    name: Annotated[str, typer.Argument(help="Table or view, e.g. memes, entity_roles, "
                                        "cluster_members.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="parquet | jsonl | csv.")] = "parquet",
    out: Annotated[Path, typer.Option("--output", "-o", help="File to write.")] = Path("export.parquet"),
    db: DbOption = None,
) -> None:
    """Write a table or view to Parquet, JSONL or CSV."""
    from memeatlas.store.query import export as run_export

    with open_store(db, read_only=True) as store:
        n = run_export(store, name, fmt, str(out))
    echo_err(f"export: {n} rows of {name} -> {out}")


def status(
    fmt: Annotated[str, typer.Option("--format", "-f", help="table | csv | json.")] = "table",
    db: DbOption = None,
) -> None:
    """Counts per pipeline step (memes, annotations, embeddings, runs, ratings, ...)."""
    from memeatlas.output import write_rows
    from memeatlas.store.query import status as run_status

    with open_store(db, read_only=True) as store:
        rows = run_status(store)
    write_rows(["step", "what", "count"], rows, fmt)


def register(app: typer.Typer) -> None:
    """Add the store commands to the root app."""
    app.command("sql")(sql)
    app.command("export")(export)
    app.command("status")(status)
