"""Checking one image file: content hash, decodability, size limits, perceptual hash.

Every way a file can be bad maps to a short error code and a sentence a person
can act on; nothing here raises for a bad file.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import imagehash
from PIL import Image, UnidentifiedImageError

from memeatlas.imaging import to_rgb
from memeatlas.ingest.limits import DEFAULT_MAX_IMAGE_PIXELS

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".dib",
                              ".tif", ".tiff"})
SUPPORTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "DIB", "TIFF", "MPO"})


@dataclass(frozen=True)
class ImageInfo:
    """What ingest stores about a good image."""

    meme_id: str
    width: int
    height: int
    format: str
    n_frames: int
    n_bytes: int
    phash: str


@dataclass(frozen=True)
class Problem:
    """Why a file was not ingested: a code for SQL and a sentence for people."""

    code: str
    detail: str


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256: the meme id of an image."""
    return hashlib.sha256(data).hexdigest()


_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"),
               (b"GIF89a", "GIF"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"BM", "BMP"))


def _signature(data: bytes) -> str | None:
    """The image format whose magic bytes `data` starts with, if any."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return next((kind for magic, kind in _SIGNATURES if data.startswith(magic)), None)


def inspect_file(path: Path, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
                 ) -> ImageInfo | Problem:
    """Read and check one file; return its ImageInfo or the Problem that stops it."""
    try:
        # A device, FIFO or socket would block or never end (/dev/zero): refuse, don't read.
        mode = path.stat().st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            return Problem("unreadable", "not a regular file (a device, FIFO or socket); "
                                         "name an image file")
        data = path.read_bytes()
    except FileNotFoundError:
        if path.is_symlink():
            return Problem("unreadable", f"broken symbolic link to {os.readlink(path)}")
        return Problem("missing", "file not found; check the path (or the manifest row)")
    except IsADirectoryError:
        return Problem("unreadable", "is a directory, not an image file (a folder scan reads "
                                     "folders inside folders only with --recursive)")
    except PermissionError:
        return Problem("unreadable", "permission denied; make the file readable and ingest again")
    except OSError as exc:
        return Problem("unreadable", f"cannot read file ({exc.strerror or exc})")
    if not data:
        return Problem("empty_file", "file is empty (0 bytes); re-download or remove it")
    return inspect_bytes(data, max_image_pixels)


_LIMIT_LOCK = threading.Lock()
_LIMIT_USERS = 0
_SAVED_LIMIT: int | None = None


@contextmanager
def _pil_limit_lifted() -> Iterator[None]:
    """PIL's own bomb limit off while any thread inspects, restored when the last one ends.

    Ingest inspects on worker threads; a plain save/set/restore per call races and can
    leave `Image.MAX_IMAGE_PIXELS` at None for the rest of the process.
    """
    global _LIMIT_USERS, _SAVED_LIMIT
    with _LIMIT_LOCK:
        if _LIMIT_USERS == 0:
            _SAVED_LIMIT = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
        _LIMIT_USERS += 1
    try:
        yield
    finally:
        with _LIMIT_LOCK:
            _LIMIT_USERS -= 1
            if _LIMIT_USERS == 0:
                Image.MAX_IMAGE_PIXELS = _SAVED_LIMIT


def inspect_bytes(data: bytes, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
                  ) -> ImageInfo | Problem:
    """Check image bytes (see inspect_file)."""
    import io

    # PIL's own bomb guard warns or raises at its threshold; we apply ours explicitly
    # from the header so the error is ours and happens before any pixel is decoded.
    # With PIL's limit at None it never warns, so no (thread-unsafe) warnings filter is needed.
    with _pil_limit_lifted():
        return _inspect(data, max_image_pixels, io.BytesIO(data))


def _inspect(data: bytes, max_image_pixels: int, buf) -> ImageInfo | Problem:
    try:
        im = Image.open(buf)
    except UnidentifiedImageError:
        kind = _signature(data)
        if kind:  # an image cut short inside its header, not some other kind of file
            return Problem("truncated", f"starts like a {kind} file but its header is cut short "
                                        "or damaged; re-download it")
        return Problem("not_an_image",
                       "not a recognised image (JPEG, PNG, WebP, GIF, BMP, TIFF); "
                       "the extension may be wrong or the file may be something else")
    except Exception as exc:
        return Problem("corrupt", f"cannot parse image header ({type(exc).__name__}: {exc})")
    with im:
        fmt = (im.format or "").upper()
        if fmt not in SUPPORTED_FORMATS:
            return Problem("unsupported_format",
                           f"{fmt or 'unknown'} images are not supported; convert to PNG or JPEG")
        width, height = im.size
        if width * height > max_image_pixels:
            return Problem("too_many_pixels",
                           f"{width}x{height} = {width * height:,} pixels exceeds the limit of "
                           f"{max_image_pixels:,} (possible decompression bomb); raise "
                           f"--max-image-pixels if the image is genuine")
        if width == 0 or height == 0:
            return Problem("corrupt", "image has zero width or height")
        n_frames = int(getattr(im, "n_frames", 1) or 1)
        try:
            im.seek(0)
            im.load()
        except (OSError, EOFError, SyntaxError, ValueError) as exc:
            msg = str(exc)
            if "truncat" in msg.lower() or isinstance(exc, EOFError) or "end of file" in msg.lower():
                return Problem("truncated",
                               f"image data is truncated ({msg or type(exc).__name__}); "
                               "the file was cut short, re-download it")
            return Problem("corrupt", f"cannot decode image data ({type(exc).__name__}: {msg})")
        try:
            rgb = to_rgb(im)
            phash = str(imagehash.phash(rgb))
        except Exception as exc:
            return Problem("corrupt", f"cannot decode image pixels ({type(exc).__name__}: {exc})")
        # After EXIF rotation: the size every later step sees, not the sensor's.
        width, height = rgb.size
    return ImageInfo(sha256_bytes(data), width, height, "JPEG" if fmt == "MPO" else fmt,
                     n_frames, len(data), phash)
