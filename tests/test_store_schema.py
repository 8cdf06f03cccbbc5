"""The DuckDB schema is the public API: migrations, final columns, locking, read-only SQL, export."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import duckdb
import pytest
from helpers_ingest import write_image
from typer.testing import CliRunner

from memeatlas.cli import app
from memeatlas.errors import DatabaseLockedError, ReadOnlyViolation
from memeatlas.ingest import ingest_paths
from memeatlas.store import Store, migrate
from memeatlas.store.query import run_readonly

# The public schema. A change here is a change to the public API: add a migration, never edit one.
EXPECTED = {
    "schema_migrations": ["version", "name", "applied_at"],
    "memes": ["meme_id", "path", "source", "source_id", "has_image", "width", "height", "format",
              "n_frames", "n_bytes", "phash", "added_at", "meta"],
    "meme_sources": ["meme_id", "source", "path", "source_id", "meta", "added_at"],
    "ingest_errors": ["source", "path", "error", "detail", "created_at"],
    "annotations": ["meme_id", "annotator", "prompt_hash", "schema_hash", "description", "ocr_text",
                    "intent", "template", "tone", "entities", "raw", "run_id", "tokens_in",
                    "tokens_out", "latency_ms", "created_at"],
    "imports": ["import_id", "file", "format", "annotator", "mapping", "n_rows", "n_imported",
                "n_failed", "software", "created_at", "n_warnings", "warnings"],
    "store_format": ["storage_version", "duckdb_version", "memeatlas_version", "event", "detail",
                     "recorded_at"],
    # 0006_study: timestamps, trends, curation log, cluster tree
    "meme_times": ["meme_id", "ts", "source", "raw", "time_format", "set_at"],
    "trend_runs": ["trend_id", "run_id", "period", "params", "n_memes", "n_timed", "n_untimed",
                   "n_periods", "software", "created_at"],
    "cluster_trends": ["trend_id", "run_id", "cluster", "period_start", "n", "period_total",
                       "share"],
    "cluster_trend_flags": ["trend_id", "run_id", "cluster", "trend", "share_early",
                            "share_late", "delta", "ci_low", "ci_high", "n_early", "n_late",
                            "early_total", "late_total"],
    "curation_edits": ["run_id", "seq", "parent_run", "op", "args", "result", "n_changed",
                       "editor", "note", "edited_at"],
    "cluster_tree": ["run_id", "node", "parent", "level", "is_leaf", "cluster", "size",
                     "height", "keywords", "label", "method", "params", "created_at",
                     "tree_id"],
    "cluster_assignments": ["run_id", "meme_id", "cluster", "probability", "x", "y", "assigned_by",
                            "assigned_at", "soft_cluster", "soft_probability", "membership"],
    "cluster_labels": ["run_id", "cluster", "size", "keywords", "keyword_scores", "label",
                       "representatives", "representation", "labeler", "text_annotator",
                       "params", "created_at", "labeling"],
    "cluster_membership": ["run_id", "meme_id", "cluster", "membership", "hard_cluster",
                           "probability", "soft_cluster", "soft_probability", "x", "y",
                           "assigned_by"],
    "cluster_members": ["run_id", "meme_id", "cluster", "probability", "x", "y", "assigned_by",
                        "label", "keywords", "path", "source_id", "annotator", "description",
                        "intent", "ocr_text", "template", "tone", "membership", "hard_cluster",
                        "source_title", "source_url"],
    "cluster_granularity": ["run_id", "min_cluster_size", "min_samples", "criterion", "value",
                            "n_clusters", "noise_fraction", "chosen"],
    "cluster_stability": ["run_id", "cluster", "size", "jaccard", "together", "n_seeds"],
    "dup_runs": ["run_id", "params", "software", "n_memes", "n_groups", "n_pairs", "created_at",
                 "updated_at"],
    "dup_pairs": ["run_id", "meme_a", "meme_b", "hash_distance", "cosine", "text_similarity",
                  "kind", "inliers", "agreement"],
    "dup_members": ["run_id", "meme_id", "group_id", "image_group_id", "group_size",
                    "image_group_size"],
    "near_duplicate_groups": ["run_id", "group_id", "n_memes", "n_images", "kind", "meme_ids",
                              "paths"],
    "template_runs": ["run_id", "gallery", "gallery_hash", "n_templates", "n_gallery_images",
                      "space", "model", "threshold", "calibration", "params", "software",
                      "created_at"],
    "template_matches": ["run_id", "meme_id", "template", "best_template", "score",
                         "second_template", "second_score", "created_at"],
    "meme_templates": ["run_id", "meme_id", "template", "best_template", "score",
                       "second_template", "second_score", "annotator", "vlm_template", "agrees"],
    "engine_shards": ["job_id", "shard", "step", "engine", "run_id", "merged_by", "n_rows",
                      "n_failed", "worker", "merged_at"],
    "class_labels": ["task", "meme_id", "coder", "label", "source", "import_id", "imported_at"],
    "classify_models": ["model_id", "task", "head", "spaces", "classes", "params", "seed", "n_train",
                        "fingerprint", "threshold", "cv", "format", "model", "software", "timings",
                        "created_at"],
    "class_predictions": ["model_id", "meme_id", "task", "label", "probability", "is_unknown", "top",
                          "predicted_at"],
    "text_encoders": ["encoder_id", "path", "base_model", "task", "loss", "params", "n_examples",
                      "seconds", "software", "created_at"],
}
EXPECTED_RELATIONS = {
    "memes", "meme_sources", "ingest_errors", "annotations", "imports", "caption_runs",
    "caption_failures", "prompts", "annotation_schemas", "latest_annotations", "entity_roles",
    "embedding_spaces", "embeddings", "cluster_runs", "cluster_assignments", "cluster_labels",
    "cluster_models", "cluster_members", "pair_sets", "rating_pairs", "ratings", "evaluations",
    "schema_migrations", "store_format", "meme_times", "trend_runs", "cluster_trends", "cluster_trend_flags",
    "curation_edits", "cluster_tree", "meme_timeline", "latest_cluster_trends",
    "cluster_members_assigned", "cluster_granularity", "cluster_stability",
    "dup_runs", "dup_pairs", "dup_members", "near_duplicate_groups",
    "template_runs", "template_matches", "meme_templates",
    "engine_shards",
    "class_labels", "classify_models", "class_predictions",
    "latest_class_predictions", "text_encoders",
    "cluster_membership", "latest_cluster_labels", "meme_links", "latest_cluster_tree",
}


def columns(store: Store, table: str) -> list[str]:
    return [r[0] for r in store.fetchall(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
        "ORDER BY ordinal_position", [table])]


def test_final_schema(store):
    assert store.schema_version == len(migrate.available())
    rels = {r[0] for r in store.fetchall("SELECT table_name FROM information_schema.tables")}
    assert EXPECTED_RELATIONS <= rels
    for table, cols in EXPECTED.items():
        assert columns(store, table) == cols, table
    assert columns(store, "caption_runs")[-1] == "status"  # 0006: running|finished|interrupted
    # every later table keeps its provenance columns
    for table in ("caption_runs", "embeddings", "cluster_runs", "cluster_labels", "evaluations"):
        assert "created_at" in columns(store, table) or "started_at" in columns(store, table)


def test_migrations_recorded_and_idempotent(db_path):
    with Store.open(db_path) as s:
        versions = [r[0] for r in s.fetchall("SELECT version FROM schema_migrations ORDER BY 1")]
    assert versions == list(range(1, len(migrate.available()) + 1))
    with Store.open(db_path) as s:  # opening again applies nothing
        assert s.scalar("SELECT count(*) FROM schema_migrations") == len(versions)


def test_old_database_is_upgraded(db_path, tmp_path):
    img = write_image(tmp_path / "old.png")
    with Store.open(db_path, migrate_to=1) as old:
        assert old.schema_version == 1
        assert not old.table_exists("embeddings")
        ingest_paths(old, [img])
    with Store.open(db_path) as new:
        assert new.schema_version == len(migrate.available())
        assert new.table_exists("embeddings") and new.table_exists("evaluations")
        assert new.scalar("SELECT count(*) FROM memes") == 1


def test_second_writer_gets_lock_error(db_path, tmp_path):
    Store.open(db_path).close()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from memeatlas.store import Store
        s = Store.open({str(db_path)!r})
        print("ready", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(DatabaseLockedError, match="in use by another process"):
            Store.open(db_path)
        img = write_image(tmp_path / "a.png")
        r = CliRunner().invoke(app, ["ingest", str(img), "--db", str(db_path)])
        assert r.exit_code == 1
        assert "in use by another process" in r.output and "Traceback" not in r.output
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    with Store.open(db_path) as s:  # usable again once the holder is gone
        assert s.schema_version >= 1


@pytest.fixture
def filled(db_path, tmp_path):
    for i, c in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        write_image(tmp_path / f"{i}.png", c)
    with Store.open(db_path) as s:
        ingest_paths(s, [tmp_path])
    return db_path


def test_sql_refuses_writes(filled):
    with Store.open(filled, sandbox=True) as s:
        for stmt in ("DELETE FROM memes", "DROP TABLE memes", "INSERT INTO memes (meme_id) VALUES ('x')",
                     "SELECT 1; UPDATE memes SET path = NULL", "CREATE TABLE t (a INT)"):
            with pytest.raises(ReadOnlyViolation, match="read-only"):
                run_readonly(s, stmt)
    r = CliRunner().invoke(app, ["sql", "DELETE FROM memes", "--db", str(filled)])
    assert r.exit_code == 1 and "read-only" in r.output
    with Store.open(filled, read_only=True) as s:
        assert s.scalar("SELECT count(*) FROM memes") == 3


def test_sql_formats(filled):
    r = CliRunner().invoke(app, ["sql", "SELECT format, count(*) AS n FROM memes GROUP BY 1",
                                 "--format", "json", "--db", str(filled)])
    assert r.exit_code == 0
    assert json.loads(r.stdout) == [{"format": "PNG", "n": 3}]
    r = CliRunner().invoke(app, ["sql", "SELECT count(*) AS n FROM memes", "-f", "csv",
                                 "--db", str(filled)])
    assert r.stdout.splitlines() == ["n", "3"]
    r = CliRunner().invoke(app, ["sql", "SELECT * FROM nope", "--db", str(filled)])
    assert r.exit_code == 1 and "nope" in r.output


def test_sql_on_missing_db(tmp_path):
    r = CliRunner().invoke(app, ["sql", "SELECT 1", "--db", str(tmp_path / "none.duckdb")])
    assert r.exit_code == 1 and "no database" in r.output
    assert not (tmp_path / "none.duckdb").exists()


def test_db_that_is_not_duckdb_is_a_clear_error(tmp_path):
    bad = tmp_path / "notes.duckdb"
    bad.write_text("not a database")
    for args in (["status"], ["ingest", str(tmp_path)]):
        r = CliRunner().invoke(app, [*args, "--db", str(bad)])
        assert r.exit_code == 1 and "Error:" in r.output and "notes.duckdb" in r.output
    assert bad.read_text() == "not a database"


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "csv"])
def test_export_round_trip(filled, tmp_path, fmt):
    out = tmp_path / f"memes.{fmt}"
    r = CliRunner().invoke(app, ["export", "memes", "--format", fmt, "-o", str(out),
                                 "--db", str(filled)])
    assert r.exit_code == 0, r.output
    reader = {"parquet": "read_parquet", "jsonl": "read_json_auto", "csv": "read_csv_auto"}[fmt]
    con = duckdb.connect()
    back = con.execute(f"SELECT meme_id, width, height, phash FROM {reader}('{out}') ORDER BY 1").fetchall()
    with Store.open(filled, read_only=True) as s:
        orig = s.fetchall("SELECT meme_id, width, height, phash FROM memes ORDER BY 1")
    assert back == orig


def test_export_unknown_relation(filled, tmp_path):
    r = CliRunner().invoke(app, ["export", "nope", "-o", str(tmp_path / "x.csv"), "-f", "csv",
                                 "--db", str(filled)])
    assert r.exit_code == 1 and "choose one of" in r.output


def test_status_counts(filled):
    r = CliRunner().invoke(app, ["status", "--format", "json", "--db", str(filled)])
    rows = {(d["step"], d["what"]): d["count"] for d in json.loads(r.stdout)}
    assert rows[("ingest", "memes")] == 3 and rows[("caption", "annotations")] == 0
