"""Hostile input to ingest and import-annotations (issue 16, defects 3, 8, 9, 10).

Every case ends in a clean import, a one-line error before anything is written, or a
counted, named warning; never a traceback, a lost batch or a silent drop.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from helpers_ingest import write_image
from PIL import Image
from typer.testing import CliRunner

from memeatlas.cli import app
from memeatlas.errors import InputError
from memeatlas.imaging import load_image
from memeatlas.ingest import import_annotations, ingest_paths
from memeatlas.ingest import run as ingest_run


def _bad_name(folder: Path, stem: bytes) -> Path:
    """A file whose name is not valid UTF-8 (Linux allows any bytes but '/' and NUL)."""
    return Path(os.fsdecode(os.fsencode(folder) + b"/" + stem + b"\xff\xfe.png"))


def _counts(store) -> tuple[int, int]:
    return (store.scalar("SELECT count(*) FROM memes"),
            store.scalar("SELECT count(*) FROM ingest_errors"))


# --- defect 3: one non-UTF-8 name must not sink its batch ---------------------------------

@pytest.mark.parametrize("batch", [256, 3])  # one batch; and poison split across batch edges
def test_non_utf8_names_at_start_middle_end_of_batch(store, tmp_path, monkeypatch, batch):
    monkeypatch.setattr(ingest_run, "BATCH", batch)
    d = tmp_path / "imgs"
    d.mkdir()
    # Sorted order: a\xff (first), b, c, m\xff (middle), n, o, z\xff (last).
    for i, stem in enumerate((b"a", b"m", b"z")):
        write_image(_bad_name(d, stem), color=(10 * i, 1, 2))
    for i, name in enumerate("bcno"):
        write_image(d / f"{name}.png", color=(100 + 20 * i, 50, 60))
    s = ingest_paths(store, [d])
    assert (s.added, s.failed) == (4, 3)
    assert s.errors == {"bad_filename": 3}
    rows = store.fetchall("SELECT path, detail FROM ingest_errors ORDER BY path")
    # A readable, valid UTF-8 form of each name, and what to do about it.
    assert [Path(p).name for p, _ in rows] == ["a\\xff\\xfe.png", "m\\xff\\xfe.png",
                                               "z\\xff\\xfe.png"]
    assert all("not valid UTF-8" in det and "rename" in det for _, det in rows)
    again = ingest_paths(store, [d])  # a re-run neither crashes nor piles up rows
    assert (again.present, again.failed) == (4, 3)
    assert _counts(store) == (4, 3)


def test_non_utf8_name_via_cli_is_reported(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    write_image(d / "good.png")
    write_image(_bad_name(d, b"bad"), color=(5, 5, 5))
    r = CliRunner().invoke(app, ["ingest", str(d), "--db", str(tmp_path / "x.duckdb")])
    assert r.exit_code == 0, r.output
    assert "bad_filename" in r.output and "added" in r.output


def test_manifest_link_to_non_utf8_target(store, tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    target = write_image(_bad_name(d, b"t"))
    (d / "link.png").symlink_to(target)
    write_image(d / "ok.png", color=(9, 9, 9))
    m = tmp_path / "m.csv"
    m.write_text("path\nimgs/link.png\nimgs/ok.png\n")
    s = ingest_paths(store, manifest=m)
    assert (s.added, s.failed) == (1, 1)
    assert store.scalar("SELECT error FROM ingest_errors") == "bad_filename"


def test_unwritable_item_fails_alone(store, tmp_path, monkeypatch):
    """Whatever makes one item's write fail, the rest of its batch is stored."""
    d = tmp_path / "imgs"
    d.mkdir()
    paths = [write_image(d / f"{i}.png", color=(30 * i, 7, 7)) for i in range(5)]
    real = ingest_run.inspect_file

    def poisoned(path, limit):
        info = real(path, limit)
        if path.name == "2.png":  # a value the store cannot take (a lone surrogate)
            return type(info)(info.meme_id, info.width, info.height, "PNG\udcff", info.n_frames,
                              info.n_bytes, info.phash)
        return info

    monkeypatch.setattr(ingest_run, "inspect_file", poisoned)
    s = ingest_paths(store, paths)
    assert (s.added, s.failed) == (4, 1)
    assert s.errors == {"write_failed": 1}
    assert store.scalar("SELECT path FROM ingest_errors").endswith("2.png")


