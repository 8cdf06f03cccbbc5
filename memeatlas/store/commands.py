"""`memeatlas sql`, `export` and `status` (implemented in memeatlas.store.query)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Filled in by the foundation work (issue 2)."""
