"""Which OCR lines are text: drop fragments, low-confidence glyphs and scripts an image lacks.

PP-OCR's detector finds "text" on photos that carry none, and its Chinese+English recogniser
then reads a glyph into it: on the 100 ImgFlip template images (which have little or no
caption text) 15 of the 31 non-empty readings were 1–2 characters ('O', '2', '38') and 5 were
a single CJK character ('福', '尊', '百和') read off a face or a background. Each such line is
dropped with a reason, counted per meme (stored in the annotation's `raw->'ocr_dropped'`) and
per run (the caption summary):

- `not_text`: no letter or digit (a shape read as '●' or '—').
- `low_confidence`: the recogniser's own score is below `min_score`.
- `fragment`: fewer than `min_chars` letters/digits, unless the recogniser is sure of it
  (≥ `sure_score`) and the image has other text (so "OR", "25" beside "draw" stay). The
  invented glyphs above ('O', '38', '福') go here.
- `script`: the image carries confident text (score ≥ `confident_score`, ≥ `min_chars`
  letters/digits) and this less sure line is in a script (Latin, CJK, Cyrillic, …) none of
  that text is written in: "学生会" at 0.8 under an English caption. Digits belong to every
  script. Without any confident text there is no evidence of the image's script, and a
  longer line stays.

Checked in that order; a line is counted under its first reason.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Any

REASONS = ("not_text", "low_confidence", "script", "fragment")


@dataclass(frozen=True)
class TextFilter:
    """Thresholds of the OCR line filter (recorded in the caption run's config)."""

    min_score: float = 0.5        # below: low_confidence
    confident_score: float = 0.9  # a line this sure (and this long) shows which scripts the image carries
    sure_score: float = 0.95      # a short line this sure is kept when the image has other text
    min_chars: int = 3            # letters/digits a line needs not to be a fragment

    def config(self) -> dict[str, Any]:
        return {"min_score": self.min_score, "confident_score": self.confident_score,
                "sure_score": self.sure_score, "min_chars": self.min_chars}


def _script(ch: str) -> str | None:
    """The script of one letter (None for digits and anything that is not a letter)."""
    if not ch.isalpha():
        return None
    name = unicodedata.name(ch, "")
    if name.startswith(("CJK", "HIRAGANA", "KATAKANA", "HANGUL", "IDEOGRAPHIC")):
        return "CJK"
    if name.startswith(("FULLWIDTH LATIN", "LATIN")):
        return "LATIN"
    return name.split(" ", 1)[0] or None


def scripts(text: str) -> frozenset[str]:
    """The scripts a line's letters are written in."""
    return frozenset(s for s in map(_script, text) if s)


def n_chars(text: str) -> int:
    """Letters and digits in a line."""
    return sum(ch.isalnum() for ch in text)


def keep_lines(txts: list[str], scores: list[float], flt: TextFilter
               ) -> tuple[list[bool], Counter[str]]:
    """Which lines are text (one flag per line) and why the others were dropped."""
    dropped: Counter[str] = Counter()
    txts = [(t or "").strip() for t in txts]
    carried = set().union(*(scripts(t) for t, s in zip(txts, scores, strict=True)
                            if s >= flt.confident_score and n_chars(t) >= flt.min_chars))
    # A sure short line needs other text beside it that is not itself a fragment.
    has_long = [n_chars(t) >= flt.min_chars for t in txts]
    keep: list[bool] = []
    for i, (t, s) in enumerate(zip(txts, scores, strict=True)):
        reason = None
        if n_chars(t) == 0:
            reason = "not_text"
        elif s < flt.min_score:
            reason = "low_confidence"
        elif not has_long[i] and not (s >= flt.sure_score and any(
                has_long[j] and j != i for j in range(len(txts)))):
            reason = "fragment"
        elif carried and not scripts(t) <= carried and s < flt.confident_score:
            reason = "script"
        if reason:
            dropped[reason] += 1
        keep.append(reason is None)
    # A line kept only for its neighbours goes when those neighbours were dropped.
    if not any(k and has_long[i] for i, k in enumerate(keep)):
        for i, k in enumerate(keep):
            if k:
                keep[i] = False
                dropped["fragment"] += 1
    return keep, dropped
