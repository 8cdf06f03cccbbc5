"""Options and helpers shared by every CLI command module.

Each area (ingest, caption, embed, ...) has a `commands.py` with a `register(app)`
function; `memeatlas.cli` calls them all. Commands stay thin: parse options, call
one library function, print a summary.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from memeatlas.ranges import Range
from memeatlas.store import Store

DbOption = Annotated[
    Path | None,
    typer.Option("--db", envvar="MEMEATLAS_DB", show_envvar=True,
                 help="DuckDB file holding the corpus [default: ./memeatlas.duckdb]."),
]
ForceOption = Annotated[bool, typer.Option("--force", help="Redo work that is already stored.")]


@contextmanager
def open_store(db: Path | None, *, read_only: bool = False, create: bool = False,
               **options: Any) -> Iterator[Store]:
    """Open the store for one command and close it afterwards (errors map in memeatlas.cli).

    Only the commands that add memes pass `create=True` (ingest, import-annotations, demo,
    run); for every other command a missing --db is an error naming the path.
    """
    store = Store.open(db, read_only=read_only, create=create, **options)
    try:
        yield store
    finally:
        store.close()


def echo_err(message: str) -> None:
    """Progress/summary text for humans: stderr, so stdout stays data."""
    typer.echo(message, err=True)


def echo_summary(title: str, fields: dict[str, Any]) -> None:
    """A short `key: value` summary block on stderr."""
    echo_err(title)
    width = max((len(k) for k in fields), default=0)
    for k, v in fields.items():
        if isinstance(v, float):
            v = f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"
        echo_err(f"  {k.ljust(width)}  {v}")


def echo_json(obj: Any) -> None:
    """Data to stdout as JSON."""
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def parse_kv(items: list[str] | None, option: str) -> dict[str, str]:
    """`a=b` pairs from a repeated option into a dict, with a clear error for malformed ones."""
    from memeatlas.errors import InputError

    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise InputError(f"{option} expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def in_range(rng: Range):
    """A typer `callback=` that checks an option against `rng` while the command line is parsed.

    So the check runs before any work, and a value out of range (NaN and infinities included,
    which typer's own min/max let through or word as a usage error) is a one-line `Error:`
    naming the option, its valid range and the value.
    """
    def check(param: typer.CallbackParam, value: Any) -> Any:
        if value is None:
            return None
        name = param.opts[0] if param.opts else str(param.name)
        if isinstance(value, (list, tuple)):
            return type(value)(rng.check(name, v) for v in value)
        return rng.check(name, value)

    return check