# --- defect 9: manifest errors keyed by the resolved absolute path ------------------------

def test_manifest_errors_keyed_by_resolved_path(store, tmp_path, monkeypatch):
    sub = tmp_path / "sub"
    sub.mkdir()
    m = sub / "m.csv"
    m.write_text("path\ngone1.png\ngone2.png\n\n")
    m.write_text("path,x\ngone1.png,1\ngone2.png,2\n,3\n")
    monkeypatch.chdir(tmp_path)
    for spelling in (m, Path("sub/m.csv"), Path("sub/../sub/./m.csv")):
        ingest_paths(store, manifest=spelling)
    keys = sorted(r[0] for r in store.fetchall("SELECT path FROM ingest_errors"))
    assert keys == [f"{m.resolve()}:{n}" for n in (2, 3, 4)]
    write_image(sub / "gone1.png")
    write_image(sub / "gone2.png", color=(1, 1, 1))
    m.write_text("path,x\ngone1.png,1\ngone2.png,2\n")  # fixed: the blank row removed
    ingest_paths(store, manifest=Path("sub/m.csv"))
    assert _counts(store) == (2, 0)


# --- defect 10: 16-bit, EXIF rotation, directories named like images ----------------------

def test_16bit_png_is_scaled_not_clipped(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (16, 1))
    p = tmp_path / "g16.png"
    Image.fromarray(ramp).save(p)
    assert Image.open(p).mode.startswith("I")
    px = np.asarray(load_image(p))[..., 0]
    assert (px == 255).mean() < 0.02         # clipping turned ~99 % white
    assert abs(int(px[0, 128]) - 128) <= 2   # the middle of the ramp is mid-grey
    assert px[0, 0] == 0 and px[0, -1] == 255


def test_exif_rotated_jpeg_stores_upright_size(store, tmp_path):
    im = Image.new("RGB", (80, 40), (200, 10, 10))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90° on display
    p = tmp_path / "rot.jpg"
    im.save(p, exif=exif)
    ingest_paths(store, [p])
    assert store.fetchone("SELECT width, height FROM memes") == (40, 80)
    assert load_image(p).size == (40, 80)


def test_directory_named_like_an_image(store, tmp_path):
    d = tmp_path / "imgs"
    (d / "folder.jpg").mkdir(parents=True)
    write_image(d / "ok.png")
    s = ingest_paths(store, [d])
    assert (s.added, s.failed) == (1, 1)
    assert "is a directory" in store.scalar("SELECT detail FROM ingest_errors")
    s = ingest_paths(store, [str(d / "*.jpg")])  # a glob matching it says the same
    assert (s.failed, s.errors) == (1, {"unreadable": 1})
    m = tmp_path / "m.csv"
    m.write_text("path\nimgs/folder.jpg\n")
    s = ingest_paths(store, manifest=m)
    detail = store.scalar("SELECT detail FROM ingest_errors WHERE path LIKE '%m.csv:2'")
    assert "is a directory" in detail and "does not exist" not in detail


# --- defect 8: imports that silently drop or overwrite rows -------------------------------

