"""Downscaled, embedded thumbnails for the report and the rating page.

Every image in a generated page is a `data:` URI made here, so the page opens
from disk with no server and no network. Images go through
`memeatlas.imaging.load_image` (EXIF orientation, alpha on white, first GIF
frame), the same pixels every other step sees.
"""

from __future__ import annotations

import base64
import io
import warnings
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from memeatlas.errors import InputError
from memeatlas.imaging import check_pixel_limit, load_image, to_rgb

DEFAULT_THUMB_PX = 160
# Decoding large images is the slow part; ask PIL for a cheap draft first.
_LOAD_BUDGET = 1024 * 1024


def _open_small(path: str | Path, max_px: int) -> Image.Image:
    """Like `load_image`, but lets the JPEG decoder downscale while decoding (draft mode),
    which makes a thumbnail of a large JPEG several times cheaper; other formats go through
    `load_image` itself."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as im:
            if im.format != "JPEG":
                return load_image(path, max_pixels=_LOAD_BUDGET)
            check_pixel_limit(im)  # thumbnails are made on worker threads (see imaging)
            im.draft("RGB", (2 * max_px, 2 * max_px))
            im.load()
            out = to_rgb(im)
            return out.copy() if out is im else out


def thumbnail_bytes(path: str | Path, max_px: int = DEFAULT_THUMB_PX, *, fmt: str = "WEBP",
                    quality: int = 70) -> bytes:
    """The image at `path`, fitted inside max_px × max_px, encoded as WEBP (or JPEG)."""
    img = _open_small(path, max_px)
    img.thumbnail((max_px, max_px), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    if fmt.upper() == "WEBP":
        img.save(buf, format="WEBP", quality=quality, method=3)
    else:
        img.save(buf, format="JPEG", quality=quality, optimize=True, progressive=False)
    return buf.getvalue()


def data_uri(path: str | Path, max_px: int = DEFAULT_THUMB_PX, *, fmt: str = "WEBP",
             quality: int = 70) -> str | None:
    """A `data:image/...;base64,...` URI of the thumbnail, or None when the file cannot be read.

    A missing or broken file must not stop a report: the page shows a placeholder.
    """
    try:
        raw = thumbnail_bytes(path, max_px, fmt=fmt, quality=quality)
    except (InputError, OSError, ValueError, Image.DecompressionBombWarning,
            Image.DecompressionBombError, SyntaxError):
        return None
    mime = "image/webp" if fmt.upper() == "WEBP" else "image/jpeg"
    return f"data:{mime};base64," + base64.b64encode(raw).decode("ascii")


def data_uris(items: Iterable[tuple[str, str | None]], max_px: int = DEFAULT_THUMB_PX, *,
              fmt: str = "WEBP", quality: int = 70, workers: int = 4,
              desc: str = "thumbnails") -> dict[str, str | None]:
    """Thumbnails for many (key, path) pairs, decoded in a few threads (PIL releases the GIL).

    Keys with no path (image-less memes) map to None.
    """
    from memeatlas import progress

    items = list(items)
    out: dict[str, str | None] = {k: None for k, p in items if not p}
    todo = [(k, p) for k, p in items if p]
    if not todo:
        return out
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool, \
            progress.bar(total=len(todo), desc=desc, unit="img") as bar:
        futures = {k: pool.submit(data_uri, p, max_px, fmt=fmt, quality=quality) for k, p in todo}
        for k, fut in futures.items():
            out[k] = fut.result()
            bar.update(1)
    return out
