"""Pictures and variant corpora for the near-duplicate and template tests."""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw

from memeatlas.testing.variants import make_variants


def picture(seed: int, size: tuple[int, int] = (320, 256)) -> Image.Image:
    """A distinct generated 'photo': a two-colour gradient with a few filled shapes."""
    rng = random.Random(seed)
    w, h = size
    c0 = tuple(rng.randrange(256) for _ in range(3))
    c1 = tuple(rng.randrange(256) for _ in range(3))
    img = Image.new("RGB", size)
    draw = ImageDraw.Draw(img)
    horizontal = rng.random() < 0.5
    for i in range(w if horizontal else h):
        t = i / max(1, (w if horizontal else h) - 1)
        col = tuple(int(a + (b - a) * t) for a, b in zip(c0, c1, strict=True))
        draw.line([(i, 0), (i, h)] if horizontal else [(0, i), (w, i)], fill=col)
    for _ in range(rng.randrange(3, 7)):
        x0, y0 = rng.randrange(w - 40), rng.randrange(h - 40)
        x1, y1 = x0 + rng.randrange(30, w // 2), y0 + rng.randrange(30, h // 2)
        fill = tuple(rng.randrange(256) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0, y0, x1, y1], fill=fill)
    return img


def textured_picture(seed: int, size: tuple[int, int] = (320, 256)) -> Image.Image:
    """`picture(seed)` with many small shapes over it: texture everywhere, as in a photo, so the
    geometric same-picture check has keypoints and textured blocks to compare."""
    img = picture(seed, size)
    rng = random.Random(seed + 10_000)
    draw = ImageDraw.Draw(img)
    w, h = size
    for _ in range(160):
        x, y, r = rng.randrange(w), rng.randrange(h), rng.randrange(3, 12)
        fill = tuple(rng.randrange(256) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x, y, x + r, y + r], fill=fill)
    return img


def write_variant_corpus(folder: Path, originals: dict[str, Image.Image],
                         variants: tuple[str, ...] | None = None) -> dict[Path, str]:
    """Write each original and its variants as JPEG/PNG files; returns path → picture name."""
    folder.mkdir(parents=True, exist_ok=True)
    truth: dict[Path, str] = {}
    for name, img in originals.items():
        p = folder / f"{name}__orig.png"
        img.convert("RGB").save(p)
        truth[p] = name
        for vname, v in make_variants(img).items():
            if variants is not None and vname not in variants:
                continue
            q = folder / f"{name}__{vname}.{'jpg' if vname == 'jpeg30' else 'png'}"
            if vname == "jpeg30":
                img.convert("RGB").save(q, "JPEG", quality=30)
            else:
                v.save(q)
            truth[q] = name
    return truth


def pair_scores(groups: dict[str, str], truth: dict[str, str]) -> tuple[float, float]:
    """(recall, precision) of same-group pairs against same-picture pairs (meme_id keyed)."""
    ids = sorted(truth)
    tp = fp = fn = 0
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            same_true = truth[a] == truth[b]
            same_pred = groups[a] == groups[b]
            tp += same_true and same_pred
            fp += same_pred and not same_true
            fn += same_true and not same_pred
    recall = tp / (tp + fn) if tp + fn else 1.0
    precision = tp / (tp + fp) if tp + fp else 1.0
    return recall, precision
