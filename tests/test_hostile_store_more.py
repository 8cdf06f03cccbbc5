"""Hostile use of the store and the steps over it, third pass (issue 23, items 4, 8, 10-15, 18):
a --db that is not a DuckDB file, Ctrl-C and runaway queries in `sql`, control characters in
stored text, timestamps replaced by another key, a space replaced under its runs, export
targets that exist or are killed half-way, near-duplicates over a non-image space.

Every failing command must give a one-line `Error:` (exit 1, or 130 for Ctrl-C) and leave the
store byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import duckdb
import pytest
from helpers_study import clustered_store
from typer.testing import CliRunner

from memeatlas.cli import app
from memeatlas.errors import InputError, MismatchError
from memeatlas.store import Store

ROOT = Path(__file__).resolve().parents[1]
HEAVY = "SELECT sum(a.range * b.range) FROM range(100000000) a, range(100000000) b"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_line_error(r, *needles: str, code: int = 1) -> None:
    assert r.exit_code == code, r.output
    assert r.output.startswith("Error:") and "Traceback" not in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1, r.output
    for n in needles:
        assert n in r.output, (n, r.output)


@pytest.fixture
def study_db(tmp_path):
    """A store of 60 memes (no images) with annotations, a space and a cluster run on it."""
    db = tmp_path / "corpus.duckdb"
    with Store.open(db) as s:
        clustered_store(s)
    return db


# --- item 4: a --db that is not a DuckDB database ------------------------------------------

def _not_duckdb_files(folder: Path) -> dict[str, Path]:
    files = {"csv": folder / "some.csv", "json": folder / "some.json",
             "binary": folder / "noise.duckdb", "short": folder / "short.duckdb",
             "sqlite": folder / "lite.db", "parquet": folder / "t.parquet"}
    files["csv"].write_text("a,b\n1,2\n")
    files["json"].write_text('[{"a": 1}]\n')
    files["binary"].write_bytes(bytes(range(7, 256)) * 4)
    files["short"].write_bytes(b"DUCK")
    con = sqlite3.connect(files["sqlite"])
    con.execute("CREATE TABLE t (a INTEGER)")
    con.commit()
    con.close()
    duckdb.sql(f"COPY (SELECT 1 AS a) TO '{files['parquet']}' (FORMAT parquet)")
    return files


def _db_commands() -> list[tuple[str, ...]]:
    """Every command (path of names) that takes --db."""
    import typer.main

    out = []

    def walk(cmd, path):
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, (*path, name))
        if not hasattr(cmd, "commands") and any("--db" in p.opts for p in cmd.params):
            out.append(path)

    walk(typer.main.get_command(app), ())
    return out


def _dummy_args(path: tuple[str, ...], value: str) -> list[str]:
    """The command with its required arguments and options all given `value`."""
    import typer.main

    cmd = typer.main.get_command(app)
    for name in path:
        cmd = cmd.commands[name]
    args = list(path)
    for p in cmd.params:
        if p.required:
            args += [value] if "Argument" in type(p).__name__ else [p.opts[0], value]
    return args


def test_store_commands_refuse_a_csv_as_db(tmp_path):
    bad = _not_duckdb_files(tmp_path)["csv"]
    for args in (["status"], ["sql", "SELECT 1"], ["migrate"], ["export", "memes"],
                 ["ingest", str(tmp_path)], ["timestamps", "--from-meta", "a"]):
        r = CliRunner().invoke(app, [*args, "--db", str(bad)])
        _one_line_error(r, "some.csv is a text file (CSV, JSON, ...), not a DuckDB database")
    assert bad.read_text() == "a,b\n1,2\n"


@pytest.mark.slow  # ~25 s: every command once
@pytest.mark.parametrize("kind", ["csv", "binary"])
def test_every_db_command_refuses_a_file_that_is_not_duckdb(tmp_path, kind, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dummy").mkdir()
    bad = _not_duckdb_files(tmp_path)[kind]
    before = _sha(bad)
    commands = _db_commands()
    assert len(commands) >= 30
    tried = refused = 0
    failures = []
    for path in commands:
        for value in ("1", str(tmp_path / "dummy")):  # a number, else a path
            r = CliRunner().invoke(app, [*_dummy_args(path, value), "--db", str(bad)])
            if r.exit_code != 2:  # 2: a usage error about the dummy value, before any open
                break
        tried += 1
        if r.exit_code == 2:
            continue
        ok = (r.exit_code == 1 and r.output.startswith("Error:") and "Traceback" not in r.output
              and len(r.output.strip().splitlines()) == 1)
        named = ok and "not a DuckDB database file" in r.output
        refused += named
        if not named:
            print("refused before opening the store:", path, r.output.strip()[:120])
        if not ok:
            failures.append((path, r.exit_code, r.output[-300:]))
    print(f"--db {kind}: {tried} commands tried, {refused} refused naming the file type")
    assert not failures, failures
    assert refused >= 25
    assert _sha(bad) == before


@pytest.mark.parametrize("kind", ["csv", "json", "binary", "short", "parquet", "sqlite"])
def test_store_open_refuses_non_duckdb_in_every_mode(tmp_path, kind):
    bad = _not_duckdb_files(tmp_path)[kind]
    before = _sha(bad)
    for mode in ({}, {"read_only": True}, {"sandbox": True}, {"create": False}):
        with pytest.raises(InputError, match="DuckDB"):
            Store.open(bad, **mode)
    assert _sha(bad) == before


def test_new_and_empty_paths_still_create(tmp_path):
    for db in (tmp_path / "new.csv", tmp_path / "empty.duckdb"):
        if db.name.startswith("empty"):
            db.touch()
        with Store.open(db) as s:
            assert s.schema_version > 0
        with Store.open(db, read_only=True) as s:  # a DuckDB file now, whatever its name
            assert s.scalar("SELECT count(*) FROM memes") == 0


# --- item 4 (Ctrl-C) and item 18: interrupting, timing out and capping `sql` ----------------

def _foreground_signals() -> None:
    """In the child before exec: SIGINT and SIGQUIT back to their defaults."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


