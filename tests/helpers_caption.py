"""Fixtures and helpers for the caption tests (images, memes rows, tiny model, resume script).

Also runnable as a script: `python tests/helpers_caption.py resume DB MODEL_DIR` captions
with batch size 2 and, once the first batch is committed, prints BATCH 1 and blocks inside
the second generate() call so the test can SIGKILL it mid-batch.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

FONT_CANDIDATES = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
    "/Library/Fonts/Arial Bold.ttf",
    "C:/Windows/Fonts/arialbd.ttf",
]


def font(size: int = 48):
    """A big clear TrueType font: a system bold sans if present, else PIL's bundled one."""
    for f in FONT_CANDIDATES:
        if os.path.exists(f):
            return ImageFont.truetype(f, size)
    return ImageFont.load_default(size=size)


def draw_meme(top: str, bottom: str, size=(640, 480), bg=(70, 120, 190)) -> Image.Image:
    """A meme-like image: a coloured scene with white outlined text at top and bottom."""
    img = Image.new("RGB", size, bg)
    d = ImageDraw.Draw(img)
    d.ellipse((size[0] // 3, size[1] // 3, 2 * size[0] // 3, 2 * size[1] // 3), fill=(240, 200, 80))
    f = font(44)
    d.text((24, 16), top, font=f, fill="white", stroke_width=3, stroke_fill="black")
    d.text((24, size[1] - 70), bottom, font=f, fill="white", stroke_width=3, stroke_fill="black")
    return img


def write_images(out_dir: Path, n: int = 12) -> list[Path]:
    """n varied image files (PNG, JPEG, RGBA PNG, GIF, sizes) with text drawn on them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        img = draw_meme(f"TOP {i}", f"BOTTOM {i}", size=(320 + 40 * (i % 4), 240 + 30 * (i % 3)),
                        bg=(20 * i % 255, 120, 200 - 10 * i))
        kind = i % 4
        if kind == 0:
            p = out_dir / f"m{i:02d}.png"
            img.save(p)
        elif kind == 1:
            p = out_dir / f"m{i:02d}.jpg"
            img.save(p, quality=90)
        elif kind == 2:
            p = out_dir / f"m{i:02d}.png"
            rgba = img.convert("RGBA")
            rgba.putalpha(200)
            rgba.save(p)
        else:
            p = out_dir / f"m{i:02d}.gif"
            img.convert("P").save(p)
        paths.append(p)
    return paths


def insert_memes(store, paths: list[Path]) -> list[str]:
    """Rows in `memes` for image files (meme_id = SHA-256 of the bytes, as ingest does)."""
    ids = []
    with store.transaction():
        for p in paths:
            data = Path(p).read_bytes()
            mid = hashlib.sha256(data).hexdigest()
            with Image.open(p) as im:
                w, h, fmt = im.width, im.height, im.format
            store.execute(
                "INSERT INTO memes (meme_id, path, source, has_image, width, height, format, n_bytes)"
                " VALUES (?, ?, 'folder', true, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [mid, str(Path(p).resolve()), w, h, fmt, len(data)])
            ids.append(mid)
    return ids


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory) -> Path:
    """A tiny random Qwen2.5-VL saved once per test session."""
    from memeatlas.testing.tiny_qwen import build_tiny_qwen25vl

    return build_tiny_qwen25vl(tmp_path_factory.mktemp("tiny_qwen") / "tiny-qwen25vl")


@pytest.fixture(scope="session")
def tiny_backend(tiny_qwen_dir):
    """One loaded transformers backend on the tiny model, shared by the tests of a session."""
    from memeatlas.caption.backends import create

    # One torch thread: on a busy 2-core CI box two spinning threads slow each other down.
    b = create("transformers", model=str(tiny_qwen_dir), device="cpu", threads=1)
    yield b
    b.close()


def _resume_main(db: str, model: str) -> None:
    import time

    from memeatlas.caption import CaptionConfig, run
    from memeatlas.caption.backends import create
    from memeatlas.store import Store

    inner = create("transformers", model=model, device="cpu", threads=1)
    calls = {"n": 0}
    real = inner.generate

    def generate(reqs):
        calls["n"] += 1
        if calls["n"] == 2:
            print("GEN 2", flush=True)
            time.sleep(600)  # killed here, mid-batch
        return real(reqs)

    inner.generate = generate
    store = Store.open(db)
    run(store, CaptionConfig(model=model, batch_size=2, retries=0, max_new_tokens=200,
                             on_batch=lambda b, n: print(f"BATCH {b} {n}", flush=True)),
        backend=inner)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("MEMEATLAS_NO_PROGRESS", "1")
    if sys.argv[1] == "resume":
        _resume_main(sys.argv[2], sys.argv[3])
