"""`memeatlas run` and `memeatlas demo`: the whole pipeline in one command."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Filled in by the pipeline work (issue 7)."""