def _signal_state(pid) -> str:
    """The Sig* lines of /proc/PID/status (blocked, ignored, pending, caught masks)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError as exc:
        return f"/proc/{pid}/status: {exc}"
    return "\n".join(ln for ln in lines if ln.startswith(("Sig", "ShdPnd")))


CTRL_C_CHILD = """
import faulthandler, sys
faulthandler.dump_traceback_later(20, exit=False)
from memeatlas import cli
print("ready", file=sys.stderr, flush=True)
sys.argv = ["memeatlas", "sql", sys.argv[1], "--db", sys.argv[2]]
cli.main()
"""


def test_ctrl_c_during_sql_is_one_line_exit_130(study_db):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # As a terminal starts a foreground job: SIGINT (and SIGQUIT) at their defaults. In the
    # full suite an earlier test's library had left both ignored in this process at the OS
    # level (/proc SigIgn 0x…1001006, the pattern of C's system()); a child inherits ignored
    # signals, and a Python started with SIGINT ignored, like a background job, does not
    # react to Ctrl-C: the hang this test showed only in the full suite.
    p = subprocess.Popen([sys.executable, "-c", CTRL_C_CHILD, HEAVY, str(study_db)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                         cwd=study_db.parent, preexec_fn=_foreground_signals)
    assert p.stderr.readline().strip() == b"ready"  # imports done: the query starts now
    time.sleep(1.5)
    p.send_signal(signal.SIGINT)
    try:
        out, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        sig = _signal_state(p.pid) + "\nparent:\n" + _signal_state("self")
        p.kill()
        out, err = p.communicate()
        text = "child hung after SIGINT:\n" + sig + "\n" + err.decode()[-6000:]
        # An xfail's message is not printed by pytest: kept where a developer can read it.
        (Path(tempfile.gettempdir()) / "memeatlas-ctrl-c-diagnosis.txt").write_text(text)
        raise AssertionError(text) from None
    assert p.returncode == 130, err.decode()
    lines = err.decode().strip().splitlines()
    assert lines == ["Error: interrupted (Ctrl-C); what was committed before stays stored"], lines
    assert out == b""


def test_sql_timeout_stops_a_runaway_query(study_db):
    before = _sha(study_db)
    t = time.perf_counter()
    r = CliRunner().invoke(app, ["sql", HEAVY, "--timeout", "0.5", "--db", str(study_db)])
    _one_line_error(r, "stopped after 0.5 s", "--timeout")
    assert time.perf_counter() - t < 10
    assert _sha(study_db) == before
    for bad in ("-1", "nan", "inf"):
        r = CliRunner().invoke(app, ["sql", "SELECT 1", "--timeout", bad, "--db", str(study_db)])
        _one_line_error(r, "--timeout")


def test_sql_interrupt_without_timer_is_keyboardinterrupt(study_db):
    from memeatlas.store.query import run_readonly

    with Store.open(study_db, sandbox=True) as s:
        threading.Timer(0.3, s.con.interrupt).start()
        with pytest.raises(KeyboardInterrupt):
            run_readonly(s, HEAVY, timeout=None)


def test_sql_memory_limit(study_db):
    before = _sha(study_db)
    q = "SELECT list(range) FROM range(50000000) GROUP BY range % 2"
    r = CliRunner().invoke(app, ["sql", q, "--memory-limit", "64MB", "--db", str(study_db)])
    _one_line_error(r, "--memory-limit")
    for bad in ("1MB", "lots", "2 parsecs", "-5GB", ""):
        r = CliRunner().invoke(app, ["sql", "SELECT 1", "--memory-limit", bad, "--db",
                                     str(study_db)])
        _one_line_error(r, "--memory-limit")
    r = CliRunner().invoke(app, ["sql", "SELECT current_setting('memory_limit') AS m",
                                 "--memory-limit", "512MB", "-f", "json", "--db", str(study_db)])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)[0]["m"] == "488.2 MiB"
    assert not list(study_db.parent.glob("*.tmp")), "nothing may spill to disk"
    assert _sha(study_db) == before


def test_sandbox_hides_paths_outside_the_corpus(study_db):
    r = CliRunner().invoke(app, ["sql", "SELECT name, value FROM duckdb_settings()", "-f", "json",
                                 "--db", str(study_db)])
    assert r.exit_code == 0, r.output
    settings = {d["name"]: d["value"] for d in json.loads(r.stdout)}
    home = str(Path.home())
    leaks = {k: v for k, v in settings.items()
             if v and (home in str(v) or ".duckdb/" in str(v) or "/tmp/" in str(v))
             and k != "allowed_paths"}  # the store's own files
    assert not leaks, leaks
    assert settings["secret_directory"] == "" and settings["temp_directory"] == ""
    assert settings["memory_limit"] == "1.8 GiB"  # the 2GB default
    r = CliRunner().invoke(app, ["sql", "SET memory_limit = '100GB'", "--db", str(study_db)])
    assert r.exit_code == 1


# --- item 8: control characters in stored text ------------------------------------------------

EVIL = "evil\x1b[31mred\x07bell\x9b2J\u202eesrever\x00nul\x7f"


def test_sql_output_escapes_control_characters(study_db):
    with Store.open(study_db) as s:
        s.execute("INSERT INTO cluster_labels (run_id, cluster, label) VALUES "
                  "('cluster-test', 0, ?)", [EVIL])
    before = _sha(study_db)
    q = "SELECT label FROM cluster_labels"
    raw = set(EVIL) - set("evilredbsnu[312J") - {"m"}
    r = CliRunner().invoke(app, ["sql", q, "--db", str(study_db)])
    assert r.exit_code == 0, r.output
    assert not raw & set(r.stdout), [hex(ord(c)) for c in raw & set(r.stdout)]
    assert "\\x1b[31mred\\x07bell\\x9b2J\\u202eesrever\\x00nul\\x7f" in r.stdout
    # also as a column name
    r = CliRunner().invoke(app, ["sql", "SELECT 1 AS \"a\x1bb\"", "--db", str(study_db)])
    assert "\x1b" not in r.stdout and "a\\x1bb" in r.stdout
    r = CliRunner().invoke(app, ["sql", q, "-f", "json", "--db", str(study_db)])
    assert r.exit_code == 0 and not raw & set(r.stdout)
    assert json.loads(r.stdout)[0]["label"] == EVIL  # faithful once parsed
    r = CliRunner().invoke(app, ["sql", q, "-f", "csv", "--db", str(study_db)])
    assert r.exit_code == 0 and r.stdout.splitlines()[1] == EVIL  # a pipe gets the data as is
    assert _sha(study_db) == before


def test_csv_on_a_terminal_is_escaped():
    import io

    from memeatlas.output import write_rows

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    write_rows(["x"], [(EVIL,)], "csv", out=out)
    assert "\x1b" not in out.getvalue() and "\\x1b" in out.getvalue()


# --- item 10: timestamps from another key replace earlier ones only with --force -------------

def _with_keys(db: Path) -> None:
    with Store.open(db) as s:
        s.execute("UPDATE memes SET meta = json_merge_patch(meta, json_object('when', "
                  "'2024-01-' || lpad((1 + (meta ->> 'n')::INT % 28)::VARCHAR, 2, '0')))")
        s.execute("UPDATE memes SET meta = json_merge_patch(meta, json_object('epoch', "
                  "(1700000000 + (meta ->> 'n')::INT * 86400)::VARCHAR)) "
                  "WHERE (meta ->> 'n')::INT < 15")


def test_timestamps_from_another_key_need_force(study_db):
    _with_keys(study_db)
    run = CliRunner()
    r = run.invoke(app, ["timestamps", "--from-meta", "when", "--db", str(study_db)])
    assert r.exit_code == 0, r.output
    before = _sha(study_db)
    r = run.invoke(app, ["timestamps", "--from-meta", "epoch", "--time-format", "epoch",
                         "--db", str(study_db)])
    _one_line_error(r, "15 meme(s) already have another timestamp", "15 from meta:when",
                    "--force", "/tmp/m00")
    assert _sha(study_db) == before
    # the same key again is no replacement
    r = run.invoke(app, ["timestamps", "--from-meta", "when", "--db", str(study_db)])
    assert r.exit_code == 0 and "of them unchanged 60" in " ".join(r.output.split()), r.output
    r = run.invoke(app, ["timestamps", "--from-meta", "epoch", "--time-format", "epoch",
                         "--force", "--db", str(study_db)])
    assert r.exit_code == 0, r.output
    words = " ".join(r.output.split())
    assert "replaced (--force) 15 from meta:when" in words
    assert "sources now mixed meta:when 45, meta:epoch 15" in words
    assert "no value (kept any earlier) 45" in words
    assert "(meta:when, iso) -> 2023-11-" in r.output and "  replaced /tmp/m00" in r.output
    # another format of the same key is a replacement too
    with Store.open(study_db) as s:
        from memeatlas.study.times import set_timestamps

        with pytest.raises(InputError, match="60 meme"):
            set_timestamps(s, "when", time_format="%Y-%m-%d")
        assert s.scalar("SELECT count(*) FROM meme_times WHERE source = 'meta:epoch'") == 15


# --- item 11: a space others use is not replaced silently -------------------------------------

def test_embed_force_with_another_model_into_a_used_space(study_db, tmp_path):
    with Store.open(study_db) as s:
        s.execute("INSERT INTO classify_models (model_id, task, head, spaces, classes, params, "
                  "seed, n_train, fingerprint, format, model, created_at) VALUES ('clf-1', 't', "
                  "'knn', '[\"text:synthetic\"]', '[]', '{}', 0, 0, 'fp', 'x', '', now())")
    before = _sha(study_db)
    run = CliRunner()
    base = ["embed", "text", "--fields", "description", "--model", "tfidf-lsa:8",
            "--space", "text:synthetic", "--db", str(study_db)]
    r = run.invoke(app, base)  # no --force: the old refusal
    _one_line_error(r, "refusing to add vectors from model tfidf-lsa:8")
    r = run.invoke(app, [*base, "--force"])
    _one_line_error(r, "1 cluster run (cluster-test) and 1 classifier (clf-1)",
                    "--space text:synthetic:tfidf-lsa", "--replace-space")
    assert _sha(study_db) == before
    r = run.invoke(app, [*base[:-4], "--space", "text:synthetic:tfidf-lsa", "--db",
                         str(study_db)])
    assert r.exit_code == 0, r.output
    r = run.invoke(app, [*base, "--replace-space"])
    assert r.exit_code == 0, r.output
    with Store.open(study_db, read_only=True) as s:
        assert s.scalar("SELECT model FROM embedding_spaces WHERE space = 'text:synthetic'") \
            == "tfidf-lsa:8"


def test_prepare_space_refuses_for_image_users(study_db):
    from memeatlas.corpus.spaces import prepare_space, space_users

    with Store.open(study_db) as s:
        s.execute("INSERT INTO embedding_spaces (space, kind, model, dim) VALUES "
                  "('image:m', 'image', 'm', 4)")
        s.execute("INSERT INTO dup_runs (run_id, params) VALUES ('dup-1', "
                  "'{\"space\": \"image:m\"}')")
        s.execute("INSERT INTO template_runs (run_id, gallery, gallery_hash, space, model, "
                  "threshold) VALUES ('tpl-1', 'g', 'h', 'image:m', 'm', 0.5)")
        assert space_users(s, "image:m") == {"near-duplicate run": ["dup-1"],
                                             "template run": ["tpl-1"]}
        kw = dict(space="image:m", kind="image", model="other", dim=8, recipe={}, params={},
                  software={}, force=True)
        with pytest.raises(MismatchError, match="dup-1.*tpl-1"):
            prepare_space(s, **kw)
        assert s.scalar("SELECT model FROM embedding_spaces WHERE space = 'image:m'") == "m"
        # same model, other inputs (recipe): a replacement too
        with pytest.raises(MismatchError, match="--replace-space"):
            prepare_space(s, **{**kw, "model": "m", "dim": 4, "recipe": {"x": 1}})
        assert prepare_space(s, **kw, replace=True)


# --- items 12 and 13: export targets ----------------------------------------------------------

@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "csv"])
def test_export_over_an_existing_file_needs_force(study_db, tmp_path, fmt):
    out = tmp_path / f"memes.{fmt}"
    out.write_text("mine\n")
    before = (_sha(study_db), _sha(out))
    run = CliRunner()
    r = run.invoke(app, ["export", "memes", "-f", fmt, "-o", str(out), "--db", str(study_db)])
    _one_line_error(r, "exists", "--force")
    assert (_sha(study_db), _sha(out)) == before
    r = run.invoke(app, ["export", "memes", "-f", fmt, "-o", str(out), "--force", "--db",
                         str(study_db)])
    assert r.exit_code == 0, r.output
    assert out.read_text(errors="replace") != "mine\n"
    assert [p.name for p in tmp_path.iterdir() if "incomplete" in p.name] == []


def test_export_all_same_rule(study_db, tmp_path):
    folder = tmp_path / "dump"
    folder.mkdir()
    (folder / "mine.txt").write_text("keep\n")
    r = CliRunner().invoke(app, ["export", "--all", "-o", str(folder), "--db", str(study_db)])
    _one_line_error(r, "not empty", "--force")
    r = CliRunner().invoke(app, ["export", "--all", "-o", str(folder), "--force", "--db",
                                 str(study_db)])
    assert r.exit_code == 0, r.output
    assert (folder / "mine.txt").read_text() == "keep\n" and (folder / "load.sql").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    r = CliRunner().invoke(app, ["export", "--all", "-o", str(empty), "--db", str(study_db)])
    assert r.exit_code == 0 and (empty / "memes.parquet").exists()
    assert [p.name for p in tmp_path.iterdir() if "incomplete" in p.name] == []


def test_export_all_failing_half_way_leaves_nothing(study_db, tmp_path, monkeypatch):
    from memeatlas.store import query

    real, calls = query._copy, []

    def failing(store, name, target, options):
        calls.append(name)
        if len(calls) == 5:
            raise InputError(f"cannot write {target}: disk full")
        real(store, name, target, options)

    monkeypatch.setattr(query, "_copy", failing)
    r = CliRunner().invoke(app, ["export", "--all", "-o", str(tmp_path / "dump"), "--db",
                                 str(study_db)])
    _one_line_error(r, "disk full")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.duckdb"]


KILLED_EXPORT = """
import sys, time
from memeatlas.store import Store, query
real, n = query._copy, []
def slow(store, name, target, options):
    n.append(name)
    if len(n) == 4:
        print("half", flush=True)
        time.sleep(60)
    real(store, name, target, options)
