"""Hostile curation (issue 23, items 2, 5, 6, 16 and the --memes-file part of 4): a real SIGKILL
at several points of `curate`, labels an older version left out, tampered, re-targeted and
truncated edit files, chains of editors, and memes files that are no CSV of meme ids."""

from __future__ import annotations

import hashlib
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml
from helpers_study import clustered_store
from typer.testing import CliRunner

from memeatlas.cli import app
from memeatlas.errors import InputError, MismatchError
from memeatlas.store import Store
from memeatlas.study.curate import apply_file, curate, export_edits, write_edit_file

RUN = "cluster-test"
LABEL_COLS = "cluster, size, keywords, label, representatives, labeler"


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_line_error(r, *needles: str) -> None:
    """Exit 1, and the error is the last line, one line (progress lines may come before it)."""
    assert r.exit_code == 1, r.output
    last = r.output.strip().splitlines()[-1]
    assert last.startswith("Error:") and "Traceback" not in r.output, r.output
    assert r.output.count("Error:") == 1, r.output
    for n in needles:
        assert n in last, (n, r.output)


def _curated(s) -> list[str]:
    return [r[0] for r in s.fetchall("SELECT run_id FROM cluster_runs WHERE kind = 'curated' "
                                     "ORDER BY created_at")]


def _whole(s, run_id: str) -> bool:
    """Every cluster of the run (noise included) has its label row, and the edit log is there."""
    asg = {c for (c,) in s.fetchall("SELECT DISTINCT cluster FROM cluster_assignments WHERE "
                                    "run_id = ?", [run_id])}
    lab = {c for (c,) in s.fetchall("SELECT cluster FROM cluster_labels WHERE run_id = ?",
                                    [run_id])}
    edits = s.scalar("SELECT count(*) FROM curation_edits WHERE run_id = ?", [run_id])
    return bool(asg) and asg == lab and edits > 0


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """A labelled 4-cluster run (BERTopic c-TF-IDF), copied per test."""
    from memeatlas.cluster import LabelConfig, label

    path = tmp_path_factory.mktemp("hostile-curate") / "base.duckdb"
    with Store.open(path) as s:
        clustered_store(s, n_per=12, n_clusters=4)
        label(s, LabelConfig(run_id=RUN))
    return path


@pytest.fixture
def db(labelled, tmp_path):
    p = tmp_path / "c.duckdb"
    shutil.copy(labelled, p)
    return p


# ---- item 2: one transaction; a re-run completes what an older version left out ------------

_CHILD = """
import sys, time
from memeatlas.store import Store
from memeatlas.store import connection as C
point = sys.argv[2]
real_execute, real_insert = C.Store.execute, C.Store.insert_rows
def stop(where):
    print("AT", where, flush=True)
    time.sleep(600)  # killed here
def execute(self, sql, params=None):
    out = real_execute(self, sql, params)
    head = " ".join(sql.split())[:40]
    if (point == "run" and head.startswith("INSERT INTO cluster_runs")) or (
            point == "labels" and head.startswith("INSERT INTO cluster_labels")) or (
            point == "timings" and head.startswith("UPDATE cluster_runs SET timings")):
        stop(point)
    return out
def insert_rows(self, table, columns, rows):
    real_insert(self, table, columns, rows)
    if point == "edits" and table == "curation_edits":
        stop(point)
C.Store.execute, C.Store.insert_rows = execute, insert_rows
from memeatlas.study.curate import curate
with Store.open(sys.argv[1]) as s:
    curate(s, "cluster-test", [{"op": "merge", "clusters": [0, 1]}])
print("DONE", flush=True)
"""


