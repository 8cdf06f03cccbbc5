"""Ingest: images and annotated corpora into the store.

Names are imported on first use so that `memeatlas --help` does not pay for
PIL, imagehash and pyarrow.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ImportSummary", "IngestSummary", "import_annotations", "ingest_paths"]

_HOME = {"ImportSummary": "importers", "import_annotations": "importers",
         "IngestSummary": "run", "ingest_paths": "run"}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        import importlib

        return getattr(importlib.import_module(f"memeatlas.ingest.{_HOME[name]}"), name)
    raise AttributeError(f"module 'memeatlas.ingest' has no attribute {name!r}")
