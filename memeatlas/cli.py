"""The `memeatlas` command line: a thin typer app.

Every area registers its commands from its module in `memeatlas/commands/`; this module
wires them together, handles the global switches, and turns memeatlas's own
exceptions into a one-line error with exit code 1.
"""

from __future__ import annotations

import importlib
import os
from typing import Annotated

import typer
from typer.core import TyperGroup

from memeatlas import __version__, progress
from memeatlas.errors import MemeatlasError


class _Group(TyperGroup):
    """Root group: memeatlas's own exceptions become `Error: …` and exit code 1; Ctrl-C
    becomes one line and exit code 130 (128 + SIGINT), as shells expect."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MemeatlasError as exc:
            # typer ships its own click, so raise typer.Exit rather than click's exception.
            typer.echo(f"Error: {exc}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            # Stored work is committed per batch or per transaction, so nothing half-written
            # remains; a traceback would only hide that.
            typer.echo("Error: interrupted (Ctrl-C); what was committed before stays stored",
                       err=True)
            raise typer.Exit(130) from None
        except RuntimeError as exc:
            # DuckDB turns a Ctrl-C during a query into RuntimeError("Query interrupted").
            if str(exc) != "Query interrupted":
                raise
            typer.echo("Error: interrupted (Ctrl-C); what was committed before stays stored",
                       err=True)
            raise typer.Exit(130) from None


app = typer.Typer(
    cls=_Group,
    name="memeatlas",
    help="Turn a folder of meme images into an annotated, clustered, evaluated corpus "
         "in one DuckDB file.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

# Areas in pipeline order; each module has register(app).
_AREAS = (
    "memeatlas.commands.ingest",
    "memeatlas.commands.caption",
    "memeatlas.commands.embed",
    "memeatlas.commands.images",
    "memeatlas.commands.cluster",
    "memeatlas.commands.search",
    "memeatlas.commands.evaluate",
    "memeatlas.commands.study",
    "memeatlas.commands.classify",
    "memeatlas.commands.report",
    "memeatlas.commands.pipeline",
    "memeatlas.commands.store",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"memeatlas {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    no_progress: Annotated[bool, typer.Option(
        "--no-progress", envvar="MEMEATLAS_NO_PROGRESS",
        help="Hide progress bars (they go to stderr).")] = False,
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """Turn a folder of meme images into an annotated, clustered, evaluated corpus in DuckDB."""
    if no_progress:
        progress.set_enabled(False)


for _mod in _AREAS:
    try:
        importlib.import_module(_mod).register(app)
    except ModuleNotFoundError as _exc:  # an area not built yet must not break the others
        if _exc.name != _mod:
            raise


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    app(prog_name="memeatlas")


if __name__ == "__main__":
    main()
