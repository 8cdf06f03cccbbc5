"""Image loading on workers: local/shared paths as memeatlas.imaging does, and object-store
URIs (s3://, gs://, hdfs://) read with pyarrow's filesystems."""

from __future__ import annotations

import io
import os
import warnings

from PIL import Image

from memeatlas.errors import InputError
from memeatlas.imaging import DEFAULT_MAX_PIXELS, check_pixel_limit, fit_pixels, load_image, to_rgb


def is_uri(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def read_bytes(uri: str) -> bytes:
    """The bytes at a URI (pyarrow filesystem); InputError naming it when unreadable."""
    from pyarrow import fs

    try:
        filesystem, inner = fs.FileSystem.from_uri(uri)
        with filesystem.open_input_stream(inner) as f:
            return f.read()
    except (OSError, ValueError) as exc:
        raise InputError(f"{uri}: cannot read ({type(exc).__name__}: {exc})") from None


def load_any(path: str | os.PathLike[str], max_pixels: int | None = DEFAULT_MAX_PIXELS
             ) -> Image.Image:
    """`memeatlas.imaging.load_image` for paths; the same decoding for object-store URIs."""
    path = str(path)
    if path.startswith("file://"):
        path = path[len("file://"):]
    if not is_uri(path):
        return load_image(path, max_pixels)
    data = read_bytes(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                check_pixel_limit(im)
                im.load()
                out = to_rgb(im)
                if out is im:
                    out = im.copy()
    except Exception as exc:
        raise InputError(f"{path}: cannot decode image ({type(exc).__name__}: {exc})") from None
    return fit_pixels(out, max_pixels)
