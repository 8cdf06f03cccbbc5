"""Hostile --db values (issue 16, defects 4, 5, 11, 12): foreign DuckDB files, old and new
schemas, mistyped paths, SQLite files, bad formats and export targets."""

from __future__ import annotations

import hashlib
import sqlite3

import duckdb
import pytest
from helpers_ingest import write_image
from typer.testing import CliRunner

from memeatlas.cli import app
from memeatlas.errors import DatabaseNotFoundError, InputError, SchemaVersionError
from memeatlas.ingest import ingest_paths
from memeatlas.store import Store, migrate


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_line_error(r, *needles: str) -> None:
    assert r.exit_code == 1, r.output
    assert r.output.startswith("Error:") and "Traceback" not in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1, r.output
    for n in needles:
        assert n in r.output, (n, r.output)


@pytest.fixture
def img_dir(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    write_image(d / "a.png", (10, 200, 30))
    return d


@pytest.mark.parametrize("with_memes_table", [False, True])
def test_foreign_duckdb_is_refused(tmp_path, img_dir, with_memes_table):
    sales = tmp_path / "sales.duckdb"
    con = duckdb.connect(str(sales))
    con.execute("CREATE TABLE orders AS SELECT range AS id FROM range(5)")
    if with_memes_table:
        con.execute("CREATE TABLE memes (x INTEGER)")
    con.close()
    before = _sha(sales)
    run = CliRunner()
    for args in (["ingest", str(img_dir)], ["status"], ["sql", "SELECT 1"],
                 ["export", "orders", "-o", str(tmp_path / "o.parquet")], ["migrate"],
                 ["caption", "--backend", "ocr"]):
        r = run.invoke(app, [*args, "--db", str(sales)])
        _one_line_error(r, "sales.duckdb", "memeatlas did not create", "--db")
    assert _sha(sales) == before
    con = duckdb.connect(str(sales), read_only=True)
    assert {r[0] for r in con.execute("SHOW TABLES").fetchall()} == (
        {"orders", "memes"} if with_memes_table else {"orders"})
    con.close()
    with pytest.raises(InputError, match="did not create"):
        Store.open(sales)


def test_empty_duckdb_file_becomes_a_store(tmp_path, img_dir):
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    r = CliRunner().invoke(app, ["status", "--db", str(empty)])
    _one_line_error(r, "empty DuckDB file", "memeatlas ingest")
    r = CliRunner().invoke(app, ["ingest", str(img_dir), "--db", str(empty)])
    assert r.exit_code == 0, r.output
    with Store.open(empty, read_only=True) as s:
        assert s.scalar("SELECT count(*) FROM memes") == 1


def test_old_schema_read_only_commands_say_how_to_upgrade(tmp_path, img_dir):
    db = tmp_path / "old.duckdb"
    with Store.open(db, migrate_to=2) as s:
        ingest_paths(s, [img_dir])
    latest = len(migrate.available())
    run = CliRunner()
    for args in (["status"], ["sql", "SELECT count(*) FROM memes"],
                 ["export", "memes", "-o", str(tmp_path / "m.parquet")],
                 ["report", "-o", str(tmp_path / "r.html")]):
        r = run.invoke(app, [*args, "--db", str(db)])
        _one_line_error(r, "schema version 2", f"version {latest}", "memeatlas migrate --db")
    with pytest.raises(SchemaVersionError):
        Store.open(db, read_only=True)
    r = run.invoke(app, ["migrate", "--db", str(db)])
    assert r.exit_code == 0, r.output
    assert f"2 -> {latest}" in r.output
    r = run.invoke(app, ["status", "-f", "json", "--db", str(db)])
    assert r.exit_code == 0, r.output
    assert '"schema version"' in r.stdout


def test_newer_schema_is_refused(tmp_path, img_dir):
    db = tmp_path / "new.duckdb"
    with Store.open(db) as s:
        s.execute("INSERT INTO schema_migrations (version, name) VALUES (999, 'future')")
    before = _sha(db)
    for args in (["status"], ["ingest", str(img_dir)], ["migrate"]):
        r = CliRunner().invoke(app, [*args, "--db", str(db)])
        _one_line_error(r, "schema version 999", "newer memeatlas")
    assert _sha(db) == before


@pytest.mark.parametrize("args", [
    ["caption", "--backend", "ocr"], ["embed", "image", "--model", "pixels"],
    ["embed", "text"], ["cluster", "--space", "text:x"], ["label", "--run", "r"],
    ["assign", "--run", "r"], ["evaluate", "pairs", "--runs", "r", "--pair-set", "p", "--n", "4"],
    ["status"], ["sql", "SELECT 1"], ["export", "memes"], ["migrate"],
])
def test_mistyped_db_is_not_created(tmp_path, args):
    db = tmp_path / "typo" / "corpus.duckb"
    r = CliRunner().invoke(app, [*args, "--db", str(db)])
    _one_line_error(r, str(db))
    assert not db.parent.exists()


def test_only_adding_commands_create(tmp_path, img_dir):
    db = tmp_path / "new" / "corpus.duckdb"
    with pytest.raises(DatabaseNotFoundError, match="create a store"):
        Store.open(db, create=False)
    r = CliRunner().invoke(app, ["ingest", str(img_dir), "--db", str(db)])
    assert r.exit_code == 0, r.output
    assert db.exists()


def test_export_to_missing_folder(tmp_path, img_dir):
    db = tmp_path / "c.duckdb"
    with Store.open(db) as s:
        ingest_paths(s, [img_dir])
    r = CliRunner().invoke(app, ["export", "memes", "-o", str(tmp_path / "nope" / "x.parquet"),
                                 "--db", str(db)])
    _one_line_error(r, "does not exist", "nope")
    r = CliRunner().invoke(app, ["export", "memes", "-o", str(tmp_path), "--db", str(db)])
    _one_line_error(r, "is a folder")
    r = CliRunner().invoke(app, ["export", "--all", "-o", str(tmp_path / "nope" / "all"),
                                 "--db", str(db)])
    _one_line_error(r, "does not exist")
    assert not (tmp_path / "nope").exists()


@pytest.mark.parametrize("args", [["sql", "SELECT 1"], ["status"]])
def test_unknown_format_checked_before_the_query(tmp_path, args):
    # no database at all: the format error must come first, before anything is opened
    r = CliRunner().invoke(app, [*args, "-f", "yaml", "--db", str(tmp_path / "none.duckdb")])
    _one_line_error(r, "yaml", "table, csv, json")


def test_unknown_export_format(tmp_path, img_dir):
    db = tmp_path / "c.duckdb"
    with Store.open(db) as s:
        ingest_paths(s, [img_dir])
    r = CliRunner().invoke(app, ["export", "memes", "-f", "xlsx", "-o", str(tmp_path / "m.x"),
                                 "--db", str(db)])
    _one_line_error(r, "xlsx", "parquet, jsonl, csv")


def test_sqlite_file_as_db(tmp_path, img_dir):
    lite = tmp_path / "corpus.db"
    con = sqlite3.connect(lite)
    con.execute("CREATE TABLE t (a INTEGER)")
    con.commit()
    con.close()
    before = _sha(lite)
    for args in (["status"], ["sql", "SELECT 1"], ["ingest", str(img_dir)],
                 ["caption", "--backend", "ocr"]):
        r = CliRunner().invoke(app, [*args, "--db", str(lite)])
        _one_line_error(r, "SQLite", "corpus.db")
    assert _sha(lite) == before


def test_directory_as_db(tmp_path):
    r = CliRunner().invoke(app, ["status", "--db", str(tmp_path)])
    _one_line_error(r, "is a directory")
