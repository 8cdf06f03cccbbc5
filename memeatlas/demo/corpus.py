"""A small synthetic meme corpus made by code, for the demo, tests and benchmarks.

Image macros on a few themes (what the text is about) drawn in a few templates
(what the picture looks like: layout, palette, shapes). The two are crossed on
purpose: a clustering of the *text* should recover themes, one of the *pixels*
templates, which is the contrast the evaluate step measures. A `manifest.csv`
beside the images records theme and template as ground truth, and a synthetic posting
date (`posted`) over twelve weeks in which cats rise and gym fades (see `POSTING`), so
the demo shows `memeatlas trends` and the report's time chart.
"""

from __future__ import annotations

import csv
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from memeatlas.imaging import bold_font

# Theme -> (top lines, bottom lines); every top pairs with every bottom so the
# texts in one theme vary but share vocabulary.
THEMES: dict[str, tuple[list[str], list[str]]] = {
    "cats": (
        ["WHEN THE CAT", "MY CAT AT 3 AM", "CAT SEES A GLASS", "THE CAT WANTS FOOD"],
        ["KNOCKS IT OFF THE TABLE", "ZOOMIES ACROSS THE HOUSE", "IGNORES ME AGAIN", "SITS ON MY KEYBOARD"],
    ),
    "monday": (
        ["ME ON MONDAY", "MONDAY MORNING MEETING", "ALARM RINGS MONDAY", "BACK TO WORK MONDAY"],
        ["NEED MORE COFFEE", "WHY IS IT NOT FRIDAY", "BOSS WANTS A REPORT", "ONE MORE EMAIL"],
    ),
    "exams": (
        ["STUDYING FOR EXAMS", "THE EXAM STARTS", "FINAL EXAM WEEK", "TEACHER SAYS QUIZ"],
        ["FORGOT EVERYTHING", "ALL NIGHT BEFORE THE TEST", "NOTHING ON THE SYLLABUS", "GRADES COME OUT"],
    ),
    "gym": (
        ["FIRST DAY AT THE GYM", "LEG DAY AGAIN", "GYM SELFIE TIME", "NEW YEAR GYM PLAN"],
        ["CANNOT WALK TOMORROW", "SKIPPED THE WORKOUT", "LIFTING HEAVY WEIGHTS", "PROTEIN SHAKE ONLY"],
    ),
    "code": (
        ["IT WORKS ON MY MACHINE", "FIXED ONE BUG", "DEPLOY ON FRIDAY", "CODE REVIEW TODAY"],
        ["TEN NEW BUGS APPEAR", "PRODUCTION IS DOWN", "TESTS ARE FAILING", "COMPILER ERROR AGAIN"],
    ),
}

# Template -> palette and layout; drawn independently of the theme.
TEMPLATES: dict[str, dict] = {
    "sunset-circles": {"bg": [(238, 120, 60), (250, 170, 70)], "shape": "circles"},
    "ocean-stripes": {"bg": [(40, 90, 170), (60, 140, 200)], "shape": "stripes"},
    "forest-triangles": {"bg": [(40, 120, 60), (90, 160, 80)], "shape": "triangles"},
}


# Synthetic posting dates: twelve weeks from DEMO_START; a theme's memes fall in the weeks its
# profile weights (cats rise late, gym fades, the others spread evenly).
DEMO_START = "2024-01-01"
DEMO_WEEKS = 12
POSTING: dict[str, list[float]] = {
    "cats": [(w + 1) ** 2 for w in range(DEMO_WEEKS)],
    "gym": [(DEMO_WEEKS - w) ** 2 for w in range(DEMO_WEEKS)],
}


def posted_date(theme: str, k: int, n_theme: int, rng: random.Random) -> str:
    """The synthetic posting date (ISO) of the k-th of `n_theme` memes of `theme`.

    Weeks are quantiles of the theme's weekly profile (not random draws), so the evenly spread
    themes stay even and only the planted rise and fall show up; the day in the week is random.
    """
    from datetime import date, timedelta

    weights = POSTING.get(theme, [1.0] * DEMO_WEEKS)
    total, q, acc, week = sum(weights), (k + 0.5) / max(1, n_theme), 0.0, 0
    for week, w in enumerate(weights):  # noqa: B007 - the loop leaves the quantile's week
        acc += w / total
        if q <= acc:
            break
    day = date.fromisoformat(DEMO_START) + timedelta(days=7 * week + rng.randrange(7))
    return day.isoformat()


