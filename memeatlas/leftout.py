"""Memes a step left out, and why: one shape for every step's summary and --json.

A step that works on some of the store's memes says how many it did not touch and the
reason for each group ({"empty ocr_text": 150, "no image": 3}), so a smaller-than-expected
output is never silent.
"""

from __future__ import annotations


def counted(left_out: dict[str, int]) -> str:
    """`150 (150 empty ocr_text)`, the value of a summary's "left out" line; "" for none."""
    parts = {why: n for why, n in left_out.items() if n}
    if not parts:
        return ""
    return f"{sum(parts.values())} ({', '.join(f'{n} {why}' for why, n in parts.items())})"


def describe(left_out: dict[str, int]) -> str:
    """`150 left out (150 empty ocr_text)`; "" when nothing was left out."""
    text = counted(left_out)
    return text.replace(" (", " left out (", 1) if text else ""