query._copy = slow
with Store.open(sys.argv[1], read_only=True) as s:
    query.export_all(s, sys.argv[2])
"""


def test_export_all_killed_leaves_only_a_marked_folder(study_db, tmp_path):
    folder = tmp_path / "dump"
    p = subprocess.Popen([sys.executable, "-c", KILLED_EXPORT, str(study_db), str(folder)],
                         stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.stdout.readline().strip() == b"half"
    p.kill()
    p.wait(timeout=10)
    assert not folder.exists()
    [partial] = [x for x in tmp_path.iterdir() if x.name != "corpus.duckdb"]
    assert partial.name.startswith(".dump.incomplete-") and len(list(partial.iterdir())) == 3


# --- items 14 and 15: near-duplicates ---------------------------------------------------------

def test_near_dups_refuses_non_image_spaces_and_counts_memes_without_images(study_db):
    before = _sha(study_db)
    run = CliRunner()
    r = run.invoke(app, ["images", "near-dups", "--space", "text:synthetic", "--db",
                         str(study_db)])
    _one_line_error(r, "'text:synthetic' is a text space", "no image space yet", "--space none")
    r = run.invoke(app, ["images", "near-dups", "--space", "image:typo", "--db", str(study_db)])
    _one_line_error(r, "no image space 'image:typo'")
    assert _sha(study_db) == before
    r = run.invoke(app, ["images", "near-dups", "--json", "--db", str(study_db)])
    assert r.exit_code == 0, r.output
    assert "compared  0 memes (0 new)" in r.output and "left out  60 (60 no image)" in r.output
    assert json.loads(r.stdout)["left_out"] == {"no image": 60}
