"""import-annotations: MemeCap-shaped JSON and generic CSV/JSONL corpora."""

from __future__ import annotations

import json

import pytest
from helpers_ingest import write_image
from typer.testing import CliRunner

from memeatlas.cli import app
from memeatlas.errors import InputError
from memeatlas.ingest import import_annotations
from memeatlas.provenance import sha256_text

MEMECAP = [
    {"category": "memes", "img_captions": ["A man looks back at another woman while his girlfriend "
                                            "glares."],
     "meme_captions": ["The poster is tempted by a new video game instead of finishing work."],
     "title": "Every time", "url": "https://i.redd.it/abc.jpg", "post_id": "abc123",
     "metaphors": [{"metaphor": "man", "meaning": "the poster"},
                   {"metaphor": "other woman", "meaning": "new video game"}],
     "img_fname": "memes_abc123.png"},
    {"category": "memes", "img_captions": ["A cat sits at a desk.", "A cat in an office."],
     "meme_captions": ["Monday feels endless."], "title": "monday", "url": "https://x/y.png",
     "post_id": "def456", "metaphors": [], "img_fname": "memes_def456.png"},
    {"category": "memes", "img_captions": ["no id here"], "meme_captions": ["x"], "title": "t",
     "url": "u", "metaphors": []},
]


def test_memecap_import(store, tmp_path):
    f = tmp_path / "memes-test.json"
    f.write_text(json.dumps(MEMECAP))
    s = import_annotations(store, f, "memecap")
    assert (s.rows, s.imported, s.failed) == (3, 2, 1)
    assert s.bad_lines == [(3, "missing post_id and csv_id")]
    a = store.fetchone(
        "SELECT a.meme_id, a.annotator, a.description, a.intent, a.entities, m.has_image, "
        "m.source_id, m.meta->>'title', a.raw->>'url' FROM annotations a JOIN memes m USING (meme_id) "
        "WHERE m.source_id = 'abc123'")
    assert a[0] == sha256_text("memecap:abc123")
    assert a[1] == "human:memecap"
    assert a[2].startswith("A man looks back") and a[3].startswith("The poster is tempted")
    assert json.loads(a[4])[1] == {"name": "other woman", "role": "unspecified",
                                  "stands_for": "new video game"}
    assert a[5] is False and a[6] == "abc123" and a[7] == "Every time"
    assert a[8] == "https://i.redd.it/abc.jpg"
    roles = store.fetchall("SELECT name, stands_for FROM entity_roles ORDER BY entity_index")
    assert roles == [("man", "the poster"), ("other woman", "new video game")]
    # both captions of a multi-caption item are kept
    assert "A cat in an office." in store.scalar(
        "SELECT description FROM annotations a JOIN memes m USING (meme_id) "
        "WHERE m.source_id = 'def456'")
    assert store.scalar("SELECT error FROM ingest_errors") == "missing_field"
    # re-import replaces, never duplicates
    import_annotations(store, f, "memecap")
    assert store.scalar("SELECT count(*) FROM annotations") == 2
    assert store.scalar("SELECT count(*) FROM imports") == 2


def test_memecap_with_images_folder(store, tmp_path):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    write_image(imgs / "memes_abc123.png")
    f = tmp_path / "memecap.json"
    f.write_text(json.dumps(MEMECAP[:2]))
    s = import_annotations(store, f, "memecap", images=imgs)
    assert s.with_image == 1
    rows = store.fetchall("SELECT source_id, has_image FROM memes ORDER BY source_id")
    assert rows == [("abc123", True), ("def456", False)]


def test_generic_csv_with_mapping_and_extra_columns(store, tmp_path):
    f = tmp_path / "corpus.csv"
    f.write_text(
        "meme,caption,message,category,template\n"
        "m1,Two buttons and a sweating man,Hard choices,politics,two-buttons\n"
        ",orphan row,no id,misc,x\n"
        "m3,,,misc,y\n"
        "m4,A dog in a burning room,Everything is fine,work,this-is-fine\n")
    s = import_annotations(store, f, "csv", mapping={"description": "caption", "intent": "message"},
                           id_field="meme")
    assert (s.imported, s.failed) == (2, 2)
    assert [ln for ln, _ in s.bad_lines] == [3, 4]
    rows = store.fetchall(
        "SELECT m.source_id, a.annotator, a.description, m.meta->>'category', m.meta->>'template' "
        "FROM annotations a JOIN memes m USING (meme_id) ORDER BY 1")
    assert rows == [("m1", "human:corpus", "Two buttons and a sweating man", "politics", "two-buttons"),
                    ("m4", "human:corpus", "A dog in a burning room", "work", "this-is-fine")]


