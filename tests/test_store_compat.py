"""A store DuckDB 1.x clients can open (issue 15): storage format chosen and recorded,
crash-safe in-place conversion, status, whole-store export, and a real DuckDB 1.x client."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest
from helpers_report import fill_store
from typer.testing import CliRunner

import memeatlas
from memeatlas.cli import app
from memeatlas.store import Store, migrate
from memeatlas.store.connection import STORAGE_VERSION, storage_version

_ROOT = str(Path(memeatlas.__file__).resolve().parents[1])

# The README's SQL examples over the three views, made deterministic with ORDER BY ALL.
QUERIES = {
    "cluster_members": "SELECT run_id, meme_id, cluster, probability, x, y, assigned_by, label, "
                       "keywords, path, source_id, annotator, description, intent, ocr_text, "
                       "template, tone FROM cluster_members ORDER BY ALL",
    "entity_roles": "SELECT meme_id, list(name || ' (' || role || ')' ORDER BY entity_index) AS "
                    "cast_ FROM entity_roles GROUP BY meme_id ORDER BY ALL",
    "villains": "SELECT lower(name) AS who, stands_for, count(*) AS n FROM entity_roles "
                "WHERE role = 'hero' GROUP BY ALL ORDER BY ALL",
    "latest_annotations": "SELECT meme_id, annotator, description, ocr_text, intent, tone, "
                          "entities FROM latest_annotations ORDER BY ALL",
    "members_with_text": "SELECT cm.cluster, cm.label, cm.probability, a.description, cm.path "
                         "FROM cluster_members cm JOIN latest_annotations a USING (meme_id) "
                         "WHERE cm.cluster >= 0 ORDER BY ALL",
    "tone_mix": "SELECT c.run_id, c.cluster, c.label, a.tone, count(*) AS n FROM cluster_members c "
                "JOIN latest_annotations a USING (meme_id) GROUP BY ALL ORDER BY ALL",
}

_RUN_QUERIES = textwrap.dedent("""
    import json, sys, duckdb
    path, queries = sys.argv[1], json.loads(sys.argv[2])
    if path.endswith(".sql"):  # a whole-store export: its script recreates the views
        con = duckdb.connect()
        con.execute(open(path, encoding="utf-8").read())
    else:
        con = duckdb.connect(path, read_only=True)
    out = {"version": duckdb.__version__}
    for name, q in queries.items():
        out[name] = con.execute(q).fetchall()
    print(json.dumps(out, default=str))
""")


def _results(con: duckdb.DuckDBPyConnection) -> dict:
    return json.loads(json.dumps({k: con.execute(q).fetchall() for k, q in QUERIES.items()},
                                 default=str))


def _dump(path: Path) -> dict:
    """Every table's rows (sorted), to compare stores."""
    con = duckdb.connect(str(path), read_only=True)
    tables = [r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "AND table_name <> 'store_format' ORDER BY 1").fetchall()]
    out = {t: sorted(map(str, con.execute(f'SELECT * FROM "{t}"').fetchall())) for t in tables}
    con.close()
    return out


@pytest.fixture
def demo_like(tmp_path):
    """A store like the demo's: memes, annotations with entities, runs, labels, evaluations."""
    db = tmp_path / "demo.duckdb"
    with Store.open(db) as s:
        fill_store(s, tmp_path / "img", xss=False)
        s.execute("UPDATE cluster_labels SET text_annotator = 'test-vlm@1'")
        s.execute("INSERT INTO embedding_spaces (space, kind, model, dim) VALUES ('t', 'text', 'm', 2)")
        s.execute("INSERT INTO embeddings (meme_id, space, model, dim, vector) "
                  "SELECT meme_id, 't', 'm', 2, [0.5, 0.25]::FLOAT[] FROM memes")
    return db


def _latest_format_store(path: Path, tmp_path: Path) -> None:
    """A store as memeatlas wrote it before this change: DuckDB 2.0's own format."""
    con = duckdb.connect(str(path))
    migrate.apply(con, target=5)
    con.close()
    with Store.open(path) as s:  # the remaining migrations, like a user's next command
        fill_store(s, tmp_path / "img_old", xss=False)


