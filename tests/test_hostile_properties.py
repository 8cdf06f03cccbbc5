"""Property-based hostile input (hypothesis) for the manifest, annotation and ratings parsers.

Random bytes and random CSV/JSON shapes give either a clean import or a memeatlas error
(a one-line `Error: ...` in the CLI), never another exception, and an error writes nothing.
"""

from __future__ import annotations

import csv
import io
import json
import os

import pytest
from helpers_evaluate import add_memes, add_run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memeatlas.errors import MemeatlasError
from memeatlas.evaluate import import_ratings, sample_pairs
from memeatlas.ingest import import_annotations, ingest_paths
from memeatlas.store import Store

# 30 examples per test keep CI fast; MEMEATLAS_HYPOTHESIS_EXAMPLES=500 for a deeper hunt.
SETTINGS = settings(max_examples=int(os.environ.get("MEMEATLAS_HYPOTHESIS_EXAMPLES", "30")),
                    deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])
TABLES = ("memes", "meme_sources", "annotations", "imports", "ingest_errors", "ratings",
          "rating_pairs", "pair_sets")

# Text that includes the awkward: NUL, lone surrogates are impossible in files, but quotes,
# delimiters, newlines, BOMs and non-Latin scripts are not.
cell = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12) | \
    st.sampled_from(["", "\"", "\"\"", ",", ";", "\n", "\r\n", "\ufeff", "path", "id", "a.png",
                     "null", "[]", "{}", "1", "Прüfung", "😂", "a\x00b.png", "../../etc/passwd",
                     "/dev/zero", "~", "."])
columns = st.lists(st.sampled_from(["path", "id", "post_id", "img_captions", "meme_captions",
                                    "caption", "file", "pair_id", "coder", "dimension", "rating",
                                    "meme_a", "meme_b", "connotative", "a:denotative", ""]),
                   min_size=1, max_size=5)
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | cell,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["path", "id", "post_id", "img_captions", "meme_captions", "caption",
                         "data", "items", "metaphors", "x"]), inner, max_size=4),
    max_leaves=12)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One store with memes, a run and a pair set, shared by the examples of a test."""
    d = tmp_path_factory.mktemp("props")
    store = Store.open(d / "props.duckdb")
    m = add_memes(store, 12)
    add_run(store, "r1", {x: i % 3 for i, x in enumerate(m)})
    sample_pairs(store, "r1", n=6, pair_set="ps", seed=0)
    yield store, d
    store.close()


def _snapshot(store) -> dict[str, int]:
    return {t: store.scalar(f"SELECT count(*) FROM {t}") for t in TABLES}


def _csv(header: list[str], rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode("utf-8")


def _clean_or_refused(store, call) -> None:
    """`call` imports cleanly, or raises a memeatlas error having written nothing."""
    before = _snapshot(store)
    try:
        call()
    except MemeatlasError as exc:
        assert str(exc).strip(), "an error must say what is wrong"
        assert _snapshot(store) == before, f"partial write before: {exc}"


def _importers(path):
    return [
        lambda s: ingest_paths(s, manifest=path),
        lambda s: ingest_paths(s, manifest=path, id_column="id"),
        lambda s: import_annotations(s, path, "memecap"),
        lambda s: import_annotations(s, path, "jsonl" if path.suffix != ".csv" else "csv",
                                     mapping={"description": "caption"}, id_field="id",
                                     image_field="file"),
    ]


@SETTINGS
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".csv", ".tsv", ".jsonl", ".json"]))
def test_random_bytes_manifest_and_annotations(world, data, suffix):
    store, d = world
    path = d / f"random{suffix}"
    path.write_bytes(data)
    for call in _importers(path):
        _clean_or_refused(store, lambda c=call: c(store))


@SETTINGS
@given(header=columns, rows=st.lists(st.lists(cell, max_size=6), max_size=6))
def test_random_csv_shapes(world, header, rows):
    store, d = world
    path = d / "shape.csv"
    path.write_bytes(_csv(header, rows))
    for call in _importers(path):
        _clean_or_refused(store, lambda c=call: c(store))


@SETTINGS
@given(value=json_value, jsonl=st.booleans())
def test_random_json_shapes(world, value, jsonl):
    store, d = world
    if jsonl:
        path = d / "shape.jsonl"
        items = value if isinstance(value, list) else [value]
        path.write_text("\n".join(json.dumps(v) for v in items), encoding="utf-8")
    else:
        path = d / "shape.json"
        path.write_text(json.dumps(value), encoding="utf-8")
    for call in _importers(path):
        _clean_or_refused(store, lambda c=call: c(store))


@SETTINGS
@given(data=st.binary(max_size=300))
def test_random_bytes_ratings(world, data):
    store, d = world
    path = d / "ratings.csv"
    path.write_bytes(data)
    for kw in ({"pair_set": "ps"}, {"pair_set": "ps", "coder": "c", "dimension": "connotative"},
               {"pair_set": "new-set"}):
        _clean_or_refused(store, lambda kw=kw: import_ratings(store, path, **kw))


@SETTINGS
@given(header=columns, rows=st.lists(st.lists(cell | st.sampled_from(["1", "2", "3", "9"]),
                                              max_size=6), max_size=5),
       use_pairs=st.booleans())
def test_random_ratings_shapes(world, header, rows, use_pairs):
    store, d = world
    if use_pairs:  # real pair ids and meme ids in the cells, so some rows are nearly right
        pids = [r[0] for r in store.fetchall("SELECT pair_id FROM rating_pairs LIMIT 3")]
        rows = [[pids[i % len(pids)]] + r for i, r in enumerate(rows)]
        header = ["pair_id"] + header
    path = d / "shape_ratings.csv"
    path.write_bytes(_csv(header, rows))
    for kw in ({"pair_set": "ps"}, {"pair_set": "ps", "coder": "c", "force": True}):
        _clean_or_refused(store, lambda kw=kw: import_ratings(store, path, **kw))
