"""The `memeatlas evaluate` commands end to end: sample → sheet → two coders → import → agreement → quality."""

from __future__ import annotations

import csv
import io
import json
import sys
import types

import pytest
from helpers_evaluate import (
    add_memes,
    add_run,
    fill_sheet,
    planted,
    rng,
    sheet_pairs,
    simulate_coder,
)
from typer.testing import CliRunner

from memeatlas.cli import app
from memeatlas.store import Store


@pytest.fixture
def db(db_path):
    s = Store.open(db_path)
    groups = planted(5, 10)
    m = add_memes(s, len(groups), meta=[{"theme": f"t{g}"} for g in groups])
    truth = dict(zip(m, groups, strict=True))
    for k, mcs in enumerate((5, 10)):
        add_run(s, f"text-{mcs}", truth, space="text:description", params={"hdbscan": {"min_cluster_size": mcs}})
        shuffled = rng(k).permutation(groups).tolist()
        add_run(s, f"image-{mcs}", dict(zip(m, shuffled, strict=True)), space="image:clip",
                params={"hdbscan": {"min_cluster_size": mcs}})
    s.close()
    return db_path, truth


def _run(args, ok=True):
    r = CliRunner().invoke(app, args)
    if ok:
        assert r.exit_code == 0, (r.output, r.exception)
    return r


def test_worked_study(db, tmp_path):
    db_path, truth = db
    sheet = tmp_path / "sheet.csv"
    r = _run(["evaluate", "pairs", "--runs", "text-5,image-5", "--n", "120", "--pair-set", "study",
              "-o", str(sheet), "--db", str(db_path)])
    assert "stratum" in r.stdout and "TT" in r.stdout and "pair set study" in r.stderr
    pairs = sheet_pairs(sheet)
    for k, coder in enumerate(("alice", "bob")):
        vals = simulate_coder(truth, pairs, rng=rng(10 + k))
        fill_sheet(sheet, tmp_path / f"{coder}.csv", {"connotative": vals, "denotative": vals})
        r = _run(["evaluate", "import-ratings", str(tmp_path / f"{coder}.csv"), "--pair-set", "study",
                  "--coder", coder, "--db", str(db_path)])
        assert "native 1..3 scale" in r.stderr and "ratings" in r.stderr
    r = _run(["evaluate", "agreement", "--pair-set", "study", "--format", "json", "--db", str(db_path)])
    rows = json.loads(r.stdout)
    assert {x["dimension"] for x in rows} == {"connotative", "denotative"}
    assert all(x["coders"] == 2 and x["pairs"] == 120 and x["alpha"] > 0.5 for x in rows)
    r = _run(["evaluate", "quality", "--runs", "text-5,image-5", "--pair-set", "study", "--dimension",
              "connotative", "--bootstrap", "300", "--db", str(db_path)])
    lines = r.stdout.splitlines()
    assert lines[0].split()[:6] == ["metric", "run", "space", "vs", "dimension", "value"]
    assert "text:description" in r.stdout and "image:clip" in r.stdout
    assert "note: noise: memes assigned from noise (soft membership at least" in r.stderr
    r = _run(["evaluate", "quality", "--runs", "text-5,image-5", "--pair-set", "study", "--bootstrap", "300",
              "--format", "csv", "--db", str(db_path)])
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    delta = [x for x in rows if x["metric"] == "delta_cq" and x["dimension"] == "connotative"][0]
    assert delta["run"] == "text-5" and delta["vs"] == "image-5" and float(delta["ci_low"]) > 0


def test_sweep_labels_and_png(db, tmp_path):
    db_path, truth = db
    _run(["evaluate", "pairs", "--runs", "text-*,image-*", "--n", "150", "--pair-set", "sw", "-o",
          str(tmp_path / "s.csv"), "--db", str(db_path)])
    vals = simulate_coder(truth, sheet_pairs(tmp_path / "s.csv"), rng=rng(3))
    fill_sheet(tmp_path / "s.csv", tmp_path / "f.csv", {"connotative": vals, "denotative": vals})
    _run(["evaluate", "import-ratings", str(tmp_path / "f.csv"), "--pair-set", "sw", "--coder", "c",
          "--db", str(db_path)])
    png = tmp_path / "sweep.png"
    r = _run(["evaluate", "sweep", "--runs", "text-*,image-*", "--pair-set", "sw", "--bootstrap", "100",
              "-o", str(png), "--format", "json", "--db", str(db_path)])
    rows = json.loads(r.stdout)
    assert len(rows) == 8 and {x["param"] for x in rows} == {5, 10}
    assert {x["series"] for x in rows} == {"text:description", "image:clip"}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = _run(["evaluate", "labels", "--runs", "text-5,image-5", "--truth", "theme", "--db", str(db_path)])
    assert "ari" in r.stdout.splitlines()[0] and "text-5" in r.stdout