def test_new_store_format_is_recorded(demo_like):
    with Store.open(demo_like, read_only=True) as s:
        assert storage_version(s.con) == "v1.0.0+"
        rows = s.fetchall("SELECT storage_version, duckdb_version, event FROM store_format")
    assert rows == [("v1.0.0+", duckdb.__version__, "created")]
    assert STORAGE_VERSION == "v1.1.0"
    r = CliRunner().invoke(app, ["status", "-f", "json", "--db", str(demo_like)])
    assert r.exit_code == 0, r.output
    whats = [d["what"] for d in json.loads(r.stdout) if d["step"] == "store"]
    assert "schema version" in whats
    assert any("v1.0.0+" in w and "DuckDB 1.1 and later" in w for w in whats), whats


def test_existing_file_keeps_its_format_on_write(demo_like, tmp_path):
    """A write with DuckDB 2.0 does not silently move the file to the 2.0 format."""
    img = tmp_path / "more"
    img.mkdir()
    from helpers_ingest import write_image

    write_image(img / "z.png", (1, 2, 3))
    r = CliRunner().invoke(app, ["ingest", str(img), "--db", str(demo_like)])
    assert r.exit_code == 0, r.output
    with Store.open(demo_like, read_only=True) as s:
        assert storage_version(s.con) == "v1.0.0+"


def test_convert_in_place(tmp_path):
    db = tmp_path / "old.duckdb"
    _latest_format_store(db, tmp_path)
    with Store.open(db, read_only=True) as s:
        assert storage_version(s.con) == "v2.0.0+"
        before = _results(s.con)
    rows_before = _dump(db)
    r = CliRunner().invoke(app, ["status", "--db", str(db)])
    assert "v2.0.0+" in r.stdout and "DuckDB 2.0 and later" in r.stdout
    r = CliRunner().invoke(app, ["migrate", "--storage-version", "v1.1.0", "--db", str(db)])
    assert r.exit_code == 0, r.output
    assert "v2.0.0+ -> v1.0.0+" in r.output and "rows checked" in r.output
    assert not (tmp_path / "old.duckdb.converting").exists()
    assert _dump(db) == rows_before
    with Store.open(db) as s:
        assert storage_version(s.con) == "v1.0.0+"
        assert _results(s.con) == before
        events = s.fetchall("SELECT event, storage_version FROM store_format ORDER BY recorded_at")
        assert events[-1] == ("converted", "v1.0.0+")
        # keys survive the copy
        with pytest.raises(duckdb.ConstraintException):
            s.execute("INSERT INTO memes SELECT * FROM memes LIMIT 1")
    r = CliRunner().invoke(app, ["migrate", "--storage-version", "v9", "--db", str(db)])
    assert r.exit_code == 1 and "v1.1.0" in r.output