def test_duplicate_ids_are_a_counted_named_warning(store, tmp_path):
    f = tmp_path / "c.csv"
    f.write_text("id,cap\n1,first\n1,second\n2,other\n")
    s = import_annotations(store, f, "csv", mapping={"description": "cap"}, id_field="id")
    assert s.warnings["duplicate_id"]["count"] == 1
    assert s.warnings["duplicate_id"]["examples"] == [f"{f.resolve()}:3"]
    n, w = store.fetchone("SELECT n_warnings, warnings FROM imports")
    assert n == 1 and json.loads(w)["duplicate_id"]["count"] == 1
    r = CliRunner().invoke(app, ["import-annotations", str(f), "-f", "csv", "--map",
                                 "description=cap", "--id-field", "id", "--db",
                                 str(tmp_path / "y.duckdb")])
    assert r.exit_code == 0 and "duplicate_id" in r.output and "memes" in r.output


@pytest.mark.parametrize("args, message", [
    (["-f", "csv", "--map", "description=nosuch", "--id-field", "id"], "nosuch"),
    (["-f", "csv", "--map", "description=cap", "--id-field", "nosuch"], "nosuch"),
    (["-f", "csv", "--map", "description=cap", "--id-field", "id", "--image-field", "nosuch"],
     "nosuch"),
])
def test_mapped_column_no_row_has_is_an_error(tmp_path, args, message):
    f = tmp_path / "c.csv"
    f.write_text("id,cap\n1,a\n2,b\n")
    db = tmp_path / "x.duckdb"
    r = CliRunner().invoke(app, ["import-annotations", str(f), *args, "--db", str(db)])
    assert r.exit_code == 1
    assert r.output.startswith("Error:") and message in r.output and "columns" in r.output
    assert len(r.output.strip().splitlines()) == 1


JSON_SHAPES = [
    ({"a": 1, "b": 2}, "object"),             # an object where a list is expected
    ([{"post_id": "1"}, 3, "x"], "entry 2"),  # non-object entries in a list
    ([], "no rows"),
    ({"data": {"x": 1}}, "object"),
]


@pytest.mark.parametrize("data, message", JSON_SHAPES)
def test_wrong_json_shapes_are_errors(tmp_path, data, message):
    f = tmp_path / "c.json"
    f.write_text(json.dumps(data))
    db = tmp_path / "x.duckdb"
    for args in (["import-annotations", str(f)],
                 ["import-annotations", str(f), "-f", "jsonl", "--map", "description=d",
                  "--id-field", "post_id"],
                 ["ingest", "--manifest", str(f)]):
        r = CliRunner().invoke(app, [*args, "--db", str(db)])
        assert r.exit_code == 1, (args, r.output)
        assert message in r.output and len(r.output.strip().splitlines()) == 1, r.output
    if db.exists():
        import duckdb
        con = duckdb.connect(str(db), read_only=True)
        assert con.execute("SELECT count(*) FROM memes").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM imports").fetchone()[0] == 0
        con.close()


def test_unterminated_csv_quote_is_an_error(store, tmp_path):
    f = tmp_path / "c.csv"
    f.write_text('id,cap\n1,"a cat\n2,a dog\n3,a cow\n')
    with pytest.raises(InputError, match="CSV"):
        import_annotations(store, f, "csv", mapping={"description": "cap"}, id_field="id")
    assert store.scalar("SELECT count(*) FROM annotations") == 0


def test_manifest_id_column_missing_is_an_error(store, tmp_path):
    write_image(tmp_path / "a.png")
    m = tmp_path / "m.csv"
    m.write_text("path,name\na.png,x\n")
    with pytest.raises(InputError, match="nosuch.*columns: name, path"):
        ingest_paths(store, manifest=m, id_column="nosuch")
    with pytest.raises(InputError, match="file.*columns: name, path"):
        ingest_paths(store, manifest=m, path_column="file")
    assert _counts(store) == (0, 0)


