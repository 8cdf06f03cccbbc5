"""memeatlas: a folder of meme images to an annotated, clustered, evaluated DuckDB corpus."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
