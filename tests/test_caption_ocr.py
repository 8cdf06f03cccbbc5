"""The ocr backend (rapidocr, offline): reads back text drawn by the test, fills ocr_text only."""

from __future__ import annotations

import json
import re

import pytest
from helpers_caption import draw_meme, insert_memes

from memeatlas.caption import CaptionConfig, run
from memeatlas.caption.backends import GenerationRequest, create
from memeatlas.errors import BackendError, InputError

TOP = "WHEN THE CODE COMPILES"
BOTTOM = "ON THE FIRST TRY"


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


@pytest.fixture(scope="module")
def ocr():
    return create("ocr")


def test_ocr_reads_back_drawn_text(ocr):
    img = draw_meme(TOP, BOTTOM)
    [res] = ocr.generate([GenerationRequest("", img, None, 0)])
    assert res.finished and res.error is None
    want = _words(TOP + " " + BOTTOM)
    overlap = len(want & _words(res.text)) / len(want)
    assert overlap >= 0.8, res.text
    # Reading order: the top line comes first.
    lines = res.text.splitlines()
    assert "code" in lines[0].lower() and "try" in lines[-1].lower()


def test_ocr_is_one_engine_per_process(ocr):
    other = create("ocr")
    assert other._engine is ocr._engine


def test_ocr_rejects_text_only_requests(ocr):
    with pytest.raises(BackendError, match="text-only"):
        ocr.generate([GenerationRequest("Name this cluster.", None, None, 8)])


def test_ocr_run_fills_ocr_text_only(store, tmp_path, ocr):
    p1, p2 = tmp_path / "a.png", tmp_path / "b.jpg"
    draw_meme(TOP, BOTTOM).save(p1)
    draw_meme("", "", bg=(200, 200, 200)).save(p2)  # no text at all
    ids = insert_memes(store, [p1, p2])
    s = run(store, CaptionConfig(backend="ocr", batch_size=2))
    assert s.annotator == "ocr:rapidocr" and (s.n_done, s.n_failed) == (2, 0)
    rows = dict(store.fetchall("SELECT meme_id, ocr_text FROM annotations"))
    assert len(_words(TOP) & _words(rows[ids[0]])) >= 3
    assert rows[ids[1]] == ""
    nulls = store.fetchone("SELECT count(description), count(intent), count(tone), "
                           "count(entities) FROM annotations")
    assert nulls == (0, 0, 0, 0)
    raw = json.loads(store.scalar("SELECT raw FROM annotations WHERE meme_id = ?", [ids[0]]))
    assert raw["ocr_text"] == rows[ids[0]] and set(raw) <= {"ocr_text", "ocr_dropped"}
    again = run(store, CaptionConfig(backend="ocr"))
    assert (again.n_done, again.n_skipped) == (0, 2)
    with pytest.raises(InputError, match="ocr"):
        run(store, CaptionConfig(backend="ocr", prompt_file=tmp_path / "x.txt"))


def test_ocr_fragments_are_dropped_with_a_count(store, tmp_path, ocr):
    # The drawn sun is read as a glyph ('O', score about 0.7): not text, dropped and counted,
    # beside the caption (kept) and beside a lone letter (both dropped: the meme has no text).
    p1, p2 = tmp_path / "a.png", tmp_path / "b.png"
    draw_meme(TOP, BOTTOM).save(p1)
    draw_meme("X", "").save(p2)
    ids = insert_memes(store, [p1, p2])
    s = run(store, CaptionConfig(backend="ocr", batch_size=2))
    assert s.ocr_dropped.get("fragment", 0) >= 2, s.ocr_dropped
    rows = dict(store.fetchall("SELECT meme_id, ocr_text FROM annotations"))
    assert rows[ids[1]] == "" and "O" not in rows[ids[0]].split("\n")
    dropped = store.fetchall("SELECT raw->'ocr_dropped'->>'fragment' FROM annotations "
                             "ORDER BY meme_id")
    assert all(int(n) >= 1 for (n,) in dropped)
