"""OCR lines that are not text are dropped with a counted reason (issue 22, part 5b).

The readings are rapidocr's on real ImgFlip template images (../shared/data/template-images).
"""

from __future__ import annotations

from memeatlas.caption.backends.ocr_filter import TextFilter, keep_lines

F = TextFilter()


def kept(txts, scores):
    keep, dropped = keep_lines(txts, scores, F)
    return [t for t, k in zip(txts, keep, strict=True) if k], dict(dropped)


def test_fragments_on_photos_are_dropped():
    assert kept(["O"], [0.72]) == ([], {"fragment": 1})           # Running-Away-Balloon
    assert kept(["38"], [1.0]) == ([], {"fragment": 1})           # Disaster-Girl: sure, but alone
    assert kept(["Y", "4"], [0.575, 0.978]) == ([], {"fragment": 2})
    assert kept(["福"], [0.75]) == ([], {"fragment": 1})            # Creepy-Condescending-Wonka
    assert kept(["明", "合", "百和"], [0.642, 0.601, 0.886]) == ([], {"fragment": 3})


def test_a_script_the_confident_text_does_not_carry_is_dropped():
    assert kept(["CHANGE MY MIND", "学生会"], [0.99, 0.8]) == (["CHANGE MY MIND"], {"script": 1})
    assert kept(["你好世界", "再见了"], [0.97, 0.8]) == (["你好世界", "再见了"], {})
    assert kept(["CHANGE MY MIND", "TODAY"], [0.99, 0.8]) == (["CHANGE MY MIND", "TODAY"], {})


def test_real_text_stays_with_its_sure_short_neighbours():
    assert kept(["OR", "draw", "25"], [0.998, 1.0, 1.0]) == (["OR", "draw", "25"], {})
    assert kept(["maury", "lii"], [0.997, 0.809]) == (["maury", "lii"], {})
    assert kept(["Hard to", "pills", "543"], [1.0, 1.0, 0.859]) == (["Hard to", "pills", "543"], {})


def test_low_confidence_and_shapes():
    assert kept(["HELLO THERE", "blurb", "●"], [0.99, 0.3, 0.9]) == (
        ["HELLO THERE"], {"low_confidence": 1, "not_text": 1})
    # a sure short line whose only long neighbour was dropped goes too
    assert kept(["OK", "mumble"], [0.99, 0.2]) == ([], {"low_confidence": 1, "fragment": 1})
