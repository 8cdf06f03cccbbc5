"""memeatlas search: indexes (exact vs HNSW, incremental, replaced spaces), BM25, fusion, CLI,
bad input, and search()/similarity() inside the sandboxed `sql`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from helpers_cluster import add_memes, add_space, blobs, meme_id
from typer.testing import CliRunner

from memeatlas.cli import app
from memeatlas.errors import InputError, NotFoundError
from memeatlas.search import SearchRequest, indexes, search
from memeatlas.search.fusion import rrf
from memeatlas.search.lexical import LexicalIndex
from memeatlas.search.tokenize import mark, terms
from memeatlas.store import Store

TOPICS = ["student debt loan college tuition", "cat dog pet animal", "boss office work monday"]


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def corpus(tmp_path, monkeypatch):
    """60 memes in 3 planted topics: a 32-d space of 3 blobs and matching annotation text."""
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "corpus.duckdb"
    x, y = blobs(20, 3, dim=32, seed=3)
    ids = [meme_id(i) for i in range(len(x))]
    texts = [f"{TOPICS[c]} number {i}" for i, c in enumerate(y)]
    with Store.open(db) as s:
        add_memes(s, ids, texts=texts)
        add_space(s, "text:s", ids, x)
        s.execute("UPDATE memes SET source_id = 'src-' || substr(meme_id, 1, 6), "
                  "meta = '{\"url\": \"https://example.org/p\"}'")
    return db, ids, x, y


def test_tokenize_unicode_plurals_and_marks():
    assert terms("Students' DEBTS, 2024 😂 Prüfung мемы 学生贷款") == [
        "student", "debt", "2024", "😂", "prüfung", "мемы", "学生", "生贷", "贷款"]
    assert terms("the and of") == []
    text, found = mark("When the students see their student-debt bill", {"student", "debt"})
    assert text == "When the «students» see their «student»-«debt» bill"
    assert found == ["debt", "student"]


def test_bm25_ranks_incremental_and_tombstones():
    lex = LexicalIndex.empty()
    lex.add(["cat on a mat", "student debt crisis", "debt debt debt everywhere", "dog"])
    rows, scores, q = lex.top("student debt", 10)
    assert q == ["student", "debt"] and rows[0] == 1  # both terms beat repetition of one
    assert set(rows) == {1, 2}
    lex.remove([1])
    rows, _, _ = lex.top("student debt", 10)
    assert list(rows) == [2]
    new = lex.add(["a student meme"])
    rows, _, _ = lex.top("student", 10)
    assert list(rows) == list(new)


def test_rrf_fuses_by_rank():
    fused = rrf([["a", "b", "c"], ["c", "a"]])
    assert [m for m, _ in fused] == ["a", "c", "b"]
    assert rrf([["a"], ["b"]], [1.0, 2.0])[0][0] == "b"


def test_exact_and_approximate_agree_on_planted_data(corpus):
    db, ids, x, _ = corpus
    with Store.open(db, read_only=True) as s:
        ex = indexes.open_vectors(s, "text:s", backend="exact")
        assert ex.backend == "exact" and ex.index.graph is None
        # Each index numbers its rows in the order the store streamed them (DuckDB's scan
        # order), so the two are compared by meme id, not by row.
        exact = {i: [ex.ids[r] for r in ex.index.search(x[i], 10)[0]] for i in range(0, 60, 7)}
        ann = indexes.open_vectors(s, "text:s", backend="usearch")
        assert ann.backend == "usearch" and ann.index.graph is not None
        for i, want in exact.items():
            rows, sc = ann.index.search(x[i], 10)
            got = [ann.ids[r] for r in rows]
            # itself among the hits, at the top score (an exact duplicate may tie with it,
            # and ties follow the row order, which is the store's scan order)
            assert ids[i] in got and ids[i] in want and sc[0] >= 0.999
            # Nine of ten hits are among the true ten best. The planted data holds exact
            # duplicates, so the tenth place can be a tie that each index breaks in its own
            # row order: a hit counts when its true score reaches the exact tenth score.
            true = {m: float(v) for m, v in zip(ids, x @ x[i], strict=True)}
            tenth = min(true[m] for m in want)
            assert sum(true[m] >= tenth - 1e-5 for m in got) >= 9
            assert np.all(np.diff(sc) <= 1e-6)


@pytest.mark.parametrize("backend", ["exact", "usearch"])
def test_index_follows_added_changed_removed_and_replaced(corpus, backend):
    db, ids, x, _ = corpus
    with Store.open(db, read_only=True) as s:
        assert indexes.open_vectors(s, "text:s", backend=backend).update.action == "built"
        assert indexes.open_vectors(s, "text:s", backend=backend).update.action == "fresh"
    new_x, _ = blobs(3, 1, dim=32, seed=99)
    new_ids = [meme_id(1000 + i) for i in range(3)]
    with Store.open(db) as s:
        add_memes(s, new_ids, texts=["brand new"] * 3)
        add_space(s, "text:s", new_ids, new_x)
        s.execute("DELETE FROM embeddings WHERE meme_id = ?", [ids[0]])
        # ids[1] re-embedded with ids[2]'s vector (a changed text would do this)
        s.execute("UPDATE embeddings SET vector = (SELECT vector FROM embeddings WHERE "
                  "meme_id = ?), created_at = now() + INTERVAL 1 SECOND WHERE meme_id = ?",
                  [ids[2], ids[1]])
    with Store.open(db, read_only=True) as s:
        v = indexes.open_vectors(s, "text:s", backend=backend)
        assert (v.update.action, v.update.added, v.update.removed) == ("updated", 4, 2)
        got, _ = v.index.search(new_x[0], 1)
        assert v.ids[got[0]] == new_ids[0]
        assert ids[0] not in v.pos
        got, sc = v.index.search(x[2], 2)
        assert {v.ids[r] for r in got} == {ids[1], ids[2]} and sc[1] > 0.999
        assert len(v.pos) == 62
    # the space replaced (embed --force): a new fingerprint, so a rebuild
    with Store.open(db) as s:
        s.execute("DELETE FROM embeddings WHERE space = 'text:s'")
        s.execute("DELETE FROM embedding_spaces WHERE space = 'text:s'")
        add_space(s, "text:s", ids[:10], -x[:10])
    with Store.open(db, read_only=True) as s:
        v = indexes.open_vectors(s, "text:s", backend=backend)
        assert (v.update.action, len(v.pos)) == ("built", 10)
        got, sc = v.index.search(-x[3], 1)
        assert v.ids[got[0]] == ids[3] and sc[0] > 0.999


def test_interrupted_update_is_rebuilt(corpus):
    db, _, x, _ = corpus
    with Store.open(db, read_only=True) as s:
        v = indexes.open_vectors(s, "text:s", backend="exact")
        folder = v.index.folder
    man = json.loads((folder / "manifest.json").read_text())
    man["n_rows"] += 5  # files no longer match the manifest
    man["state"] = [0, "0"]
    (folder / "manifest.json").write_text(json.dumps(man))
    with Store.open(db, read_only=True) as s:
        v = indexes.open_vectors(s, "text:s", backend="exact")
        assert v.update.action == "built" and len(v.pos) == 60


def test_search_like_lexical_where_and_run(corpus):
    db, ids, x, y = corpus
    from memeatlas.cluster import ClusterConfig, run

    with Store.open(db) as s:
        [rid] = run(s, ClusterConfig(spaces=["text:s"], algorithm="kmeans", k=3, layout=False))
    with Store.open(db, read_only=True) as s:
        res = search(s, SearchRequest(like=ids[0], k=5, run=rid))
        assert res.mode == "semantic" and len(res.hits) == 5
        assert ids[0] not in [h.meme_id for h in res.hits]
        assert all(y[ids.index(h.meme_id)] == y[0] for h in res.hits)
        assert all(h.cluster is not None and h.membership is not None for h in res.hits)
        assert res.hits[0].link == "https://example.org/p"
        by_source = search(s, SearchRequest(like="src-" + ids[0][:6], k=5))
        assert [h.meme_id for h in by_source.hits] == [h.meme_id for h in res.hits]
        lex = search(s, SearchRequest(query="student loans", mode="lexical", k=50))
        topic = TOPICS.index("student debt loan college tuition")
        assert lex.hits and all(y[ids.index(h.meme_id)] == topic for h in lex.hits)
        assert "«student»" in lex.hits[0].text and "«loan»" in lex.hits[0].text
        first = ids[y.tolist().index(topic)]
        only = search(s, SearchRequest(query="student", mode="lexical",
                                       where=f"m.meme_id = '{first}'"))
        assert [h.meme_id for h in only.hits] == [first]


def test_cli_search_formats_and_bad_input(corpus, tmp_path):
    db, ids, _, _ = corpus
    r = CliRunner()
    out = r.invoke(app, ["search", "student debt", "--mode", "lexical", "-k", "3", "-f", "ids",
                         "--db", str(db)])
    assert out.exit_code == 0, out.output
    assert out.stdout.splitlines()[0] == "meme_id" and len(out.stdout.splitlines()) == 4
    out = r.invoke(app, ["search", "--like", ids[5], "-f", "json", "--db", str(db)])
    assert out.exit_code == 0 and len(json.loads(out.stdout)) == 20
    (tmp_path / "fake.png").write_text("not an image")
    before = _snapshot(tmp_path)
    bad = {
        "empty": ["search", "   "],
        "huge": ["search", "x" * 1_000_000],
        "unknown meme": ["search", "--like", "no-such-meme"],
        "not an image": ["search", "--like", str(tmp_path / "fake.png")],
        "k": ["search", "debt", "-k", "0"],
        "mode": ["search", "debt", "--mode", "fuzzy"],
        "format": ["search", "debt", "-f", "xml"],
        "space": ["search", "debt", "--space", "text:none"],
        "like+query": ["search", "debt", "--like", ids[0]],
        "where": ["search", "debt", "--mode", "lexical", "--where", "true; DROP TABLE memes"],
        "run": ["search", "debt", "--mode", "lexical", "--run", "nope"],
    }
    for what, args in bad.items():
        out = r.invoke(app, [*args, "--db", str(db)])
        assert out.exit_code == 1, (what, out.output)
        assert out.output.startswith("Error:") and len(out.output.splitlines()) == 1, (what,
                                                                                     out.output)
    # SQL in the query is only words: searched, never run
    out = r.invoke(app, ["search", "'; DROP TABLE memes; --", "--mode", "lexical", "--db",
                         str(db)])
    assert out.exit_code == 0, out.output
    after = _snapshot(tmp_path)
    assert {k: v for k, v in after.items() if ".search/" not in k} == {
        k: v for k, v in before.items() if ".search/" not in k}
    with Store.open(db, read_only=True) as s:
        assert s.scalar("SELECT count(*) FROM memes") == 60


@pytest.mark.parametrize("backend", ["exact", "usearch"])
def test_streamed_build_in_small_blocks_matches_one_block(corpus, backend, monkeypatch):
    """A build streams the store in blocks (bounded memory at 10⁶): blocks of 7 rows give
    the same vectors, rows and BM25 scores as one block, and DuckDB's memory limit is
    restored afterwards."""
    db, ids, x, _ = corpus
    got = {}
    for block in (100_000, 7):
        monkeypatch.setattr(indexes, "BUILD_BLOCK", block)
        indexes.remove_all(Store.open(db, read_only=True))
        with Store.open(db, read_only=True) as s:
            before = s.con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
            v = indexes.open_vectors(s, "text:s", backend=backend)
            lex = indexes.open_lexical(s, "human:test", ("description",))
            assert s.con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == before
            assert v.update.action == lex.update.action == "built" and len(v.pos) == 60
            vec = {m: v.index.vector(v.pos[m]) for m in ids}
            rows, sc, _ = lex.index.top("student debt tuition", 60)
            got[block] = (vec, {lex.ids[r]: float(c) for r, c in zip(rows, sc, strict=True)},
                          [v.ids[r] for r in v.index.search(x[5], 5)[0]])
    (va, la, na), (vb, lb, nb) = got[100_000], got[7]
    assert all(np.allclose(va[m], vb[m]) for m in ids)
    assert la.keys() == lb.keys() and all(abs(la[m] - lb[m]) < 1e-5 for m in la)
    assert na == nb


def test_lexical_index_follows_added_changed_removed_annotations(corpus, monkeypatch):
    db, ids, _, _ = corpus
    monkeypatch.setattr(indexes, "BUILD_BLOCK", 8)
    with Store.open(db, read_only=True) as s:
        assert indexes.open_lexical(s, "human:test", ("description",)).update.action == "built"
    with Store.open(db) as s:
        add_memes(s, [meme_id(2000)], texts=["zebra crossing meme"])
        s.execute("UPDATE annotations SET description = 'zebra stripes' WHERE meme_id = ?",
                  [ids[4]])
        s.execute("DELETE FROM annotations WHERE meme_id = ?", [ids[5]])
    with Store.open(db, read_only=True) as s:
        lex = indexes.open_lexical(s, "human:test", ("description",))
        assert (lex.update.action, lex.update.added, lex.update.removed) == ("updated", 2, 2)
        rows, sc, _ = lex.index.top("zebra", 10)
        assert {lex.ids[r] for r in rows} == {meme_id(2000), ids[4]}
        assert ids[5] not in lex.pos and len(lex.pos) == 60
        updated = {lex.ids[r]: float(c) for r, c in zip(*lex.index.top("student number", 60)[:2],
                                                          strict=True)}
        assert indexes.open_lexical(s, "human:test", ("description",)).update.action == "fresh"
    indexes.remove_all(Store.open(db, read_only=True))
    with Store.open(db, read_only=True) as s:  # the same scores as a fresh build
        lex = indexes.open_lexical(s, "human:test", ("description",))
        fresh = {lex.ids[r]: float(c) for r, c in zip(*lex.index.top("student number", 60)[:2],
                                                        strict=True)}
    assert updated.keys() == fresh.keys()
    assert all(abs(updated[m] - fresh[m]) < 1e-5 for m in fresh)


def test_sql_search_and_similarity(corpus, monkeypatch):
    db, ids, x, y = corpus
    r = CliRunner()
    out = r.invoke(app, ["sql", "SELECT s.rank, a.description FROM search('student debt', "
                         "k := 5, mode := 'lexical') s JOIN latest_annotations a USING (meme_id) "
                         "ORDER BY s.rank", "-f", "json", "--db", str(db)])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)
    assert len(rows) == 5 and all("student debt" in row["description"] for row in rows)
    # hybrid in SQL is the CLI's fusion: same memes, same order (the query "embedded" as
    # meme 0's vector: the synthetic space has no model)
    monkeypatch.setattr("memeatlas.search.encode.embed_text", lambda info, q: x[0])
    out = r.invoke(app, ["sql", "SELECT meme_id FROM search('student debt', k := 10, "
                         "mode := 'hybrid') ORDER BY rank", "-f", "json", "--db", str(db)])
    assert out.exit_code == 0, out.output
    with Store.open(db, read_only=True) as s:
        want = [h.meme_id for h in search(s, SearchRequest(query="student debt", mode="hybrid",
                                                            k=10)).hits]
    assert [row["meme_id"] for row in json.loads(out.stdout)] == want
    out = r.invoke(app, ["sql", f"SELECT meme_id, similarity(meme_id, '{ids[0]}') AS sim FROM "
                         "memes ORDER BY sim DESC LIMIT 4", "-f", "json", "--db", str(db)])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)
    assert rows[0]["meme_id"] == ids[0] and abs(rows[0]["sim"] - 1) < 1e-5
    assert all(y[ids.index(row["meme_id"])] == y[0] for row in rows)
    want = x[1] @ x[0] / np.linalg.norm(x[1]) / np.linalg.norm(x[0])
    out = r.invoke(app, ["sql", f"SELECT similarity('{ids[1]}', 'src-{ids[0][:6]}')", "-f", "csv",
                         "--db", str(db)])
    assert out.exit_code == 0 and abs(float(out.stdout.splitlines()[1]) - want) < 1e-5


# Attacks through the search functions: refused with one line, nothing changes, and the
# connection stays locked (settings, files) after search() has run.
SEARCH_SQL_ATTACKS = [
    "SELECT * FROM search((SELECT content FROM read_text('notes.txt')))",
    "SELECT * FROM search('x', space := '../../etc/passwd')",
    "SELECT * FROM search('x', k := 100000000)",
    "SELECT * FROM search(repeat('x', 1000000))",
    "SELECT * FROM search('x', mode := 'lexical'); COPY memes TO 'notes.txt'",
    "SELECT similarity(meme_id, 'notes.txt') FROM memes",
    "SELECT similarity(meme_id, 'x', space := 'text:s'; DROP TABLE memes; --') FROM memes",
    "CREATE OR REPLACE TEMP MACRO search(q) AS TABLE SELECT * FROM read_text('notes.txt')",
    "CREATE OR REPLACE TEMP MACRO similarity(a, b) AS 1",
    "SELECT * FROM search('x', mode := 'lexical'), read_text('notes.txt')",
    "SELECT * FROM search('x', mode := 'lexical') s, (SELECT set_config('threads', 1))",
    "SET enable_external_access = true; SELECT * FROM search('x', mode := 'lexical')",
    "SELECT memeatlas_search('x', 5, 'lexical', NULL); ATTACH 'other.duckdb' AS o",
]


def test_sql_search_functions_cannot_reach_files_or_settings(corpus, tmp_path):
    db, _, _, _ = corpus
    (tmp_path / "notes.txt").write_text("keep me\n")
    r = CliRunner()
    r.invoke(app, ["search", "debt", "--mode", "lexical", "--db", str(db)])  # indexes built
    assert r.invoke(app, ["search-index", "--db", str(db)]).exit_code == 0
    before = _snapshot(tmp_path)
    failures = []
    for attack in SEARCH_SQL_ATTACKS:
        out = r.invoke(app, ["sql", attack, "--db", str(db)])
        one_line = out.output.startswith("Error:") and len(out.output.splitlines()) == 1
        if not (out.exit_code == 1 and one_line and _snapshot(tmp_path) == before):
            failures.append((attack, out.exit_code, out.output[:300]))
    assert not failures, failures
    out = r.invoke(app, ["sql", "SELECT count(*) AS n, current_setting('enable_external_access') "
                         "AS ext, current_setting('lock_configuration') AS locked FROM "
                         "search('student', mode := 'lexical')", "-f", "json", "--db", str(db)])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout) == [{"n": 20, "ext": False, "locked": True}]
    assert _snapshot(tmp_path) == before


def test_library_errors_are_memeatlas_errors(corpus):
    db, _, _, _ = corpus
    with Store.open(db, read_only=True) as s:
        with pytest.raises(NotFoundError):
            search(s, SearchRequest(like="nope"))
        with pytest.raises(InputError):
            search(s, SearchRequest(query=""))


def test_selections_travel_search_export_import_labels_curate(corpus, tmp_path):
    db, ids, _, y = corpus
    from memeatlas.cluster import ClusterConfig, run

    with Store.open(db) as s:
        [rid] = run(s, ClusterConfig(spaces=["text:s"], algorithm="kmeans", k=3, layout=False))
    r = CliRunner()
    out = r.invoke(app, ["search", "student debt", "--mode", "lexical", "-k", "5", "-f", "ids",
                         "--db", str(db)])
    (tmp_path / "hits.csv").write_text(out.stdout)
    out = r.invoke(app, ["export", "--ids", str(tmp_path / "hits.csv"), "--label", "debt", "-f",
                         "csv", "-o", str(tmp_path / "sel.csv"), "--db", str(db)])
    assert out.exit_code == 0, out.output
    out = r.invoke(app, ["classify", "import-labels", str(tmp_path / "sel.csv"), "--task",
                         "topic", "--coder", "me", "--db", str(db)])
    assert out.exit_code == 0, out.output
    with Store.open(db, read_only=True) as s:
        assert s.fetchall("SELECT label, count(*) FROM class_labels GROUP BY 1") == [("debt", 5)]
    for fmt in ("parquet", "jsonl", "csv"):
        target = tmp_path / f"c0.{fmt}"
        out = r.invoke(app, ["export", "--run", rid, "--cluster", "0", "-f", fmt, "-o",
                             str(target), "--db", str(db)])
        assert out.exit_code == 0, out.output
        again = r.invoke(app, ["export", "--ids", str(target), "-f", "csv", "-o",
                               str(tmp_path / f"again-{fmt}.csv"), "--db", str(db)])
        assert again.exit_code == 0, again.output
    out = r.invoke(app, ["curate", "move", "--run", rid, "--to", "1", "--memes-file",
                         str(tmp_path / "c0.csv"), "--db", str(db)])
    assert out.exit_code == 0, out.output
    for bad in (["export", "--run", rid, "--cluster", "99"], ["export", "--cluster", "0"],
                ["export", "--ids", str(tmp_path / "nope.csv")],
                ["export", "memes", "--run", rid]):
        out = r.invoke(app, [*bad, "-o", str(tmp_path / "x.csv"), "-f", "csv", "--db", str(db)])
        assert out.exit_code == 1 and out.output.startswith("Error:"), (bad, out.output)
    assert not (tmp_path / "x.csv").exists()


def test_text_query_searches_a_clip_image_space_and_like_an_image(tmp_path):
    from helpers_embed import add_annotation, add_image_meme, write_image

    from memeatlas.embed import ImageEmbedConfig, embed_image
    from memeatlas.search.encode import embed_text, is_clip_like
    from memeatlas.search.query import open_searcher
    from memeatlas.testing.tiny_clip import build_tiny_clip

    clip = build_tiny_clip(tmp_path / "tiny-clip")
    db = tmp_path / "c.duckdb"
    with Store.open(db) as s:
        ids = [add_image_meme(s, write_image(tmp_path / f"i{k}.png", k)) for k in range(6)]
        for k, m in enumerate(ids):
            add_annotation(s, m, description=f"red square number {k}")
        embed_image(s, ImageEmbedConfig(model=str(clip)))
    with Store.open(db, read_only=True) as s:
        from memeatlas.embed import get_space

        info = get_space(s, "image:tiny-clip")
        assert is_clip_like(info)
        v = embed_text(info, "a red square")
        assert v.shape == (16,) and abs(float(np.linalg.norm(v)) - 1) < 1e-5
        srch = open_searcher(s)
        assert srch.text_spaces == ["image:tiny-clip"]  # no text space: the CLIP space
        res = search(s, SearchRequest(query="red square number 3", k=6))
        assert res.mode == "hybrid" and res.lists == ["image:tiny-clip", "lexical"]
        assert res.hits[0].meme_id == ids[3]
        like = search(s, SearchRequest(like=str(tmp_path / "i2.png"), k=3))
        assert like.hits[0].meme_id == ids[2] and like.hits[0].score > 0.999
