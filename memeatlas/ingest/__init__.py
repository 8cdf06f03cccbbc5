"""Ingest: images and annotated corpora into the store."""

from __future__ import annotations

from memeatlas.ingest.importers import ImportSummary, import_annotations
from memeatlas.ingest.run import IngestSummary, ingest_paths

__all__ = ["ImportSummary", "IngestSummary", "import_annotations", "ingest_paths"]
