"""Importing ratings: long/wide layouts, the filled sheet, corpus ids, scales, and all-or-nothing errors."""

from __future__ import annotations

import csv

import pytest
from helpers_evaluate import add_memes, add_run, fill_sheet, sheet_pairs

from memeatlas.errors import InputError, NotFoundError
from memeatlas.evaluate import import_ratings, pair_id, sample_pairs
from memeatlas.evaluate.ratings import map_to_scale, parse_scale


def _write(path, header, rows):
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture
def sampled(store, tmp_path):
    m = add_memes(store, 24)
    add_run(store, "r1", {x: i % 4 for i, x in enumerate(m)})
    add_run(store, "r2", {x: i // 6 for i, x in enumerate(m)})
    sample_pairs(store, "r1,r2", n=30, pair_set="ps", seed=1, sheet=tmp_path / "sheet.csv")
    return m, tmp_path / "sheet.csv"


def _count(store, ps="ps"):
    return store.scalar("SELECT count(*) FROM ratings WHERE pair_set = ?", [ps])


def test_filled_sheet_imports_unchanged(store, sampled, tmp_path):
    _, sheet = sampled
    pids = [p for p, _, _ in sheet_pairs(sheet)]
    vals = {p: (i % 3) + 1 for i, p in enumerate(pids)}
    filled = fill_sheet(sheet, tmp_path / "alice.csv", {"connotative": vals, "denotative": vals})
    s = import_ratings(store, filled, pair_set="ps", coder="alice")
    assert (s.layout, s.n_ratings, s.n_pairs, s.coders) == ("wide", 60, 30, ["alice"])
    assert s.dimensions == ["connotative", "denotative"]
    got = dict(store.fetchall("SELECT pair_id, rating FROM ratings WHERE dimension = 'connotative'"))
    assert got == {p: float(v) for p, v in vals.items()}
    # Without --coder a plain-dimension wide file is refused.
    with pytest.raises(InputError, match="--coder"):
        import_ratings(store, filled, pair_set="ps")


def test_partially_filled_sheet_skips_blanks(store, sampled, tmp_path):
    _, sheet = sampled
    rows = list(csv.reader(sheet.open()))
    rows[1][5] = "3"
    rows[2][6] = "1"
    _write(tmp_path / "part.csv", rows[0], rows[1:])
    s = import_ratings(store, tmp_path / "part.csv", pair_set="ps", coder="bob")
    assert s.n_ratings == 2 and s.n_blank == 58


def test_long_layout_and_coder_dimension_columns(store, sampled, tmp_path):
    _, sheet = sampled
    pids = [p for p, _, _ in sheet_pairs(sheet)]
    long = _write(tmp_path / "long.csv", ["pair_id", "coder", "dimension", "rating"],
                  [(p, c, "connotative", 2) for p in pids[:10] for c in ("a", "b")])
    assert import_ratings(store, long, pair_set="ps").n_ratings == 20
    wide = _write(tmp_path / "wide.csv", ["pair_id", "c:denotative", "d:denotative"],
                  [(p, 1, 3) for p in pids])
    s = import_ratings(store, wide, pair_set="ps")
    assert s.coders == ["c", "d"] and s.n_ratings == 60
    assert _count(store) == 80


def test_errors_list_row_numbers_and_import_nothing(store, sampled, tmp_path):
    _, sheet = sampled
    pids = [p for p, _, _ in sheet_pairs(sheet)]
    rows = [(pids[0], "a", "connotative", 2),          # line 2 ok
            (pids[1], "a", "connotative", 4),          # line 3 out of scale
            ("pXXXXXXXXXXXX", "a", "connotative", 2),  # line 4 unknown pair
            (pids[0], "a", "connotative", 3),          # line 5 duplicate of line 2
            (pids[2], "a", "connotative", "high"),     # line 6 not a number
            (pids[3], "a", "connotative", 1)]          # line 7 ok
    bad = _write(tmp_path / "bad.csv", ["pair_id", "coder", "dimension", "rating"], rows)
    with pytest.raises(InputError) as exc:
        import_ratings(store, bad, pair_set="ps")
    msg = str(exc.value)
    for text in ("line 3", "outside the scale 1..3", "line 4", "unknown pair_id", "line 5", "duplicate",
                 "first on line 2", "line 6", "not a number", "nothing was imported"):
        assert text in msg, text
    assert "line 2:" not in msg and "line 7" not in msg
    assert _count(store) == 0


def test_error_list_is_capped(store, sampled, tmp_path):
    bad = _write(tmp_path / "many.csv", ["pair_id", "coder", "dimension", "rating"],
                 [(f"nope{i}", "a", "d", 2) for i in range(45)])
    with pytest.raises(InputError) as exc:
        import_ratings(store, bad, pair_set="ps")
    assert "45 problem(s)" in str(exc.value) and "... and 25 more" in str(exc.value)
    assert _count(store) == 0


def test_reimport_needs_force(store, sampled, tmp_path):
    _, sheet = sampled
    pids = [p for p, _, _ in sheet_pairs(sheet)]
    f1 = _write(tmp_path / "1.csv", ["pair_id", "coder", "dimension", "rating"], [(pids[0], "a", "connotative", 1)])
    f2 = _write(tmp_path / "2.csv", ["pair_id", "coder", "dimension", "rating"],
                [(pids[1], "a", "connotative", 2), (pids[0], "a", "connotative", 3)])
    import_ratings(store, f1, pair_set="ps")
    with pytest.raises(InputError, match="already rated"):
        import_ratings(store, f2, pair_set="ps")
    assert _count(store) == 1  # the new pids[1] rating was not half-imported either
    s = import_ratings(store, f2, pair_set="ps", force=True)
    assert s.n_replaced == 1
    assert store.scalar("SELECT rating FROM ratings WHERE pair_id = ?", [pids[0]]) == 3


def test_scale_mapping(store, sampled, tmp_path):
    _, sheet = sampled
    pids = [p for p, _, _ in sheet_pairs(sheet)]
    f = _write(tmp_path / "s.csv", ["pair_id", "coder", "dimension", "rating"],
               [(pids[0], "a", "connotative", 0), (pids[1], "a", "connotative", 5), (pids[2], "a", "connotative", 2.5)])
    s = import_ratings(store, f, pair_set="ps", scale="0..5")
    assert "mapped linearly onto 1..3" in s.scale_note
    got = dict(store.fetchall("SELECT raw_rating, rating FROM ratings"))
    assert got == {0.0: 1.0, 5.0: 3.0, 2.5: 2.0}
    assert parse_scale("1-7") == (1.0, 7.0) and map_to_scale(4, 1, 7) == 2.0
    with pytest.raises(InputError):
        parse_scale("5..1")
    g = _write(tmp_path / "g.csv", ["pair_id", "coder", "dimension", "rating"], [(pids[3], "a", "connotative", 6)])
    with pytest.raises(InputError, match="outside the scale 0..5"):
        import_ratings(store, g, pair_set="ps", scale="0..5")


def test_meme_columns_create_pair_set_with_corpus_ids(store, tmp_path):
    m = add_memes(store, 6)  # source ids m0..m5
    f = _write(tmp_path / "ext.csv", ["meme_a", "meme_b", "coder", "dimension", "rating"],
               [("m0", "m1", "x", "connotative", 3), ("m2", m[3], "x", "connotative", 1),
                ("m1", "m0", "y", "connotative", 2)])
    s = import_ratings(store, f, pair_set="ext")
    assert s.created_pair_set and s.n_new_pairs == 2 and s.n_ratings == 3
    row = store.fetchone("SELECT strategy FROM pair_sets WHERE pair_set = 'ext'")
    assert row == ("imported",)
    assert {r[0] for r in store.fetchall("SELECT pair_id FROM rating_pairs WHERE pair_set='ext'")} == {
        pair_id(m[0], m[1]), pair_id(m[2], m[3])}
    bad = _write(tmp_path / "bad.csv", ["meme_a", "meme_b", "coder", "dimension", "rating"],
                 [("m0", "zzz", "x", "d", 3), ("m4", "m4", "x", "d", 3)])
    with pytest.raises(InputError) as exc:
        import_ratings(store, bad, pair_set="ext2")
    assert "line 2" in str(exc.value) and "'zzz'" in str(exc.value) and "line 3" in str(exc.value)
    assert store.scalar("SELECT count(*) FROM pair_sets WHERE pair_set = 'ext2'") == 0


def test_sampled_set_rejects_foreign_meme_pairs(store, sampled, tmp_path):
    m, _ = sampled
    known = store.fetchone("SELECT meme_a, meme_b FROM rating_pairs WHERE pair_set = 'ps' LIMIT 1")
    pairs = {frozenset(r) for r in store.fetchall("SELECT meme_a, meme_b FROM rating_pairs WHERE pair_set='ps'")}
    foreign = next((a, b) for a in m for b in m if a != b and frozenset((a, b)) not in pairs)
    f = _write(tmp_path / "f.csv", ["meme_a", "meme_b", "coder", "dimension", "rating"],
               [(known[0], known[1], "x", "connotative", 2), (foreign[0], foreign[1], "x", "connotative", 2)])
    with pytest.raises(InputError, match="line 3: this pair of memes is not in pair set"):
        import_ratings(store, f, pair_set="ps")
    assert _count(store) == 0


def test_missing_things(store, tmp_path):
    with pytest.raises(InputError, match="not found"):
        import_ratings(store, tmp_path / "nope.csv", pair_set="x")
    f = _write(tmp_path / "a.csv", ["pair_id", "coder", "dimension", "rating"], [("p1", "a", "d", 1)])
    with pytest.raises(InputError, match="does not exist"):
        import_ratings(store, f, pair_set="x")
    g = _write(tmp_path / "b.csv", ["foo", "bar"], [(1, 2)])
    with pytest.raises(InputError, match="pair_id column or meme_a and meme_b"):
        import_ratings(store, g, pair_set="x")
    assert NotFoundError  # imported for symmetry with other tests


def test_semicolon_delimited_file(store, sampled, tmp_path):
    _, sheet = sampled
    pids = [p for p, _, _ in sheet_pairs(sheet)]
    f = tmp_path / "semi.csv"
    f.write_text("pair_id;coder;dimension;rating\n" + "".join(f"{p};a;connotative;2\n" for p in pids[:3]))
    assert import_ratings(store, f, pair_set="ps").n_ratings == 3


def test_foreign_pair_ids_with_meme_columns(store, tmp_path):
    m = add_memes(store, 4)
    f = _write(tmp_path / "x.csv", ["pair_id", "meme_a", "meme_b", "alice:connotative", "bob:connotative"],
               [("their-1", "m0", "m1", 3, 2), ("their-2", "m2", "m3", 1, 1)])
    s = import_ratings(store, f, pair_set="theirs")
    assert s.created_pair_set and s.n_ratings == 4 and s.coders == ["alice", "bob"]
    ids = {r[0] for r in store.fetchall("SELECT pair_id FROM rating_pairs WHERE pair_set = 'theirs'")}
    assert ids == {pair_id(m[0], m[1]), pair_id(m[2], m[3])}


def test_rate_page_download_layout_crlf(store, sampled, tmp_path):
    """The rating page downloads long CSV with CRLF line ends; it imports as is."""
    _, sheet = sampled
    pids = [p for p, _, _ in sheet_pairs(sheet)]
    f = tmp_path / "ratings-ps-ann.csv"
    f.write_bytes(("pair_id,coder,dimension,rating\r\n"
                   + "".join(f"{p},ann,connotative,{1 + i % 3}\r\n" for i, p in enumerate(pids[:5]))).encode())
    s = import_ratings(store, f, pair_set="ps")
    assert s.n_ratings == 5 and s.coders == ["ann"] and s.layout == "long"
