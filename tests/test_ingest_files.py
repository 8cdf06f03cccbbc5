"""Ingest of real image files: formats, bad files, duplicates, manifests, re-runs."""

from __future__ import annotations

import io
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers_ingest import write_image
from PIL import Image
from typer.testing import CliRunner

from memeatlas.cli import app
from memeatlas.errors import InputError
from memeatlas.ingest import ingest_paths
from memeatlas.ingest.validate import ImageInfo, inspect_bytes, sha256_bytes


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "memes"
    d.mkdir()
    write_image(d / "a.jpg", (10, 20, 30), fmt="JPEG")
    write_image(d / "b.png", (90, 20, 30))
    write_image(d / "c.webp", (10, 120, 30), fmt="WEBP")
    frames = [Image.new("RGB", (40, 30), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(d / "d.gif", save_all=True, append_images=frames[1:], duration=100)
    write_image(d / "e.bmp", (10, 20, 230), fmt="BMP")
    write_image(d / "f.tiff", (10, 220, 230), fmt="TIFF")
    Image.new("RGBA", (50, 50), (0, 0, 0, 0)).save(d / "g.png")
    (d / "notes.txt").write_text("not an image, and no image extension: ignored")
    return d


def test_ingest_all_formats(store, folder):
    s = ingest_paths(store, [folder])
    assert (s.added, s.present, s.failed, s.ignored) == (7, 0, 0, 1)
    rows = dict(store.fetchall("SELECT format, n_frames FROM memes ORDER BY format"))
    assert set(rows) == {"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"}
    assert rows["GIF"] == 3
    m = store.fetchone("SELECT meme_id, width, height, n_bytes, phash, has_image, path "
                       "FROM memes WHERE path LIKE '%b.png'")
    data = (folder / "b.png").read_bytes()
    assert m[0] == sha256_bytes(data) and len(m[0]) == 64
    assert (m[1], m[2], m[3]) == (64, 48, len(data))
    assert len(m[4]) == 16 and m[5] is True and os.path.isabs(m[6])


def test_reingest_is_noop(store, folder):
    ingest_paths(store, [folder])
    before = store.fetchall("SELECT * FROM memes ORDER BY meme_id")
    s = ingest_paths(store, [folder])
    assert (s.added, s.present, s.failed) == (0, 7, 0)
    assert store.fetchall("SELECT * FROM memes ORDER BY meme_id") == before
    assert store.scalar("SELECT count(*) FROM meme_sources") == 7


def test_bad_files_each_reported(store, tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    write_image(d / "good.png")
    (d / "empty.png").write_bytes(b"")
    good_jpg = write_image(tmp_path / "src.jpg", fmt="JPEG", size=(300, 200)).read_bytes()
    (d / "truncated.jpg").write_bytes(good_jpg[: len(good_jpg) // 2])
    (d / "fake.jpg").write_text("<html>this is a web page saved as .jpg</html>")
    # 8000 x 8000 = 64 Mpx in a ~10 KB file: a decompression bomb above the default limit.
    Image.new("1", (8000, 8000)).save(d / "bomb.png")
    os.symlink(tmp_path / "gone.png", d / "dangling.png")
    s = ingest_paths(store, [d, tmp_path / "missing.png"])
    assert s.added == 1 and s.failed == 6
    errors = dict(store.fetchall("SELECT regexp_extract(path, '[^/]+$'), error FROM ingest_errors"))
    assert errors == {
        "empty.png": "empty_file",
        "truncated.jpg": "truncated",
        "fake.jpg": "not_an_image",
        "bomb.png": "too_many_pixels",
        "dangling.png": "unreadable",
        "missing.png": "missing",
    }
    details = dict(store.fetchall("SELECT error, detail FROM ingest_errors"))
    assert "--max-image-pixels" in details["too_many_pixels"]
    assert "64,000,000" in details["too_many_pixels"]
    assert "0 bytes" in details["empty_file"]
    # A re-run replaces errors instead of piling up duplicates.
    ingest_paths(store, [d])
    assert store.scalar("SELECT count(*) FROM ingest_errors") == 6


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied_is_unreadable(store, tmp_path):
    p = write_image(tmp_path / "locked.png")
    p.chmod(0)
    try:
        s = ingest_paths(store, [p])
    finally:
        p.chmod(0o644)
    assert s.failed == 1
    assert store.scalar("SELECT error FROM ingest_errors") == "unreadable"


def test_pixel_limit_is_configurable(store, tmp_path):
    p = write_image(tmp_path / "big.png", size=(200, 100))
    s = ingest_paths(store, [p], max_image_pixels=10_000)
    assert s.failed == 1
    s = ingest_paths(store, [p], max_image_pixels=20_000)
    assert s.added == 1
    assert store.scalar("SELECT count(*) FROM ingest_errors") == 0  # fixed file clears its error


def test_duplicate_bytes_two_sources(store, tmp_path):
    a = write_image(tmp_path / "one.png")
    shutil.copy(a, tmp_path / "two.png")
    s = ingest_paths(store, [tmp_path / "one.png", tmp_path / "two.png"])
    assert (s.added, s.present) == (1, 1)
    assert store.scalar("SELECT count(*) FROM memes") == 1
    paths = sorted(r[0] for r in store.fetchall("SELECT path FROM meme_sources"))
    assert [os.path.basename(p) for p in paths] == ["one.png", "two.png"]


def test_glob_and_recursive(store, tmp_path):
    (tmp_path / "sub").mkdir()
    write_image(tmp_path / "top.png", (1, 2, 3))
    write_image(tmp_path / "sub" / "deep.png", (4, 5, 6))
    assert ingest_paths(store, [tmp_path]).added == 1
    assert ingest_paths(store, [tmp_path], recursive=True).added == 1
    assert ingest_paths(store, [str(tmp_path / "*.png")]).present == 1


def test_manifest_metadata(store, tmp_path):
    write_image(tmp_path / "x.png", (1, 2, 3))
    write_image(tmp_path / "y.png", (200, 2, 3))
    (tmp_path / "m.csv").write_text(
        "path,template,year,id\nx.png,drake,2019,kym-1\ny.png,distracted,2020,kym-2\n"
        "nowhere.png,drake,2021,kym-3\n,drake,2022,kym-4\n")
    s = ingest_paths(store, manifest=tmp_path / "m.csv", id_column="id")
    assert (s.added, s.failed) == (2, 2)
    rows = store.fetchall("SELECT meta->>'template', meta->>'year', source, source_id FROM memes "
                          "ORDER BY source_id")
    assert rows == [("drake", "2019", "manifest", "kym-1"), ("distracted", "2020", "manifest", "kym-2")]
    errs = dict(store.fetchall("SELECT path, error FROM ingest_errors"))
    assert errs == {f"{tmp_path / 'm.csv'}:4": "missing", f"{tmp_path / 'm.csv'}:5": "missing_field"}


def test_manifest_jsonl_merges_into_existing(store, tmp_path):
    write_image(tmp_path / "x.png", (1, 2, 3))
    ingest_paths(store, [tmp_path / "x.png"])
    (tmp_path / "m.jsonl").write_text(json.dumps({"path": "x.png", "theme": "cats"}) + "\n")
    s = ingest_paths(store, manifest=tmp_path / "m.jsonl")
    assert s.present == 1
    assert store.scalar("SELECT meta->>'theme' FROM memes") == "cats"


def test_cli_ingest_summary(tmp_path, folder):
    db = tmp_path / "c.duckdb"
    (folder / "empty.jpg").write_bytes(b"")
    r = CliRunner().invoke(app, ["ingest", str(folder), "--db", str(db)])
    assert r.exit_code == 0, r.output
    assert "added" in r.output and "7" in r.output and "empty_file" in r.output
    r = CliRunner().invoke(app, ["ingest", "--db", str(db)])
    assert r.exit_code == 1 and "Error:" in r.output


def test_threaded_inspection_restores_pil_bomb_limit():
    # Inspection lifts PIL's own limit while it runs; ingest does that on several threads
    # at once, and PIL's guard must be back in place for the rest of the process afterwards.
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (1, 2, 3)).save(buf, "PNG")
    data = buf.getvalue()
    limit = Image.MAX_IMAGE_PIXELS
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: inspect_bytes(data), range(400)))
    assert all(isinstance(r, ImageInfo) for r in results)
    assert Image.MAX_IMAGE_PIXELS == limit


def test_manifest_not_utf8_is_a_clear_error(store, tmp_path):
    m = tmp_path / "m.csv"
    m.write_bytes(b"path,x\n\xff\xfe.png,1\n")
    with pytest.raises(InputError, match=r"m\.csv: not UTF-8"):
        ingest_paths(store, manifest=m)


def test_manifest_same_bytes_in_one_batch_merge_meta(store, tmp_path):
    # Same bytes under two manifest rows: both rows' metadata reach memes.meta, as they do
    # when the rows fall into different batches.
    a = write_image(tmp_path / "a.png")
    shutil.copy(a, tmp_path / "b.png")
    (tmp_path / "m.csv").write_text("path,theme,extra\na.png,cats,\nb.png,,dogs\n")
    s = ingest_paths(store, manifest=tmp_path / "m.csv")
    assert (s.added, s.present) == (1, 1)
    assert json.loads(store.scalar("SELECT meta FROM memes")) == {"theme": "cats", "extra": "dogs"}


def test_glob_reports_broken_link(store, tmp_path):
    write_image(tmp_path / "ok.png")
    os.symlink(tmp_path / "gone.png", tmp_path / "dangling.png")
    s = ingest_paths(store, [str(tmp_path / "*.png")])
    assert (s.added, s.failed) == (1, 1)
    assert store.scalar("SELECT error FROM ingest_errors") == "unreadable"
