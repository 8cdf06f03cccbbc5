"""`memeatlas run` on an image folder whose OCR finds text on few memes (issue 22, part 5)."""

from __future__ import annotations

import pytest

from memeatlas.demo.corpus import TEMPLATES, draw_meme
from memeatlas.pipeline import PipelineConfig, run_pipeline

pytestmark = pytest.mark.slow  # OCR of ten images: about half a minute on a busy CPU


def test_run_reports_a_run_covering_every_meme(store, tmp_path):
    folder = tmp_path / "memes"
    folder.mkdir()
    names = list(TEMPLATES)
    for k in range(10):  # template pictures; two carry a caption
        draw_meme("WHEN THE CODE COMPILES" if k < 2 else "", "", names[k % len(names)],
                  seed=10 + k).save(folder / f"m{k}.png")
    s = run_pipeline(store, PipelineConfig(paths=[folder], backend="ocr", image_model="pixels",
                                           report=tmp_path / "report.html"))
    assert s.run_id == s.image_run_id
    assert store.scalar("SELECT count(*) FROM cluster_assignments WHERE run_id = ?",
                        [s.run_id]) == 10
    assert "below 90%" in s.reported and "covers 10" in s.reported
    assert "not in it" not in s.step("report").detail
    # the drawn shapes read as glyphs are dropped, counted
    assert s.step("caption").info["ocr_dropped"].get("fragment", 0) >= 1
    assert "OCR lines dropped as not text" in s.step("caption").detail
