"""Limits shared by ingest's validation and its command-line defaults (kept import-light)."""

from __future__ import annotations

DEFAULT_MAX_IMAGE_PIXELS = 50_000_000  # larger than any real meme; catches decompression bombs
