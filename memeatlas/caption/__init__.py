"""caption: structured meme annotations from a vision-language model (or OCR) into DuckDB.

Public API:
    run(store, CaptionConfig) -> CaptionSummary        the resumable run loop (run.py)
    backends.create(name, model=..., **options)         backends (backends/base.py contract)
    schema.core_json_schema(), schema.Annotation        the v1 annotation schema
"""

from __future__ import annotations

from memeatlas.caption.run import CaptionConfig, CaptionSummary, run

__all__ = ["CaptionConfig", "CaptionSummary", "run"]