def _until(proc: subprocess.Popen, prefix: str, seconds: float) -> str | None:
    """The first stdout line starting with `prefix` within `seconds` (None: EOF or timeout)."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
            return None
        line = proc.stdout.readline()
        if not line:
            return None
        if line.startswith(prefix):
            return line
    return None


@pytest.mark.slow
@pytest.mark.parametrize("point", ["run", "edits", "labels", "timings"])
def test_sigkill_during_curate_leaves_all_or_nothing(db, point):
    """A real SIGKILL after the run row, the edit log, the first label row or the last statement
    before COMMIT: the store holds no curated run, and the re-run writes one whole run."""
    env = dict(os.environ, MEMEATLAS_NO_PROGRESS="1")
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(db), point], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = _until(proc, "AT", 240)
        assert line, f"child never reached {point}: {proc.stderr.read()[-2000:] if proc.poll() is not None else ''}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    with Store.open(db) as s:
        assert _curated(s) == []
        assert s.scalar("SELECT count(*) FROM curation_edits") == 0
        again = curate(s, RUN, [{"op": "merge", "clusters": [0, 1]}])
        assert not again.skipped and _whole(s, again.run_id)


def test_rerun_completes_labels_an_older_version_left_out(db):
    """memeatlas before this fix committed the run first and its labels after: a kill between
    left a run with no (or some) labels. The same edit now completes them instead of skipping."""
    edits = [{"op": "merge", "clusters": [0, 1]}, {"op": "rename", "cluster": 2, "name": "mine"}]
    with Store.open(db) as s:
        first = curate(s, RUN, edits, editor="ana")
        whole = s.fetchall(f"SELECT {LABEL_COLS} FROM cluster_labels WHERE run_id = ? "
                           "ORDER BY cluster", [first.run_id])
        for keep in ("none", "touched only"):
            if keep == "none":
                s.execute("DELETE FROM cluster_labels WHERE run_id = ?", [first.run_id])
            else:  # the old second transaction (copied rows, names) never ran
                s.execute("DELETE FROM cluster_labels WHERE run_id = ? AND cluster <> 0",
                          [first.run_id])
            assert not _whole(s, first.run_id)
            again = curate(s, RUN, edits, editor="ana")
            assert again.skipped and again.completed and again.run_id == first.run_id
            assert s.fetchall(f"SELECT {LABEL_COLS} FROM cluster_labels WHERE run_id = ? "
                              "ORDER BY cluster", [first.run_id]) == whole
        third = curate(s, RUN, edits, editor="ana")
        assert third.skipped and not third.completed


def test_cli_says_labels_were_completed(db):
    with Store.open(db) as s:
        first = curate(s, RUN, [{"op": "discard", "clusters": [3]}])
        s.execute("DELETE FROM cluster_labels WHERE run_id = ?", [first.run_id])
    r = CliRunner().invoke(app, ["curate", "discard", "--run", RUN, "--clusters", "3",
                                 "--db", str(db)])
    assert r.exit_code == 0, r.output
    assert "labels an interrupted earlier run left out" in r.output
    with Store.open(db) as s:
        assert _whole(s, first.run_id)


# ---- items 5, 6: tampered, re-targeted and truncated edit files ------------------------------

@pytest.fixture
def edit_file(db, labelled, tmp_path):
    """An exported edit file of three edits (merge, rename, discard), and a fresh store (the
    base run only) to apply it to."""
    with Store.open(db) as s:
        c = curate(s, RUN, [{"op": "merge", "clusters": [0, 1]},
                            {"op": "rename", "cluster": 0, "name": "joined"},
                            {"op": "discard", "clusters": [3]}], editor="ana")
        doc = export_edits(s, c.run_id)
    f = tmp_path / "edits.yaml"
    write_edit_file(doc, f)
    fresh = tmp_path / "fresh.duckdb"
    shutil.copy(labelled, fresh)
    return f, fresh


@pytest.mark.parametrize("tamper", [
    lambda d: d["edits"][2].update(clusters=[2]),          # another cluster discarded
    lambda d: d["edits"].pop(1),                             # an edit removed (n_edits mismatch)
    lambda d: d["result"].update(assignments_sha256="0" * 64),
])
def test_tampered_file_stores_nothing(edit_file, tmp_path, tamper):
    f, fresh = edit_file
    doc = yaml.safe_load(f.read_text())
    tamper(doc)
    bad = tmp_path / "tampered.yaml"
    write_edit_file(doc, bad)
    before = _sha(fresh)
    r = CliRunner().invoke(app, ["curate", "apply", str(bad), "--db", str(fresh)])
    _one_line_error(r, "tampered.yaml", "nothing stored")
    assert _sha(fresh) == before


def test_mismatch_kept_only_when_asked_and_named(edit_file, tmp_path):
    f, fresh = edit_file
    doc = yaml.safe_load(f.read_text())
    doc["edits"][2]["clusters"] = [2]
    bad = tmp_path / "tampered.yaml"
    write_edit_file(doc, bad)
    with Store.open(fresh) as s:
        with pytest.raises(MismatchError, match="--keep-mismatch"):
            apply_file(s, bad)
        assert _curated(s) == []
        kept = apply_file(s, bad, keep_mismatch=True)
        assert kept.reproduced is False and _whole(s, kept.run_id)
        name, replay = s.fetchone("SELECT name, params->'replay' FROM cluster_runs WHERE "
                                  "run_id = ?", [kept.run_id])
        assert "does not reproduce tampered.yaml" in name
        assert '"reproduces":false' in replay.replace(" ", "")
    r = CliRunner().invoke(app, ["curate", "apply", str(bad), "--keep-mismatch", "--force",
                                 "--db", str(fresh)])
    assert r.exit_code == 0 and "which does not reproduce the file" in r.output, r.output


def test_file_applied_to_another_run_stores_nothing(edit_file):
    """--run pointing at another run (here one where a meme sits in another cluster)."""
    f, fresh = edit_file
    with Store.open(fresh) as s:
        meme = s.scalar("SELECT min(meme_id) FROM cluster_assignments WHERE run_id = ? AND "
                        "cluster = 2", [RUN])
        other = curate(s, RUN, [{"op": "move", "memes": [meme], "to": 3}]).run_id
    before = _sha(fresh)
    r = CliRunner().invoke(app, ["curate", "apply", str(f), "--run", other, "--db", str(fresh)])
    _one_line_error(r, "nothing stored", other)
    assert _sha(fresh) == before


def test_truncated_file_is_refused_unless_unchecked(edit_file, tmp_path):
    f, fresh = edit_file
    text = f.read_text()
    cut = tmp_path / "cut.yaml"
    cut.write_text(text[:text.index("- op: discard")])  # last edit and result: lost
    before = _sha(fresh)
    r = CliRunner().invoke(app, ["curate", "apply", str(cut), "--db", str(fresh)])
    _one_line_error(r, "cut.yaml", "records no result", "--unchecked")
    assert _sha(fresh) == before
    r = CliRunner().invoke(app, ["curate", "apply", str(cut), "--unchecked", "--db", str(fresh)])
    assert r.exit_code == 0 and "not checked (the file records no result)" in r.output, r.output
    whole = CliRunner().invoke(app, ["curate", "apply", str(f), "--db", str(fresh)])
    assert whole.exit_code == 0 and "reproduced" in whole.output and "yes" in whole.output


@pytest.mark.parametrize("text", [
    "memeatlas_edits: 1\nedits: [{op: merge, clusters: [0, 1]}]\nresult: 7\n",
    "memeatlas_edits: 1\nedits: [{op: merge, clusters: [0, 1]}]\nresult: {assignments_sha256: [1]}\n",
    "memeatlas_edits: 1\neditor: {a: 1}\nedits: [{op: merge, clusters: [0, 1]}]\n",
    "memeatlas_edits: 1\nedits: [{op: merge, clusters: [0, 1], editor: [x]}]\n",
    "memeatlas_edits: 1\nnote: [1, 2]\nedits: [{op: merge, clusters: [0, 1]}]\n",
    "memeatlas_edits: 1\nbase: 7\nedits: [{op: merge, clusters: [0, 1]}]\n",
])
def test_malformed_result_or_editor_is_one_line(db, tmp_path, text):
    f = tmp_path / "odd.yaml"
    f.write_text(text)
    before = _sha(db)
    run = [] if "base:" in text else ["--run", RUN]
    r = CliRunner().invoke(app, ["curate", "apply", str(f), "--unchecked", *run, "--db", str(db)])
    _one_line_error(r, "odd.yaml" if "editor: [x]" not in text else "editor")
    assert _sha(db) == before


# ---- item 16: a chain of sessions keeps each edit's editor -----------------------------------

def test_export_of_a_chain_keeps_per_edit_editors(db, labelled, tmp_path):
    with Store.open(db) as s:
        a = curate(s, RUN, [{"op": "merge", "clusters": [0, 1]}], editor="ana")
        b = curate(s, a.run_id, [{"op": "rename", "cluster": 0, "name": "joined"},
                                 {"op": "discard", "clusters": [3]}], editor="ben")
        doc = export_edits(s, b.run_id)
        assert [e.get("editor") for e in doc["edits"]] == ["ana", "ben", "ben"]
        assert "editor" not in doc and doc["result"]["n_edits"] == 3
        one = export_edits(s, a.run_id)  # one editor: written once, at the top
        assert one["editor"] == "ana" and all("editor" not in e for e in one["edits"])
    f = tmp_path / "chain.yaml"
    write_edit_file(doc, f)
    fresh = tmp_path / "fresh.duckdb"
    shutil.copy(labelled, fresh)
    with Store.open(fresh) as s:
        r = apply_file(s, f)
        assert r.reproduced is True
        assert [e for (e,) in s.fetchall("SELECT editor FROM curation_edits WHERE run_id = ? "
                                         "ORDER BY seq", [r.run_id])] == ["ana", "ben", "ben"]
        assert s.scalar("SELECT labeler FROM cluster_labels WHERE run_id = ? AND cluster = 0",
                        [r.run_id]) == "human:ben"
        # the editor is not part of the edit: the same edits by others are the same run
        assert apply_file(s, f, editor="carl").skipped


# ---- item 4 (curate part) and its class: memes files ------------------------------------------

def _memes_file(tmp_path, kind):
    p = tmp_path / f"sel-{kind}.csv"
    if kind == "not-utf8":
        p.write_bytes(b"meme_id\n\xff\xfe\x00\n")
    elif kind == "huge-field":
        p.write_text("meme_id\n" + "x" * 200_000 + "\n")
    elif kind == "folder":
        p.mkdir()
    elif kind == "fifo":
        os.mkfifo(p)
    elif kind == "control":
        p.write_text("meme_id\nab\x1b[2Jcd\n")
    elif kind == "long-id":
        p.write_text("meme_id\n" + "y" * 5000 + "\n")
    elif kind == "unclosed-quote":
        p.write_text('meme_id\n"abc\n')
    elif kind == "no-column":
        p.write_text("id\nabc\n")
    return p


@pytest.mark.parametrize("kind,needle", [
    ("not-utf8", "not UTF-8"), ("huge-field", "line 2: a cell longer than 131,072"),
    ("folder", "is a folder"), ("fifo", "not a regular file"), ("control", "line 2"),
    ("long-id", "line 2"), ("unclosed-quote", "line 2"), ("no-column", "needs a meme_id column"),
    ("missing", "not found"),
])
def test_memes_file_problems_are_one_line(db, tmp_path, kind, needle):
    f = _memes_file(tmp_path, kind)
    before = _sha(db)
    r = CliRunner().invoke(app, ["curate", "move", "--run", RUN, "--to", "1", "--memes-file",
                                 str(f), "--db", str(db)])
    _one_line_error(r, "memes file", needle)
    assert "\x1b" not in r.output
    assert _sha(db) == before


def test_unknown_meme_in_an_edit_is_shown_escaped(db):
    with Store.open(db) as s:
        with pytest.raises(InputError) as e:
            curate(s, RUN, [{"op": "move", "memes": ["bad\x07" + "z" * 300], "to": 1}])
    assert "\x07" not in str(e.value) and len(str(e.value)) < 300
