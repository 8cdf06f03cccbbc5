"""`memeatlas run` with the CNN image side, near-duplicate groups and a template gallery."""

from __future__ import annotations

import pytest

from memeatlas.demo.corpus import TEMPLATES, draw_meme, write_corpus
from memeatlas.embed import torchvision_models as tv
from memeatlas.pipeline import PipelineConfig, run_pipeline

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(tv.offline_weights_path() is None,
                       reason=f"needs the offline MobileNetV2 weights ({tv.SETUP_HINT})"),
]


def test_run_with_gallery_is_incremental(store, tmp_path):
    folder = tmp_path / "memes"
    items = write_corpus(folder, n=6, seed=3)
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    for k, name in enumerate(TEMPLATES):  # one blank image per template, drawn anew
        draw_meme("", "", name, seed=100 + k).save(gallery / f"{name}.png")
    cfg = PipelineConfig(paths=[folder], backend="ocr", image_model="auto", min_cluster_size=2,
                         gallery=gallery, report=tmp_path / "report.html")
    summary = run_pipeline(store, cfg)
    assert summary.step("embed image").info["space"] == "image:mobilenet_v2"
    assert summary.image_run_id is not None
    assert summary.step("near-dups").work == 6
    assert summary.step("templates").work == 6
    truth = {it.path.name: it.template for it in items}
    got = {p.rsplit("/", 1)[-1]: t for p, t in store.fetchall(
        "SELECT m.path, t.best_template FROM template_matches t JOIN memes m USING (meme_id)")}
    assert sum(got[f] == truth[f] for f in truth) >= 5, (got, truth)
    again = run_pipeline(store, cfg)
    assert not again.did_work, [(s.name, s.work, s.detail) for s in again.steps]