def test_manifest_duplicate_ids_are_an_error_before_writing(store, tmp_path):
    write_image(tmp_path / "a.png")
    write_image(tmp_path / "b.png", color=(1, 2, 3))
    m = tmp_path / "m.csv"
    m.write_text("path,id\na.png,7\nb.png,7\n")
    with pytest.raises(InputError, match=r"id '7'.*rows 2 and 3"):
        ingest_paths(store, manifest=m, id_column="id")
    assert _counts(store) == (0, 0)
    m.write_text("path,id\na.png,7\na.png,7\n")  # the same row twice is harmless
    s = ingest_paths(store, manifest=m, id_column="id")
    assert s.added == 1 and s.warnings["duplicate_row"]["count"] == 1


def test_image_less_json_payload_bytes(store, tmp_path):
    """A manifest that is not text at all: one-line error, nothing written."""
    m = tmp_path / "m.csv"
    m.write_bytes(b"path\n\xff\xfe\x00bad\n")
    with pytest.raises(InputError, match="UTF-8"):
        ingest_paths(store, manifest=m)
    assert _counts(store) == (0, 0)




def test_memecap_fields_of_the_wrong_type_are_bad_rows(store, tmp_path):
    """Found by the property tests: a non-list `metaphors` crashed the import."""
    f = tmp_path / "m.json"
    f.write_text(json.dumps([
        {"post_id": "1", "img_captions": ["a cat"], "metaphors": True},
        {"post_id": [], "img_captions": ["a dog"]},
        {"post_id": "3", "img_captions": {"x": 1}},
        {"post_id": "4", "img_captions": ["ok"], "meme_captions": ["fine"]},
    ]))
    s = import_annotations(store, f, "memecap")
    assert (s.imported, s.failed) == (1, 3)
    assert [why.split()[0] for _, why in s.bad_lines] == ["metaphors", "post_id", "img_captions"]


def test_import_image_with_non_utf8_name(store, tmp_path):
    target = write_image(_bad_name(tmp_path, b"img"))
    (tmp_path / "link.png").symlink_to(target)
    f = tmp_path / "c.csv"
    f.write_text("id,cap,file\n1,a cat,link.png\n")
    s = import_annotations(store, f, "csv", mapping={"description": "cap"}, id_field="id",
                           image_field="file")
    assert (s.imported, s.with_image, s.image_problems) == (1, 0, 1)
    assert store.scalar("SELECT error FROM ingest_errors") == "bad_filename"


def test_nul_in_a_path_is_a_bad_row(store, tmp_path):
    m = tmp_path / "m.json"
    m.write_text(json.dumps([{"path": "a\u0000b.png", "id": "1", "caption": "x",
                              "img_captions": ["x"], "post_id": "1", "img_fname": "a\u0000b"}]))
    s = ingest_paths(store, manifest=m)
    assert s.errors == {"missing_field": 1}
    for fmt, kw in (("jsonl", {"mapping": {"description": "caption"}, "id_field": "id",
                               "image_field": "path"}), ("memecap", {"images": tmp_path})):
        r = import_annotations(store, m, fmt, **kw)
        assert r.failed == 1 and "NUL" in r.bad_lines[0][1]


