"""Template matching against a gallery: generated pictures always, the real galleries when present."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memeatlas.cli import app
from memeatlas.errors import InputError
from memeatlas.images import TemplateMatchConfig, match_templates
from memeatlas.ingest import ingest_paths
from memeatlas.testing.shared_data import require_shared
from memeatlas.testing.variants import caption_bar, crop10
from tests.helpers_images import picture

# The templates in both galleries of ../shared/data/template-images, as (imgflip, wang_wen_2015)
# file stems: 14 share the name, and Bad Luck Brian is named differently.
SHARED = [(n, n) for n in (
    "Conspiracy-Keanu", "Disaster-Girl", "Doge", "First-World-Problems", "Futurama-Fry",
    "Grumpy-Cat", "I-Should-Buy-A-Boat-Cat", "Oprah-You-Get-A", "Philosoraptor", "Scumbag-Steve",
    "Success-Kid", "That-Would-Be-Great", "The-Most-Interesting-Man-In-The-World", "Y-U-No")]
SHARED.append(("Bad-Luck-Brian", "Bad-Luck-Brian-Meme"))


def _screenshot():
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (320, 256), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for y in range(12, 250, 18):
        draw.text((10, y), "me explaining memes to my parents lol " * 2, fill=(20, 20, 20))
    return img


def _meme_ids(store) -> dict[str, str]:
    return {Path(p).stem: m for m, p in store.fetchall("SELECT meme_id, path FROM memes")}


def test_generated_gallery_known_unknown_and_vlm_agreement(store, tmp_path):
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    for i in range(6):
        picture(100 + i).save(gallery / f"Template-{i}.png")
    (gallery / "notes.txt").write_text("not an image")
    memes = tmp_path / "memes"
    memes.mkdir()
    for i in range(4):
        caption_bar(picture(100 + i)).save(memes / f"m{i}_bar.png")
        crop10(picture(100 + i)).save(memes / f"m{i}_crop.png")
    _screenshot().save(memes / "unseen.png")  # a text screenshot: no gallery template
    ingest_paths(store, [memes])
    ids = _meme_ids(store)
    for stem, vlm in (("m0_bar", "template 0"), ("m1_bar", "Something Else")):
        store.execute("INSERT INTO annotations (meme_id, annotator, prompt_hash, schema_hash, "
                      "template) VALUES (?, 'vlm:test', 'p', 's', ?)", [ids[stem], vlm])

    s = match_templates(store, TemplateMatchConfig(gallery=gallery))
    assert (s.n_templates, s.n_gallery_images, s.matched) == (6, 6, 9)
    got = dict(store.fetchall("SELECT meme_id, template FROM template_matches"))
    for i in range(4):
        assert got[ids[f"m{i}_bar"]] == got[ids[f"m{i}_crop"]] == f"Template-{i}"
    assert got[ids["unseen"]] == "unknown"
    assert 0 < s.threshold < 1 and s.calibration["quantile"] == 0.95
    assert (s.vlm_compared, s.vlm_agree) == (2, 1)
    rows = dict(store.fetchall("SELECT vlm_template, agrees FROM meme_templates "
                               "WHERE vlm_template IS NOT NULL"))
    assert rows == {"template 0": True, "Something Else": False}
    prov = store.fetchone("SELECT model, space, calibration->>'method' FROM template_runs")
    assert prov == ("torchvision:mobilenet_v2", "image:mobilenet_v2",
                    "quantile of gallery impostor scores")

    again = match_templates(store, TemplateMatchConfig(gallery=gallery))
    assert (again.run_id, again.matched, again.skipped_existing) == (s.run_id, 0, 9)
    # a changed gallery is another run
    shutil.copy(gallery / "Template-0.png", gallery / "Template-0-copy.png")
    other = match_templates(store, TemplateMatchConfig(gallery=gallery, threshold=0.5))
    assert other.run_id != s.run_id and other.matched == 9 and other.threshold == 0.5


def test_gallery_errors(store, tmp_path):
    with pytest.raises(InputError, match="gallery folder not found"):
        match_templates(store, TemplateMatchConfig(gallery=tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no template images"):
        match_templates(store, TemplateMatchConfig(gallery=tmp_path / "empty"))
    r = CliRunner().invoke(app, ["images", "templates", "--gallery", str(tmp_path / "nope"),
                                 "--db", str(tmp_path / "x.duckdb")])
    assert r.exit_code == 1 and "Error:" in r.output and "Traceback" not in r.output


@pytest.mark.slow
def test_shared_templates_top1_across_galleries(store, tmp_path):
    """The 15 templates in both galleries, as different files: imgflip is the gallery."""
    imgflip = require_shared("template-images", "imgflip")
    wang = require_shared("template-images", "wang_wen_2015")
    memes = tmp_path / "memes"
    memes.mkdir()
    files = {f.stem.lower(): f for f in wang.iterdir()}
    for _, stem in SHARED:
        shutil.copy(files[stem.lower()], memes)
    ingest_paths(store, [memes])
    s = match_templates(store, TemplateMatchConfig(gallery=imgflip))
    best = {Path(p).stem: t for p, t in store.fetchall(
        "SELECT m.path, t.best_template FROM template_matches t JOIN memes m USING (meme_id)")}
    known = dict(store.fetchall(
        "SELECT m.path, t.template FROM template_matches t JOIN memes m USING (meme_id)"))
    best = {k.lower(): v for k, v in best.items()}
    hits = sum(best[w.lower()].lower() == i.lower() for i, w in SHARED)
    above = sum(t != "unknown" for t in known.values())
    print(f"top-1 {hits}/15, {above}/15 above the calibrated threshold {s.threshold:.3f}")
    assert s.n_templates == 100
    assert hits >= 14


def test_duplicated_template_under_two_names_calibrates_as_one(store, tmp_path):
    """A gallery holding one picture under two names: found as aliases, calibrated as if it
    held the picture once, and the runner-up of a match is never the best one's alias."""
    one, two = tmp_path / "one", tmp_path / "two"
    for g in (one, two):
        g.mkdir()
        for i in range(5):
            picture(200 + i).save(g / f"Template-{i}.png")
    shutil.copy(two / "Template-0.png", two / "Template-0-Meme.png")  # an alias name
    memes = tmp_path / "memes"
    memes.mkdir()
    caption_bar(picture(200)).save(memes / "m0.png")
    ingest_paths(store, [memes])

    a = match_templates(store, TemplateMatchConfig(gallery=one))
    b = match_templates(store, TemplateMatchConfig(gallery=two))
    assert b.calibration["aliases"] == [["Template-0", "Template-0-Meme"]]
    assert a.calibration["aliases"] == []
    assert b.threshold == pytest.approx(a.threshold)
    assert b.calibration["n_impostor_scores"] == a.calibration["n_impostor_scores"] == 5
    assert b.calibration["impostor_max"] < 0.99  # the alias is no impostor of its template
    assert "2 alias names merged into 1 template)" in b.calibration["basis"]
    best, second = store.fetchone("SELECT best_template, second_template FROM "
                                  "template_matches WHERE run_id = ?", [b.run_id])
    assert best in ("Template-0", "Template-0-Meme") and second.startswith("Template-")
    assert second not in ("Template-0", "Template-0-Meme")
    cli_db = str(tmp_path / "cli.duckdb")
    assert CliRunner().invoke(app, ["ingest", str(memes), "--db", cli_db]).exit_code == 0
    r = CliRunner().invoke(app, ["images", "templates", "--gallery", str(two), "--db", cli_db])
    assert r.exit_code == 0, r.output  # the summary goes to stderr
    assert "Template-0 = Template-0-Meme" in r.output and "alias names merged" in r.output


def test_find_aliases_by_picture_not_by_look():
    """Same picture recropped under another name links; two look-alike pictures do not."""
    import numpy as np

    from memeatlas.images.templates import find_aliases
    from memeatlas.testing.variants import crop10 as crop

    imgs = [picture(300), crop(picture(300)), picture(301)]
    G = np.array([[1.0, 0.0], [0.9, 0.436], [0.9, -0.436]], dtype=np.float32)  # all >= 0.8
    G /= np.linalg.norm(G, axis=1, keepdims=True)
    assert find_aliases(G, ["A", "A-Cropped", "B"], imgs) == [["A", "A-Cropped"]]
