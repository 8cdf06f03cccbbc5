"""Near-duplicate variants of an image, as reposts make them: for tests, calibration, benchmarks.

Each variant keeps the picture and changes what a repost typically changes: a lossy
re-encode, a downscale, a crop, a caption bar pasted above, a watermark in a corner.
"""

from __future__ import annotations

import io
from collections.abc import Callable

from PIL import Image, ImageDraw

from memeatlas.imaging import bold_font as font

VARIANTS = ("jpeg30", "half", "crop10", "caption_bar", "watermark")


def jpeg(img: Image.Image, quality: int = 30) -> Image.Image:
    """Re-encoded as JPEG at `quality`."""
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def half(img: Image.Image) -> Image.Image:
    """Resized to 50 % per side."""
    w, h = img.size
    return img.resize((max(1, w // 2), max(1, h // 2)), Image.Resampling.BILINEAR)


def crop10(img: Image.Image) -> Image.Image:
    """10 % of each side cut away, off-centre (more from the top-left, as a screenshot crop)."""
    w, h = img.size
    return img.crop((int(0.07 * w), int(0.07 * h), w - int(0.03 * w), h - int(0.03 * h)))


def caption_bar(img: Image.Image, text: str = "WHEN THE CODE WORKS FIRST TRY") -> Image.Image:
    """A white caption bar (22 % of the height) with black text pasted above the picture."""
    w, h = img.size
    bar = max(12, int(0.22 * h))
    out = Image.new("RGB", (w, h + bar), (255, 255, 255))
    out.paste(img.convert("RGB"), (0, bar))
    draw = ImageDraw.Draw(out)
    face = font(max(8, bar // 3))
    draw.text((max(2, w // 30), bar // 3), text, fill=(0, 0, 0), font=face)
    return out


def watermark(img: Image.Image, text: str = "memeatlas.example") -> Image.Image:
    """Semi-transparent white text in the bottom-right corner."""
    base = img.convert("RGBA")
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    face = font(max(8, base.size[1] // 14))
    box = draw.textbbox((0, 0), text, font=face)
    tw, th = box[2] - box[0], box[3] - box[1]
    draw.text((base.size[0] - tw - 6, base.size[1] - th - 10), text, fill=(255, 255, 255, 150),
              font=face)
    return Image.alpha_composite(base, layer).convert("RGB")


MAKERS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "jpeg30": jpeg, "half": half, "crop10": crop10, "caption_bar": caption_bar,
    "watermark": watermark,
}


def make_variants(img: Image.Image) -> dict[str, Image.Image]:
    """Every variant of `img`, by name (see VARIANTS)."""
    rgb = img.convert("RGB")
    return {name: MAKERS[name](rgb) for name in VARIANTS}
