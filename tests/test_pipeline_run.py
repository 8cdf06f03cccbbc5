"""`memeatlas run` end to end on a generated folder (OCR captions, bundled MiniLM, UMAP+HDBSCAN).

One test process pays UMAP's first-call compile once; everything is in one test on purpose.
"""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from memeatlas.cli import app
from memeatlas.demo.corpus import write_corpus
from memeatlas.pipeline import PipelineConfig, run_pipeline
from memeatlas.store import Store

pytestmark = pytest.mark.slow

TABLES = ("memes", "annotations", "embeddings", "cluster_runs", "cluster_assignments",
          "cluster_labels", "rating_pairs")


def _counts(db) -> dict[str, int]:
    with Store.open(db, read_only=True) as s:
        return {t: s.scalar(f"SELECT count(*) FROM {t}") for t in TABLES}


def test_run_twice_second_does_no_work(tmp_path):
    folder = tmp_path / "memes"
    write_corpus(folder, n=15, seed=1)
    (folder / "notes.txt").write_text("not an image")  # ignored, not an error
    db = tmp_path / "corpus.duckdb"
    report = tmp_path / "out" / "report.html"
    args = ["run", str(folder), "--db", str(db), "--backend", "ocr", "--image-model", "none",
            "--min-cluster-size", "2", "--rate-pairs", "6", "-o", str(report)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    first = _counts(db)
    assert first["memes"] == 15 and first["annotations"] == 15 and first["embeddings"] == 15
    assert first["cluster_runs"] == 1 and first["cluster_assignments"] == 15
    with Store.open(db, read_only=True) as s:
        n_clusters = s.scalar("SELECT n_clusters FROM cluster_runs")
        labelled = s.scalar("SELECT count(*) FROM cluster_labels WHERE cluster >= 0")
    # 15 memes on 5 themes with min_cluster_size 2: clusters exist, and every one is labelled
    # (noise, when there is any, gets a row of its own)
    assert n_clusters >= 1 and labelled == n_clusters
    assert first["rating_pairs"] == 6
    html = report.read_text()
    assert "memeatlas-fingerprint" in html and len(html) > 20_000
    assert (tmp_path / "out" / "rate.html").exists()
    for step in ("ingest", "caption", "embed text", "cluster", "label", "rating page", "report"):
        assert re.search(rf"^\s+{step}\s", res.output, re.M), f"no {step} line in\n{res.output}"
    mtime = report.stat().st_mtime_ns

    # Second run: every step finds its work stored.
    with Store.open(db) as store:
        summary = run_pipeline(store, PipelineConfig(
            paths=[folder], backend="ocr", image_model="none", min_cluster_size=2, rate_pairs=6,
            report=report))
    assert not summary.did_work, [(s.name, s.work, s.detail) for s in summary.steps]
    assert summary.step("ingest").info["present"] == 15
    assert summary.step("caption").info["skipped"] == 15
    assert summary.step("report").detail.endswith("unchanged")
    assert _counts(db) == first
    assert report.stat().st_mtime_ns == mtime


def test_run_errors_clearly(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    res = CliRunner().invoke(app, ["run", str(empty), "--db", str(tmp_path / "x.duckdb"),
                                   "--backend", "ocr", "-o", str(tmp_path / "r.html")])
    assert res.exit_code == 1 and "Error:" in res.output and "no images" in res.output


def test_demo_small(tmp_path):
    from memeatlas.pipeline import run_demo

    d = tmp_path / "demo"
    summary = run_demo(d, n=12, rate_pairs=8)
    assert (d / "report.html").exists() and (d / "rate.html").exists()
    assert (d / "images" / "manifest.csv").exists()
    with Store.open(d / "memeatlas.duckdb", read_only=True) as s:
        assert s.scalar("SELECT count(*) FROM memes") == 12
        assert s.scalar("SELECT count(*) FROM annotations WHERE annotator = 'ocr:rapidocr'") == 12
        assert s.scalar("SELECT count(*) FROM ratings WHERE pair_set = 'demo'") == 16
        assert s.scalar("SELECT count(*) FROM evaluations WHERE metric = 'ari'") >= 1
        assert s.scalar("SELECT count(*) FROM evaluations WHERE metric = 'cq'") >= 2
        # synthetic posting dates: timestamps, weekly trends, the report's time chart
        assert s.scalar("SELECT count(*) FROM meme_times") == 12
        assert s.scalar("SELECT count(*) FROM trend_runs") == 1
        assert s.scalar("SELECT count(*) FROM latest_class_predictions WHERE task = 'theme'") == 6
        assert s.scalar("SELECT count(*) FROM evaluations WHERE command = 'classify-evaluate'") >= 1
    assert '"time":{"period":"week"' in (d / "report.html").read_text()
    assert summary.step("known labels") and summary.step("demo ratings + CQ sweep")
    assert summary.step("demo trends + hierarchy")
    assert summary.step("demo classify (theme)").status == "done"
    again = run_demo(d, n=12, rate_pairs=8)
    assert not again.did_work, [(s.name, s.work, s.detail) for s in again.steps]