def test_errors_are_one_line(db, tmp_path):
    db_path, _ = db
    r = _run(["evaluate", "quality", "--runs", "nope", "--pair-set", "x", "--db", str(db_path)], ok=False)
    assert r.exit_code == 1 and "Error:" in r.output and "not found" in r.output
    _run(["evaluate", "pairs", "--runs", "text-5", "--n", "5", "--pair-set", "p", "--db", str(db_path)])
    bad = tmp_path / "bad.csv"
    bad.write_text("pair_id,coder,dimension,rating\nzzz,a,d,9\n")
    r = _run(["evaluate", "import-ratings", str(bad), "--pair-set", "p", "--db", str(db_path)], ok=False)
    assert r.exit_code == 1 and "line 2" in r.output


def test_rate_calls_report_builder(db, tmp_path, monkeypatch):
    db_path, _ = db
    _run(["evaluate", "pairs", "--runs", "text-5", "--n", "5", "--pair-set", "p", "--db", str(db_path)])
    calls = []

    def build_rate_page(store, pair_set, out_path, dimensions):
        calls.append((pair_set, str(out_path), dimensions))
        out_path.write_text("<html></html>")
        return out_path

    fake = types.ModuleType("memeatlas.report.rate_page")
    fake.build_rate_page = build_rate_page
    monkeypatch.setitem(sys.modules, "memeatlas.report.rate_page", fake)
    out = tmp_path / "rate.html"
    r = _run(["evaluate", "rate", "--pair-set", "p", "-o", str(out), "--db", str(db_path)])
    assert calls == [("p", str(out), None)] and out.exists()
    assert "import-ratings" in r.stderr
    _run(["evaluate", "rate", "--pair-set", "p", "-o", str(out), "--dimensions", "humour", "--db", str(db_path)])
    assert calls[-1][2] == ["humour"]


def test_rate_with_real_page_builder(db, tmp_path):
    """The report engineer's page: its CSV layout (long) imports back."""
    pytest.importorskip("memeatlas.report.rate_page")
    db_path, _ = db
    _run(["evaluate", "pairs", "--runs", "text-5", "--n", "6", "--pair-set", "p", "--db", str(db_path)])
    out = tmp_path / "rate.html"
    _run(["evaluate", "rate", "--pair-set", "p", "-o", str(out), "--db", str(db_path)])
    assert out.stat().st_size > 0 and "p" in out.read_text()


def test_label_task_commands(db, tmp_path):
    db_path, _ = db
    s = Store.open(db_path)
    for c in range(5):
        s.execute("INSERT INTO cluster_labels (run_id, cluster, label) VALUES ('text-5', ?, ?)", [c, f"theme {c}"])
    s.close()
    r = _run(["evaluate", "label-task", "export", "--run", "text-5", "-o", str(tmp_path / "t"), "--key",
              "--db", str(db_path)])
    task = r.stdout.strip()
    key = list(csv.DictReader((tmp_path / "t" / "key.csv").open()))
    ans = tmp_path / "a.csv"
    ans.write_text("item_id,answer\n" + "".join(f"{k['item_id']},{k['option']}\n" for k in key))
    r = _run(["evaluate", "label-task", "score", str(ans), "--task", task, "--format", "json",
              "--db", str(db_path)])
    rows = json.loads(r.stdout)
    assert len(rows) == 5 and all(x["precision"] == 1.0 and x["recall"] == 1.0 for x in rows)


def test_demo_script_runs_on_synthetic_db(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "evaluate_demo.py"
    spec = importlib.util.spec_from_file_location("evaluate_demo", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--synthetic", "--n", "120", "--bootstrap", "200", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "## Cluster quality" in out and "delta_cq" in out and "alpha" in out
