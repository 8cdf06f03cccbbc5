"""Checks that a captioning model sees the image: a vision probe and a worked-example detector.

A server whose model is text-only (or which drops image parts) still answers, and a model
that cannot see the meme writes a plausible annotation anyway: often the prompt's own worked
example. Two defences:

- `vision_probe`: before a run, one request with a generated image whose answer is known (a
  word drawn large on a plain background). A model that does not read the word is refused
  (`--no-vision-check` overrides).
- `echoes_worked_example`: an annotation that repeats the default prompt's worked example
  (the Distracted Boyfriend meme about "my thesis") is stored as a failure, not an annotation.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw

from memeatlas.imaging import bold_font

PROBE_WORDS = ("PLANET", "GARDEN", "ROCKET", "BANANA", "WINDOW", "CANDLE", "TIGER", "MARKET",
               "ORANGE", "PENCIL", "BRIDGE", "CASTLE")
PROBE_PROMPT = ("What single word is written in large letters in this image? "
                'Answer as JSON: {"word": "..."}')
PROBE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"word": {"type": "string", "maxLength": 24}},
    "required": ["word"],
    "additionalProperties": False,
}

# Phrases of the default prompt's worked example (prompt_texts/meme_v1.txt).
_EXAMPLE_MARKS = ("my thesis", "new side project")


@dataclass
class ProbeImage:
    """A generated probe: the image and the word drawn on it."""

    image: Image.Image
    word: str


def probe_image(seed: int | None = None) -> ProbeImage:
    """A 512x256 image with one word from PROBE_WORDS drawn large, black on a light colour."""
    rng = random.Random(seed)
    word = rng.choice(PROBE_WORDS)
    bg = rng.choice([(255, 236, 160), (200, 230, 255), (210, 245, 210), (255, 215, 215)])
    img = Image.new("RGB", (512, 256), bg)
    d = ImageDraw.Draw(img)
    f = bold_font(88)
    box = d.textbbox((0, 0), word, font=f)
    w, h = box[2] - box[0], box[3] - box[1]
    d.text(((512 - w) / 2 - box[0], (256 - h) / 2 - box[1]), word, font=f, fill=(0, 0, 0))
    return ProbeImage(img, word)


def read_word(answer: str, word: str) -> bool:
    """Whether `answer` (JSON or prose) names `word` (case and punctuation ignored)."""
    letters = re.sub(r"[^A-Z]+", " ", (answer or "").upper())
    return word.upper() in letters.split() or word.upper() in letters.replace(" ", "")


def answer_excerpt(answer: str, n: int = 60) -> str:
    """A short, one-line quote of what the model answered."""
    a = " ".join((answer or "").split())
    return (a[:n] + "…") if len(a) > n else (a or "(empty)")


def echoes_worked_example(obj: dict[str, Any]) -> bool:
    """Whether an annotation repeats the default prompt's worked example instead of the image."""
    text = " ".join(str(obj.get(k) or "") for k in ("ocr_text", "description", "intent"))
    text = " ".join(text.lower().split())
    return all(m in text for m in _EXAMPLE_MARKS)
