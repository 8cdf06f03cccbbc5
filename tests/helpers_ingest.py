"""Small real image files for ingest tests."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image


def png_bytes(color=(200, 30, 30), size=(64, 48), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, "PNG")
    return buf.getvalue()


def write_image(path: Path, color=(200, 30, 30), size=(64, 48), fmt: str | None = None,
                mode: str = "RGB") -> Path:
    img = Image.new(mode, size, color if mode != "P" else 1)
    # A gradient so pHash and truncation behave like a real picture.
    if mode == "RGB":
        px = img.load()
        for x in range(size[0]):
            for y in range(size[1]):
                px[x, y] = ((color[0] + x * 3) % 256, (color[1] + y * 5) % 256, color[2])
    img.save(path, fmt)
    return path
