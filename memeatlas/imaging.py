"""Image loading shared by every step: the same pixels go to captioners, embedders and reports.

EXIF orientation applied, palette/alpha/CMYK converted to RGB (alpha composited on
white, as memes are viewed), GIFs and other animations reduced to their first frame,
and the result resized to fit a pixel budget with its aspect ratio kept.
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from pathlib import Path

from PIL import Image, ImageFont, ImageOps

from memeatlas.errors import InputError

DEFAULT_MAX_PIXELS = 1024 * 28 * 28  # ~803k px: Qwen2.5-VL's common budget (1024 visual tokens)
DEFAULT_PIL_PIXEL_LIMIT = 89_478_485  # PIL's own decompression-bomb threshold


_WIDE_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})


def to_8bit(img: Image.Image) -> Image.Image:
    """16-bit and 32-bit greyscale scaled to 8 bits ("L"); PIL's own convert clips at 255.

    16-bit modes are divided by 257 (65535 -> 255). Mode I (how PIL may hold a 16-bit PNG)
    and F carry no bit depth, so their range decides: up to 255 as is, up to 65535 as
    16-bit, beyond that scaled to the maximum; floats up to 1.0 are taken as 0..1.
    """
    if img.mode not in _WIDE_MODES:
        return img
    import numpy as np

    a = np.asarray(img).astype(np.float64)
    hi = float(a.max()) if a.size else 0.0
    if img.mode.startswith("I;16"):
        scale = 255.0 / 65535.0
    elif img.mode == "F" and hi <= 1.0:
        scale = 255.0
    elif hi <= 255:
        scale = 1.0
    elif hi <= 65535:
        scale = 255.0 / 65535.0
    else:
        scale = 255.0 / hi
    return Image.fromarray(np.clip(np.rint(a * scale), 0, 255).astype(np.uint8))


def to_rgb(img: Image.Image) -> Image.Image:
    """First frame, EXIF-upright, 8 bits per channel, RGB (alpha flattened onto white)."""
    if getattr(img, "is_animated", False):
        img.seek(0)
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # broken EXIF should not lose the image
        pass
    img = to_8bit(img)
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg = Image.new("RGB", rgba.size, (255, 255, 255))
        bg.paste(rgba, mask=rgba.getchannel("A"))
        return bg
    return img.convert("RGB") if img.mode != "RGB" else img


def fit_pixels(img: Image.Image, max_pixels: int | None) -> Image.Image:
    """Downscale so width*height <= max_pixels (never upscales)."""
    if not max_pixels:
        return img
    w, h = img.size
    if w * h <= max_pixels:
        return img
    scale = math.sqrt(max_pixels / (w * h))
    size = (max(1, int(w * scale)), max(1, int(h * scale)))
    return img.resize(size, Image.Resampling.BICUBIC)


def check_pixel_limit(im: Image.Image) -> None:
    """Refuse a decompression bomb from its header, before any pixel is decoded.

    Checked explicitly because warnings.catch_warnings is not thread-safe (embed and the
    report decode on worker threads), so an "error" filter alone could let a bomb through.
    """
    limit = Image.MAX_IMAGE_PIXELS
    if limit and im.width * im.height > limit:
        raise Image.DecompressionBombWarning(
            f"Image size ({im.width * im.height} pixels) exceeds limit of {limit} "
            f"pixels, could be decompression bomb DOS attack.")


def load_image(path: str | os.PathLike[str], max_pixels: int | None = DEFAULT_MAX_PIXELS
               ) -> Image.Image:
    """Open an image file the way every memeatlas step sees it (see module docstring).

    Raises InputError naming the file when it cannot be decoded.
    """
    p = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                check_pixel_limit(im)
                im.load()
                out = to_rgb(im)
                if out is im:
                    out = im.copy()
    except FileNotFoundError:
        raise InputError(f"{p}: file not found (was it moved since ingest?)") from None
    except Exception as exc:  # PIL raises many types for bad files
        raise InputError(f"{p}: cannot decode image ({type(exc).__name__}: {exc})") from None
    return fit_pixels(out, max_pixels)


@functools.lru_cache(maxsize=16)
def bold_font(size: int) -> ImageFont.ImageFont:
    """A bold TrueType font of `size` pixels for drawn text (demo memes, the vision probe,
    test variants): DejaVu or Liberation where installed, else PIL's built-in font."""
    for name in ("DejaVuSans-Bold.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
                 "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
                 "/Library/Fonts/Arial Bold.ttf", "C:/Windows/Fonts/arialbd.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)