def test_generic_jsonl_entities(store, tmp_path):
    f = tmp_path / "c.jsonl"
    rows = [{"id": 1, "d": "x", "ents": json.dumps([{"name": "cat", "role": "hero",
                                                     "stands_for": "me"}])},
            {"id": 2, "d": "y", "ents": json.dumps([{"name": "dog", "role": "king"}])}]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    s = import_annotations(store, f, "jsonl", mapping={"description": "d", "entities": "ents"},
                           id_field="id", corpus="kym")
    assert s.imported == 1 and s.bad_lines[0][0] == 2 and "king" in s.bad_lines[0][1]
    assert store.fetchall("SELECT name, role, annotator FROM entity_roles") == [
        ("cat", "hero", "human:kym")]


def test_generic_requires_id_and_mapping(store, tmp_path):
    f = tmp_path / "c.csv"
    f.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="--id-field"):
        import_annotations(store, f, "csv", mapping={"description": "b"})
    with pytest.raises(InputError, match="not annotation fields"):
        import_annotations(store, f, "csv", mapping={"caption": "b"}, id_field="a")


def test_cli_import_reports_lines(tmp_path):
    f = tmp_path / "memecap.json"
    f.write_text(json.dumps(MEMECAP))
    r = CliRunner().invoke(app, ["import-annotations", str(f), "--format", "memecap",
                                 "--db", str(tmp_path / "x.duckdb")])
    assert r.exit_code == 0, r.output
    assert "imported" in r.output and f"{f}:3: missing post_id and csv_id" in r.output


def test_repeated_id_last_annotation_wins_and_metadata_merges(store, tmp_path):
    # Rows are written in bulk; the outcome must match writing them one by one in file order.
    f = tmp_path / "c.csv"
    f.write_text("id,cap,cat,year\n1,first,x,\n1,second,,2020\n2,other,y,\n")
    s = import_annotations(store, f, "csv", mapping={"description": "cap"}, id_field="id")
    assert (s.rows, s.imported) == (3, 3)
    rows = store.fetchall("SELECT m.source_id, a.description, m.meta->>'cat', m.meta->>'year' "
                          "FROM memes m JOIN annotations a USING (meme_id) ORDER BY 1")
    assert rows == [("1", "second", "x", "2020"), ("2", "other", "y", None)]
    assert store.scalar("SELECT count(*) FROM meme_sources") == 2


def test_unusable_named_image_is_reported_not_silent(store, tmp_path):
    (tmp_path / "broken.png").write_bytes(b"")
    f = tmp_path / "c.csv"
    f.write_text("id,caption,file\n1,a cat,broken.png\n2,a dog,gone.png\n3,a cow,\n")
    s = import_annotations(store, f, "csv", mapping={"description": "caption"}, id_field="id",
                           image_field="file")
    assert (s.imported, s.with_image, s.image_problems) == (3, 0, 2)
    errs = dict(store.fetchall("SELECT regexp_extract(path, '[^/]+$'), error FROM ingest_errors"))
    assert errs == {"broken.png": "empty_file", "gone.png": "missing"}
    detail = store.scalar("SELECT detail FROM ingest_errors WHERE path LIKE '%broken.png'")
    assert f"{f}:2" in detail and "without its image" in detail
    assert store.scalar("SELECT count(*) FROM memes WHERE has_image") == 0


def test_fixed_row_clears_its_old_error(store, tmp_path):
    f = tmp_path / "c.csv"
    f.write_text("id,caption\n1,a cat\n2,\n")
    import_annotations(store, f, "csv", mapping={"description": "caption"}, id_field="id")
    assert store.scalar("SELECT path FROM ingest_errors") == f"{f}:3"
    f.write_text("id,caption\n1,a cat\n2,a dog\n")
    s = import_annotations(store, f, "csv", mapping={"description": "caption"}, id_field="id")
    assert s.failed == 0
    assert store.scalar("SELECT count(*) FROM ingest_errors") == 0