@pytest.mark.parametrize("stage", ["copy", "swap"])
def test_conversion_killed_midway_leaves_original_intact(tmp_path, stage):
    db = tmp_path / "old.duckdb"
    _latest_format_store(db, tmp_path)
    sha = hashlib.sha256(db.read_bytes()).hexdigest()
    rows_before = _dump(db)
    # The child stops at the named stage (after the copy was made, or right before the atomic
    # swap) and is SIGKILLed there: the worst moments for the original.
    hook = {"copy": "convert._verify", "swap": "convert.os.replace"}[stage]
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from memeatlas.store import convert
        def stop(*a, **k):
            print("stopped", flush=True)
            time.sleep(120)
        {"convert._verify = stop" if stage == "copy" else "convert.os.replace = stop"}
        convert.migrate_store({str(db)!r}, storage_version="v1.1.0")
    """)], stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": _ROOT})
    try:
        assert child.stdout.readline().strip() == "stopped", hook
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    assert hashlib.sha256(db.read_bytes()).hexdigest() == sha
    assert _dump(db) == rows_before
    # the next run cleans up the stray copy and converts
    r = CliRunner().invoke(app, ["migrate", "--storage-version", "v1.1.0", "--db", str(db)])
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "old.duckdb.converting").exists()
    assert _dump(db) == rows_before


def test_export_all_round_trip(demo_like, tmp_path, monkeypatch):
    out = tmp_path / "full"
    r = CliRunner().invoke(app, ["export", "--all", "-o", str(out), "--db", str(demo_like)])
    assert r.exit_code == 0, r.output
    with Store.open(demo_like, read_only=True) as s:
        want = _results(s.con)
        names = {r[0] for r in s.fetchall(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'")}
    assert {p.stem for p in out.glob("*.parquet")} == names
    monkeypatch.chdir(out)
    con = duckdb.connect()
    con.execute((out / "load.sql").read_text())
    assert _results(con) == want
    # a second export into the same folder needs --force
    r = CliRunner().invoke(app, ["export", "--all", "-o", str(out), "--db", str(demo_like)])
    assert r.exit_code == 1 and "--force" in r.output


def client_dir(version_spec: str) -> Path:
    """Where a DuckDB client wheel is unpacked: ~/.cache/memeatlas/duckdb-clients/<name>
    (scripts/setup.sh --dev fills the same folders, so CI needs no network here)."""
    name = version_spec.replace("<", "-lt").replace("==", "-")
    return Path.home() / ".cache" / "memeatlas" / "duckdb-clients" / name


def _duckdb1(version_spec: str) -> Path:
    """`pip install duckdb<2` into a throw-away target, cached under ~/.cache/memeatlas."""
    target = client_dir(version_spec)
    if not (target / "duckdb").exists():
        r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                            "--disable-pip-version-check", "--retries", "0", "--timeout", "20",
                            "--target", str(target), version_spec],
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0 or not (target / "duckdb").exists():
            pytest.skip(f"cannot install {version_spec}: {r.stderr.strip()[-300:]}")
    return target


def _run_old_client(target: Path, db: Path, queries: dict, cwd: Path | None = None) -> dict:
    r = subprocess.run([sys.executable, "-c", _RUN_QUERIES, str(db), json.dumps(queries)],
                       capture_output=True, text=True, timeout=120, cwd=cwd,
                       env={**os.environ, "PYTHONPATH": str(target)})
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["duckdb<2", "duckdb==1.1.3"])
def test_duckdb1_client_reads_the_store(demo_like, tmp_path, spec):
    """A real DuckDB 1.x opens the store and gets the same answers as DuckDB 2.0."""
    target = _duckdb1(spec)
    with Store.open(demo_like, read_only=True) as s:
        want = _results(s.con)
        n_memes = s.scalar("SELECT count(*) FROM memes")
    got = _run_old_client(target, demo_like, QUERIES)
    assert got.pop("version").startswith("1.")
    assert got == want
    assert all(want[k] for k in ("cluster_members", "entity_roles", "latest_annotations"))
    # a store converted from the 2.0 format reads too
    old = tmp_path / "old.duckdb"
    _latest_format_store(old, tmp_path)
    r = CliRunner().invoke(app, ["migrate", "--storage-version", "v1.1.0", "--db", str(old)])
    assert r.exit_code == 0, r.output
    got = _run_old_client(target, old, {"n": "SELECT count(*) FROM memes"})
    assert got["n"] == [[n_memes]]
    # and the whole-store export's load.sql works in the old client
    out = tmp_path / "export"
    r = CliRunner().invoke(app, ["export", "--all", "-o", str(out), "--db", str(demo_like)])
    assert r.exit_code == 0, r.output
    got = _run_old_client(target, out / "load.sql", QUERIES, cwd=out)
    got.pop("version")
    assert got == want


def test_entity_roles_rewrite_gives_the_same_rows(db_path):
    """The store_format migration replaces WITH ORDINALITY (DuckDB >= 1.4 only); the rows must not change."""
    ents = [None, "[]", json.dumps([{"name": "a", "role": "hero", "stands_for": "x"},
                                   {"name": "b", "role": "villain"}]),
            json.dumps([{"name": "ü", "role": None, "stands_for": None, "extra": 1}])]
    with Store.open(db_path, migrate_to=5) as s:
        for i, e in enumerate(ents):
            s.execute("INSERT INTO annotations (meme_id, annotator, prompt_hash, schema_hash, "
                      "entities) VALUES (?, 'x', '', '', ?)", [f"m{i}", e])
        q = "SELECT * FROM entity_roles ORDER BY ALL"
        old = s.fetchall(q)
        old_types = s.fetchall("SELECT column_name, data_type FROM information_schema.columns "
                               "WHERE table_name = 'entity_roles' ORDER BY ordinal_position")
    with Store.open(db_path) as s:
        assert s.fetchall(q) == old and len(old) == 3
        assert s.fetchall("SELECT column_name, data_type FROM information_schema.columns "
                          "WHERE table_name = 'entity_roles' ORDER BY ordinal_position") == old_types