def test_devices_and_fifos_are_refused_not_read(store, tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    m = tmp_path / "m.csv"
    m.write_text("path\n/dev/zero\npipe.png\n")
    s = ingest_paths(store, manifest=m)          # would block on the FIFO or read forever
    assert s.errors == {"unreadable": 2}
    s = ingest_paths(store, ["/dev/zero", str(fifo)])
    assert s.errors == {"unreadable": 2}
    assert "not a regular file" in store.scalar("SELECT detail FROM ingest_errors LIMIT 1")


def _save(img, fmt, **kw) -> bytes:
    import io

    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _bad_image_table() -> dict[str, tuple[bytes, str]]:
    """file name -> (bytes, expected: 'ok' or the ingest_errors code)."""
    rgb = Image.new("RGB", (120, 80), (200, 40, 40))
    png = _save(rgb, "PNG")
    jpg = _save(rgb, "JPEG", quality=90)
    noise = (np.random.default_rng(0).random((80, 120, 3)) * 255).astype(np.uint8)
    corrupt_png = bytearray(_save(Image.fromarray(noise), "PNG"))
    mid = len(corrupt_png) // 2
    corrupt_png[mid:mid + 16] = b"\x00" * 16  # inside IDAT: a broken zlib stream
    exif = rgb.getexif()
    exif[0x0112] = 99  # an orientation value that does not exist
    frames = [Image.new("P", (40, 40), i) for i in range(3)]
    gif = _save(frames[0], "GIF", save_all=True, append_images=frames[1:])
    pal = Image.new("P", (30, 30), 0)
    pal.info["transparency"] = 0
    wide16 = np.tile(np.arange(0, 65536, 256, dtype=np.uint16), (4, 1))
    header_only = png[:33]  # signature + IHDR, no data
    return {
        "ok.png": (png, "ok"),
        "ok.jpg": (jpg, "ok"),
        "png_named.jpg": (png, "ok"),
        "cmyk.jpg": (_save(Image.new("CMYK", (50, 50), (0, 50, 100, 0)), "JPEG"), "ok"),
        "bad_exif.jpg": (_save(rgb, "JPEG", exif=exif), "ok"),
        "animated.gif": (gif, "ok"),
        "palette_alpha.png": (_save(pal, "PNG", transparency=0), "ok"),
        "la.png": (_save(Image.new("LA", (20, 20), (100, 50)), "PNG"), "ok"),
        "gray16.png": (_save(Image.fromarray(wide16), "PNG"), "ok"),
        "one_pixel.png": (_save(Image.new("RGB", (1, 1)), "PNG"), "ok"),
        "very_wide.png": (_save(Image.new("L", (20000, 1)), "PNG"), "ok"),
        "ok.webp": (_save(rgb, "WEBP"), "ok"),
        "ok.tiff": (_save(rgb, "TIFF"), "ok"),
        "ok.bmp": (_save(rgb, "BMP"), "ok"),
        "empty.png": (b"", "empty_file"),
        "truncated.jpg": (jpg[: len(jpg) // 2], "truncated"),
        "truncated.png": (png[: len(png) - 30], "truncated"),
        "header_only.png": (header_only, "truncated"),
        "corrupt.png": (bytes(corrupt_png), "corrupt"),
        "html.jpg": (b"<html><body>a saved web page</body></html>", "not_an_image"),
        "pdf.png": (b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n", "not_an_image"),
        "zip.png": (b"PK\x03\x04" + b"\x00" * 40, "not_an_image"),
        "svg.png": (b'<svg xmlns="http://www.w3.org/2000/svg"><rect/></svg>', "not_an_image"),
        "random.png": (bytes(range(256)) * 4, "not_an_image"),
        "icon.png": (_save(Image.new("RGB", (32, 32)), "ICO"), "unsupported_format"),
        "bomb.png": (_save(Image.new("1", (12000, 12000)), "PNG"), "too_many_pixels"),
    }


def test_many_kinds_of_bad_image_each_named(store, tmp_path):
    """Regression for the kinds already handled: each bad one gets its code, each good one
    is stored and decodes the way every later step sees it."""
    d = tmp_path / "zoo"
    d.mkdir()
    table = _bad_image_table()
    for name, (data, _) in table.items():
        (d / name).write_bytes(data)
    (d / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    s = ingest_paths(store, [d])
    errors = dict(store.fetchall("SELECT regexp_extract(path, '[^/]+$'), error FROM ingest_errors"))
    want = {n: code for n, (_, code) in table.items() if code != "ok"}
    want["dangling.png"] = "unreadable"
    assert errors == want
    good = [n for n, (_, code) in table.items() if code == "ok"]
    assert s.added + s.present == len(good) and s.failed == len(want)  # png_named.jpg = ok.png
    for (path,) in store.fetchall("SELECT path FROM memes"):
        assert load_image(path).mode == "RGB"