@dataclass(frozen=True)
class CorpusItem:
    """One generated meme: its file and the truth behind it."""

    path: Path
    theme: str
    template: str
    top: str
    bottom: str
    posted: str = ""


def _gradient(size: tuple[int, int], c0: tuple, c1: tuple) -> Image.Image:
    w, h = size
    img = Image.new("RGB", size)
    draw = ImageDraw.Draw(img)
    for y in range(h):
        t = y / max(1, h - 1)
        draw.line([(0, y), (w, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(c0, c1, strict=False)))
    return img


def _shapes(draw: ImageDraw.ImageDraw, kind: str, size: tuple[int, int], rng: random.Random) -> None:
    w, h = size
    for _ in range(rng.randint(4, 7)):
        x, y = rng.randint(0, w), rng.randint(h // 5, 4 * h // 5)
        r = rng.randint(20, 60)
        shade = tuple(rng.randint(180, 255) for _ in range(3))
        if kind == "circles":
            draw.ellipse([x - r, y - r, x + r, y + r], fill=shade)
        elif kind == "stripes":
            draw.rectangle([x - 2 * r, y - 8, x + 2 * r, y + 8], fill=shade)
        else:
            draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=shade)


def _caption(draw: ImageDraw.ImageDraw, text: str, y: int, width: int) -> None:
    size = 34
    face = bold_font(size)
    while draw.textlength(text, font=face) > width - 24 and size > 14:
        size -= 2
        face = bold_font(size)
    x = (width - draw.textlength(text, font=face)) / 2
    # White text with a black outline: the classic image-macro look, and legible to OCR.
    draw.text((x, y), text, font=face, fill="white", stroke_width=3, stroke_fill="black")


def draw_meme(top: str, bottom: str, template: str, seed: int = 0,
              size: tuple[int, int] = (480, 400)) -> Image.Image:
    """Draw one image macro: template background and shapes, top and bottom text."""
    rng = random.Random(seed)
    spec = TEMPLATES[template]
    img = _gradient(size, *spec["bg"])
    draw = ImageDraw.Draw(img)
    _shapes(draw, spec["shape"], size, rng)
    _caption(draw, top, 14, size[0])
    _caption(draw, bottom, size[1] - 58, size[0])
    return img


def write_corpus(out_dir: str | Path, n: int = 60, seed: int = 0,
                 formats: tuple[str, ...] = ("png", "jpg")) -> list[CorpusItem]:
    """Write `n` image macros spread evenly over THEMES and TEMPLATES, plus `manifest.csv`.

    Deterministic for a given seed. Returns the items in file order.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    dates = random.Random(seed + 7_919)  # its own stream: the texts stay what they were
    themes = sorted(THEMES)
    templates = sorted(TEMPLATES)
    items: list[CorpusItem] = []
    for i in range(n):
        theme = themes[i % len(themes)]
        template = templates[(i // len(themes)) % len(templates)]
        tops, bottoms = THEMES[theme]
        top, bottom = rng.choice(tops), rng.choice(bottoms)
        fmt = formats[i % len(formats)]
        path = out / f"meme_{i:04d}_{theme}.{fmt}"
        img = draw_meme(top, bottom, template, seed=seed * 100_003 + i)
        if fmt in ("jpg", "jpeg"):
            img.save(path, "JPEG", quality=90)
        else:
            img.save(path)
        k, n_theme = i // len(themes), len(range(themes.index(theme), n, len(themes)))
        items.append(CorpusItem(path, theme, template, top, bottom,
                                posted_date(theme, k, n_theme, dates)))
    with open(out / "manifest.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "theme", "template", "top", "bottom",
                                                "posted"])
        writer.writeheader()
        for it in items:
            row = asdict(it)
            row["path"] = it.path.name  # relative to the manifest, so the folder can move
            writer.writerow(row)
    return items
