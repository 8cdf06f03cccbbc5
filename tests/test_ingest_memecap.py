"""MemeCap imports keep every row and claim nothing the source does not say (issue 22)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from memeatlas.cli import app
from memeatlas.errors import InputError
from memeatlas.ingest import import_annotations
from memeatlas.ingest.memecap import parse_flat_metaphors, says_no_meaning

# The rebuilt trainval's three kinds of row: full structure, csv_only (no post_id, flattened
# text) and yDu98_only (no csv_id).
ROWS = [
    {"post_id": "bpet7l", "title": "For real", "url": "https://i.redd.it/m.jpg",
     "img_fname": "memes_bpet7l.png", "img_captions": ["Spider-Man gives a lecture."],
     "meme_captions": ["The poster wants an undo button."],
     "metaphors": [{"metaphor": "Spider-Man", "meaning": "Meme poster"},
                   {"metaphor": "looking", "meaning": "not related to the meme context"},
                   {"metaphor": "silver", "meaning": "not being bothered with something"},
                   {"metaphor": "holding", "meaning": "not related to the meme contextMem"}],
     "ocr_text": "Reddit should add an undo button", "csv_id": 0, "source": "yDu98+csv"},
    {"post_id": None, "title": "Help I'm broke", "url": "https://i.redd.it/g.jpg",
     "img_fname": None, "img_captions": None, "meme_captions": None, "metaphors": None,
     "ocr_text": None, "csv_id": 5689, "source": "csv_only",
     "img_captions_flat": "A duct and a tunnel.",
     "meme_captions_flat": "The poster exposes real air vents.",
     "metaphors_flat": "a duct: Meme poster, a tunnel: real air vent, dust, grime: dirt, "
                       "a fan: not related to the meme context"},
    {"post_id": "y4plr3", "title": None, "url": None, "img_fname": "memes_y4plr3.png",
     "img_captions": ["Two kids and a tiger."], "meme_captions": ["Comment order."],
     "metaphors": [], "ocr_text": "second comment", "csv_id": None, "source": "yDu98_only"},
]


def _write(tmp_path, rows=ROWS):
    f = tmp_path / "memes-trainval.reconstructed.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return f


def test_every_row_imports_csv_only_keyed_by_csv_id(store, tmp_path):
    s = import_annotations(store, _write(tmp_path), "memecap")
    assert (s.rows, s.imported, s.failed) == (3, 3, 0)
    got = dict(store.fetchall(
        "SELECT m.source_id, a.description FROM memes m JOIN annotations a USING (meme_id)"))
    assert got == {"bpet7l": "Spider-Man gives a lecture.", "5689": "A duct and a tunnel.",
                   "y4plr3": "Two kids and a tiger."}
    # the flattened metaphors become entities too (a meaning may hold a comma)
    flat = store.fetchall("SELECT e.name, e.stands_for FROM entity_roles e JOIN memes m "
                          "USING (meme_id) WHERE m.source_id = '5689' ORDER BY entity_index")
    assert flat == [("a duct", "Meme poster"), ("a tunnel", "real air vent, dust"),
                    ("grime", "dirt")]


def test_ocr_text_is_the_annotations_ocr_text(store, tmp_path):
    import_annotations(store, _write(tmp_path), "memecap")
    assert store.fetchall("SELECT m.source_id, a.ocr_text FROM memes m JOIN annotations a "
                          "USING (meme_id) WHERE a.ocr_text IS NOT NULL ORDER BY 1") == [
        ("bpet7l", "Reddit should add an undo button"), ("y4plr3", "second comment")]
    assert store.scalar("SELECT count(*) FROM memes WHERE meta->>'ocr_text' IS NOT NULL") == 0


def test_pairs_without_meaning_are_not_entities_and_roles_are_unspecified(store, tmp_path):
    s = import_annotations(store, _write(tmp_path), "memecap")
    assert s.pairs_without_meaning == 4 and s.entities == 4
    assert store.fetchall("SELECT DISTINCT role FROM entity_roles") == [("unspecified",)]
    assert store.scalar("SELECT count(*) FROM entity_roles WHERE stands_for ILIKE 'not %'") == 0
    kept = store.scalar("SELECT a.raw->'metaphors_without_meaning' FROM annotations a JOIN memes m "
                        "USING (meme_id) WHERE m.source_id = 'bpet7l'")
    assert [p["metaphor"] for p in json.loads(kept)] == ["looking", "silver", "holding"]
    assert store.scalar("SELECT warnings->'metaphors_without_meaning'->>'count' FROM imports") == "2"


def test_id_field_is_used_and_rows_without_it_are_named(store, tmp_path):
    s = import_annotations(store, _write(tmp_path), "memecap", id_field="csv_id")
    assert (s.imported, s.bad_lines) == (2, [(3, "missing csv_id")])
    assert sorted(r[0] for r in store.fetchall("SELECT source_id FROM memes")) == ["0", "5689"]
    # the post_id that is not the id stays in the metadata
    assert store.scalar("SELECT meta->>'post_id' FROM memes WHERE source_id = '0'") == "bpet7l"


@pytest.mark.parametrize("kwargs, option", [
    ({"fmt": "memecap", "mapping": {"description": "title"}}, "--map"),
    ({"fmt": "memecap", "image_field": "img_fname"}, "--image-field"),
    ({"fmt": "jsonl", "id_field": "csv_id", "mapping": {"description": "title"},
      "images": "imgs"}, "--images"),
    ({"fmt": "memecap", "id_field": "nope"}, "--id-field"),
])
def test_an_unused_option_is_refused(store, tmp_path, kwargs, option):
    f = _write(tmp_path)
    fmt = kwargs.pop("fmt")
    with pytest.raises(InputError, match=option):
        import_annotations(store, f, fmt, **kwargs)
    assert store.scalar("SELECT count(*) FROM annotations") == 0


def test_cli_refuses_time_format_without_timestamp_field(tmp_path):
    r = CliRunner().invoke(app, ["import-annotations", str(_write(tmp_path)), "--time-format",
                                 "epoch", "--db", str(tmp_path / "x.duckdb")])
    assert r.exit_code == 1 and "--time-format" in r.output


def test_generic_entity_without_role_is_unspecified(store, tmp_path):
    f = tmp_path / "c.jsonl"
    f.write_text(json.dumps({"id": 1, "d": "x", "e": json.dumps([{"name": "cat"}])}) + "\n")
    import_annotations(store, f, "jsonl", mapping={"description": "d", "entities": "e"},
                       id_field="id")
    assert store.fetchall("SELECT name, role FROM entity_roles") == [("cat", "unspecified")]


def test_no_meaning_phrasings():
    assert says_no_meaning("Not related to the meme context ")
    assert says_no_meaning("N/A") and says_no_meaning("not being bothered with something")
    assert not says_no_meaning("Meme poster") and not says_no_meaning("not caring")
    assert parse_flat_metaphors("") == [] and parse_flat_metaphors(None) is None
