"""Rows and images for embed tests, written straight into the tables (no ingest needed)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw


def meme_id_for(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def add_meme(store, meme_id: str, path: str | None = None, *, has_image: bool | None = None) -> None:
    has = bool(path) if has_image is None else has_image
    store.execute(
        "INSERT INTO memes (meme_id, path, source, has_image, width, height, format, n_bytes) "
        "VALUES (?, ?, 'test', ?, NULL, NULL, NULL, NULL)", [meme_id, path, has])


def add_annotation(store, meme_id: str, annotator: str = "vlm:test", *,
                   prompt_hash: str = "p1", schema_hash: str = "s1", raw: dict | None = None,
                   created_at: str | None = None, **fields: Any) -> None:
    ents = fields.pop("entities", None)
    cols = ["meme_id", "annotator", "prompt_hash", "schema_hash", "entities", "raw",
            *fields.keys()]
    vals = [meme_id, annotator, prompt_hash, schema_hash,
            json.dumps(ents) if ents is not None else None,
            json.dumps(raw if raw is not None else {**fields, "entities": ents or []}),
            *fields.values()]
    if created_at:
        cols.append("created_at")
        vals.append(created_at)
    store.execute(f"INSERT INTO annotations ({', '.join(cols)}) "
                  f"VALUES ({', '.join('?' * len(cols))})", vals)


def write_image(path: Path, seed: int, size: tuple[int, int] = (96, 72), mode: str = "RGB") -> Path:
    """A small image with coloured shapes that differ by seed."""
    img = Image.new("RGB", size, ((seed * 53) % 256, (seed * 97) % 256, (seed * 31) % 256))
    d = ImageDraw.Draw(img)
    d.rectangle([seed % 20, seed % 15, 40 + seed % 30, 30 + seed % 25], fill=(255, 255, 0))
    d.text((5, 5), f"meme {seed}", fill=(0, 0, 0))
    if mode != "RGB":
        img = img.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def add_image_meme(store, path: Path) -> str:
    meme_id = hashlib.sha256(path.read_bytes()).hexdigest()
    add_meme(store, meme_id, str(path))
    return meme_id
