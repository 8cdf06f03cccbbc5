"""Hostile input for `sql` and `--where`: nothing may write a file or change a database.

Table-driven: every attack string runs through the real CLI against a real store in a working
directory with bystander files, and afterwards the database file and every file in the folder
must be byte-identical (issue 16, defects 1 and 2).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import pytest
from helpers_cluster import add_memes, add_space, blobs, meme_id
from typer.testing import CliRunner

from memeatlas.cli import app
from memeatlas.corpus.where import where_ids
from memeatlas.errors import InputError
from memeatlas.store import Store

# Attacks on `memeatlas sql`: each must be refused (exit 1, one-line error, no traceback).
SQL_ATTACKS = [
    # writes to the store
    "DELETE FROM memes",
    "DROP TABLE memes",
    "UPDATE memes SET path = NULL",
    "INSERT INTO memes (meme_id, source, has_image) VALUES ('x', 'y', true)",
    "CREATE TABLE t AS SELECT 1",
    "CREATE TEMP TABLE t AS SELECT 1",
    "CREATE MACRO m() AS 1",
    "CHECKPOINT",
    "VACUUM",
    "CALL checkpoint()",
    "BEGIN; DELETE FROM memes; COMMIT",
    "PREPARE p AS DELETE FROM memes; EXECUTE p",
    # file writes, in every form
    "COPY memes TO 'other.duckdb' (FORMAT csv)",
    "COPY (SELECT 'junk' AS x) TO 'notes.txt'",
    "EXPLAIN ANALYZE COPY (SELECT 'junk' AS x) TO 'other.duckdb' (FORMAT csv)",
    "EXPLAIN COPY (SELECT 1) TO 'notes.txt'",
    "EXPLAIN /* c */ ANALYZE COPY (SELECT 1) TO 'notes.txt'",
    "EXPLAIN (FORMAT json) COPY (SELECT 1) TO 'notes.txt'",
    "EXPORT DATABASE 'dump'",
    "IMPORT DATABASE 'dump'",
    # settings that write files or lift the restrictions
    "SET log_query_path='f.txt'; SELECT 1",
    "PRAGMA enable_profiling='json'; PRAGMA profiling_output='f.txt'; SELECT 1",
    "PRAGMA enable_profiling",
    "SET enable_external_access = true; SELECT * FROM read_text('notes.txt')",
    "RESET lock_configuration",
    "SET temp_directory = 'tmpdir'",
    "SET VARIABLE v = (SELECT 1)",
    "CALL enable_logging('QueryLog', storage='file', storage_path='logs')",
    # extensions and other databases
    "INSTALL httpfs",
    "LOAD httpfs",
    "FORCE INSTALL json",
    "ATTACH 'other.duckdb' AS o; DELETE FROM o.t",
    "ATTACH 'new.duckdb' AS n",
    "USE memory",
    "DETACH corpus",
    "CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')",
    # file reads: replacement scans and table functions (off without --allow-read)
    "FROM 'x.csv'",
    "SELECT * FROM 'notes.txt'",
    "SELECT * FROM read_csv('x.csv')",
    "SELECT * FROM read_text('notes.txt')",
    "SELECT * FROM glob('*')",
    "SELECT * FROM read_blob('other.duckdb')",
    "SELECT * FROM read_json('x.csv')",
    "SELECT * FROM sniff_csv('x.csv')",
    "DESCRIBE SELECT * FROM 'x.csv'",
    "SUMMARIZE SELECT * FROM read_csv('x.csv')",
    "PIVOT read_csv('x.csv') ON a USING count(*)",
    "SELECT * FROM query('SELECT * FROM read_text(''notes.txt'')')",
    # multi-statements and comment tricks
    "SELECT 1; DELETE FROM memes",
    "SELECT 1 /* ; */; DROP TABLE memes",
    "SELECT 1 --\n; DELETE FROM memes",
    "/* SELECT */ DELETE FROM memes",
    "SELECT * FROM memes; ATTACH ':memory:' AS m2",
    "select 1;;;delete from memes",
]

# Reads that look like writes: they may run (or fail cleanly) but must change nothing.
SQL_HARMLESS = [
    "SELECT * FROM checkpoint()",
    "SELECT * FROM force_checkpoint()",
    "SELECT * FROM read_blob('corpus.duckdb')",
    "SELECT * FROM glob('corpus.duckdb*')",
    "SELECT * FROM duckdb_secrets()",
]

# Attacks on `--where`: each must be refused before any write.
WHERE_ATTACKS = [
    "true; DROP TABLE ingest_errors; DELETE FROM annotations",
    "true); DELETE FROM memes; SELECT (1",
    "true) OR (true",
    "true) UNION ALL (SELECT * FROM memes",
    "1=1 UNION SELECT * FROM memes",
    "true ORDER BY 1",
    "true LIMIT 0",
    "true GROUP BY meme_id",
    "true QUALIFY true",
    "true WINDOW w AS ()",
    "true USING SAMPLE 1",
    "true --\n; DELETE FROM memes",
    "true /* */; DELETE FROM memes",
    "true; COPY memes TO 'notes.txt'",
    "true; ATTACH 'other.duckdb' AS o",
    "true; SET enable_external_access = true",
    "true; INSTALL httpfs",
    "true; PRAGMA profiling_output = 'f.txt'",
    "m.meme_id = 'a' OR true; UPDATE memes SET path = 'x'",
    "m.meme_id IN (SELECT a FROM read_csv('x.csv'))",
    "EXISTS (SELECT * FROM glob('*'))",
    "length((SELECT content FROM read_text('notes.txt'))) > 0",
    "m.path IN (FROM 'x.csv')",
    "m.meme_id IN (SELECT filename FROM read_blob('other.duckdb'))",
    "(SELECT count(*) FROM annotations) >= 0",
    "m.meme_id IN (SELECT meme_id FROM query_table('annotations'))",
    "EXISTS (SELECT * FROM query('SELECT * FROM read_text(''notes.txt'')'))",
    "1",
    "m.meme_id",
    "?",
    "$1 = 1",
    "m.path = getenv('HOME')",
]


def _snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder` (the database included)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def hostile_dir(tmp_path, monkeypatch):
    """A store with memes, annotations, a space and a cluster run, plus bystander files."""
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "corpus.duckdb"
    x, _ = blobs(8, 3, dim=16, seed=1)
    ids = [meme_id(i) for i in range(len(x))]
    with Store.open(db) as s:
        add_memes(s, ids, texts=[f"text {i}" for i in range(len(ids))])
        add_space(s, "text:s", ids, x)
        s.execute("INSERT INTO ingest_errors (source, path, error) VALUES ('folder', 'x', 'y')")
    from memeatlas.cluster import ClusterConfig, run

    with Store.open(db) as s:
        [rid] = run(s, ClusterConfig(spaces=["text:s"], algorithm="kmeans", k=3, layout=False))
    other = duckdb.connect(str(tmp_path / "other.duckdb"))
    other.execute("CREATE TABLE t AS SELECT 42 AS a")
    other.close()
    (tmp_path / "x.csv").write_text("a\n1\n")
    (tmp_path / "notes.txt").write_text("keep me\n")
    (tmp_path / "f.txt").write_text("keep me too\n")
    return tmp_path, db, rid


def test_sql_attacks_change_nothing(hostile_dir):
    folder, db, _ = hostile_dir
    before = _snapshot(folder)
    tried = refused = unchanged = 0
    failures = []
    for attack in SQL_ATTACKS:
        r = CliRunner().invoke(app, ["sql", attack, "--db", str(db)])
        tried += 1
        ok = r.exit_code == 1 and r.output.startswith("Error:") and len(r.output.splitlines()) == 1
        refused += ok
        same = _snapshot(folder) == before
        unchanged += same
        if not (ok and same):
            failures.append((attack, r.exit_code, r.output[:200], same))
    print(f"sql attacks: tried {tried}, refused {refused}, files unchanged {unchanged}")
    assert not failures, failures
    assert tried >= 30
    for query in SQL_HARMLESS:
        r = CliRunner().invoke(app, ["sql", query, "--db", str(db)])
        assert r.exit_code in (0, 1) and r.exception is None or r.exit_code == 1, r.output
        assert "Traceback" not in r.output
        assert _snapshot(folder) == before, query


@pytest.mark.parametrize("command", ["cluster", "assign", "caption"])
def test_where_attacks_change_nothing(hostile_dir, command):
    folder, db, rid = hostile_dir
    before = _snapshot(folder)
    base = {"cluster": ["cluster", "--space", "text:s", "--algorithm", "kmeans", "--k", "3"],
            "assign": ["assign", "--run", rid],
            "caption": ["caption", "--backend", "ocr"]}[command]
    # Every attack through `cluster`; a spread of them through the others, which share the
    # same check (memeatlas.corpus.where) and are covered in full by the library test below.
    attacks = WHERE_ATTACKS if command == "cluster" else WHERE_ATTACKS[::4]
    tried = refused = unchanged = 0
    failures = []
    for attack in attacks:
        r = CliRunner().invoke(app, [*base, "--where", attack, "--db", str(db)])
        tried += 1
        ok = r.exit_code == 1 and "--where" in r.output and "Traceback" not in r.output
        refused += ok
        same = _snapshot(folder) == before
        unchanged += same
        if not (ok and same):
            failures.append((attack, r.exit_code, r.output[-300:], same))
    print(f"--where attacks on {command}: tried {tried}, refused {refused}, "
          f"files unchanged {unchanged}")
    assert not failures, failures
    assert tried >= (30 if command == "cluster" else 8)


def test_where_library_refuses_and_accepts(hostile_dir):
    _, db, _ = hostile_dir
    with Store.open(db) as s:
        for attack in WHERE_ATTACKS:
            with pytest.raises(InputError, match="--where"):
                where_ids(s, attack)
        n = s.scalar("SELECT count(*) FROM memes")
        assert where_ids(s, None) is None
        assert len(where_ids(s, "m.source = 'folder'")) == n
        assert len(where_ids(s, "m.source = 'folder' AND m.path LIKE '/tmp/%'")) == n
        assert where_ids(s, "m.added_at > TIMESTAMP '2999-01-01'") == set()
        first = s.scalar("SELECT min(meme_id) FROM memes")
        assert where_ids(s, f"m.meme_id = '{first}'") == {first}
        assert where_ids(s, "m.meta ->> 'k' IS NULL AND NOT m.has_image") == set(
            r[0] for r in s.fetchall("SELECT meme_id FROM memes"))
        assert s.scalar("SELECT count(*) FROM annotations") == n  # nothing was deleted


def test_sql_reads_still_work(hostile_dir):
    folder, db, _ = hostile_dir
    before = _snapshot(folder)
    run = CliRunner()
    r = run.invoke(app, ["sql", "PIVOT (SELECT source, has_image FROM memes) ON has_image "
                                "USING count(*)", "-f", "json", "--db", str(db)])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)[0]["source"] == "folder"
    for q in ("SELECT count(*) FROM memes", "EXPLAIN SELECT * FROM memes",
              "EXPLAIN ANALYZE SELECT count(*) FROM memes", "DESCRIBE memes", "SHOW TABLES",
              "SUMMARIZE memes", "PRAGMA table_info('memes')", "PRAGMA show_tables",
              "FROM memes SELECT meme_id LIMIT 1", "WITH a AS (SELECT 1 AS x) SELECT * FROM a",
              "SELECT 1; SELECT 2", "UNPIVOT (SELECT 1 AS a, 2 AS b) ON a, b INTO NAME k VALUE v"):
        r = run.invoke(app, ["sql", q, "--db", str(db)])
        assert r.exit_code == 0, (q, r.output)
    assert _snapshot(folder) == before


def test_sql_allow_read_reads_but_never_writes(hostile_dir):
    folder, db, _ = hostile_dir
    data = folder / "data"
    data.mkdir()
    (data / "extra.csv").write_text("a,b\n1,x\n2,y\n")
    before = _snapshot(folder)
    run = CliRunner()
    r = run.invoke(app, ["sql", "SELECT count(*) AS n FROM read_csv('data/extra.csv')", "-f",
                         "csv", "--allow-read", str(data), "--db", str(db)])
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == ["n", "2"]
    # outside the allowed folder: still refused
    r = run.invoke(app, ["sql", "SELECT * FROM read_text('notes.txt')", "--allow-read", str(data),
                         "--db", str(db)])
    assert r.exit_code == 1
    for attack in ("COPY (SELECT 1) TO 'data/out.csv'",
                   "EXPLAIN ANALYZE COPY (SELECT 1) TO 'data/extra.csv'",
                   "EXPORT DATABASE 'data/dump'"):
        r = run.invoke(app, ["sql", attack, "--allow-read", str(data), "--db", str(db)])
        assert r.exit_code == 1, (attack, r.output)
    assert _snapshot(folder) == before


# `--truth` of `evaluate labels` (and `run --truth`) may be a user's SELECT: the same class of
# hole as --where (it ran on the store's write connection, several statements included).
TRUTH_ATTACKS = [
    "SELECT 1 AS a, 2 AS b; DELETE FROM memes",
    "SELECT meme_id, source FROM memes; DROP TABLE annotations",
    "SELECT meme_id, 'x' FROM memes WHERE true; COPY memes TO 'notes.txt'",
    "SELECT * FROM enable_logging('QueryLog', storage='file', storage_path='logs')",
    "SELECT m.meme_id, t.content FROM memes m, read_text('notes.txt') t",
    "SELECT meme_id, a FROM memes, 'x.csv'",
    "SELECT * FROM read_blob('other.duckdb')",
    "WITH d AS (SELECT * FROM glob('*')) SELECT file, file FROM d",
    "EXPLAIN ANALYZE COPY (SELECT 1) TO 'notes.txt'",
    "SELECT meme_id, current_setting('threads') FROM memes; SET threads = 1",
]


def test_truth_sql_attacks_change_nothing(hostile_dir):
    folder, db, rid = hostile_dir
    before = _snapshot(folder)
    failures = []
    for attack in TRUTH_ATTACKS:
        r = CliRunner().invoke(app, ["evaluate", "labels", "--runs", rid, "--truth", attack,
                                     "--db", str(db)])
        if not (r.exit_code == 1 and "--truth" in r.output and "Traceback" not in r.output
                and _snapshot(folder) == before):
            failures.append((attack, r.exit_code, r.output[-300:]))
    assert not failures, failures
    # a real query over the store's tables and views still works
    r = CliRunner().invoke(app, ["evaluate", "labels", "--runs", rid, "--truth",
                                 "WITH t AS (SELECT meme_id, description FROM latest_annotations) "
                                 "SELECT meme_id, left(description, 6) FROM t", "--db", str(db)])
    assert r.exit_code == 0, r.output
