"""The DuckDB store: one file, numbered migrations, readable lock errors."""

from __future__ import annotations

from memeatlas.store.connection import DEFAULT_DB, ENV_DB, Store, resolve_path

__all__ = ["DEFAULT_DB", "ENV_DB", "Store", "resolve_path"]
