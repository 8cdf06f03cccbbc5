"""The ray engine's pure parts, without Ray: options, job directories, shard files, errors."""

from __future__ import annotations

import sys

import pyarrow as pa
import pytest

from memeatlas.caption.ray_job import job_id_for
from memeatlas.commands.engine_options import engine_settings
from memeatlas.distributed import check_engine
from memeatlas.distributed.options import RayOptions, default_job_dir, round_to_batches
from memeatlas.distributed.shards import JobDir, merged_shards, record_shard
from memeatlas.errors import BackendError, InputError


def test_options_and_cli_mapping():
    assert engine_settings("local", None, None, None, 1.0, None, None, False) == ("local", {})
    eng, opts = engine_settings("local", "auto", 4, None, 2.0, "s3://b/jobs", 256, True)
    assert eng == "ray" and opts == {"address": "auto", "cpus_per_worker": 2.0,
                                     "keep_shards": True, "workers": 4,
                                     "job_dir": "s3://b/jobs", "shard_size": 256}
    assert RayOptions.from_dict({"name": "ray", **opts}).workers == 4
    with pytest.raises(InputError, match="valid: address"):
        RayOptions.from_dict({"adress": "auto"})
    with pytest.raises(BackendError, match="choose one of: local, ray"):
        check_engine("dask")
    assert round_to_batches(64, 6) == 66 and round_to_batches(1, 4) == 4
    key = ("m@local-abc", "p1", "s1")
    assert job_id_for(key) == job_id_for(tuple(key)) != job_id_for(("m@x", "p1", "s1"))


def test_job_dir_shards_round_trip(tmp_path, store):
    job = JobDir(str(tmp_path / "jobs"), "caption-1")
    t = pa.table({"meme_id": [f"m{i}" for i in range(10)], "path": ["p"] * 10})
    assert job.write_inputs(t, 4) == 3
    assert job.inputs() == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert job.read_input("part-00002.parquet").num_rows == 2
    job.write_result("r-1.parquet", t.slice(0, 4), {"run_id": "r", "stats": {"n": 4}})
    (tmp_path / "jobs" / "caption-1" / "out" / "r-2.parquet.123.tmp").write_bytes(b"half")
    assert job.results() == ["r-1.parquet"]  # the killed worker's temp file is removed
    assert not list((tmp_path / "jobs").rglob("*.tmp"))
    table, meta = job.read_result("r-1.parquet")
    assert table.num_rows == 4 and meta == {"run_id": "r", "stats": {"n": 4}}
    with store.transaction():
        record_shard(store, job_id="caption-1", shard="r-1.parquet", step="caption",
                     run_id="r", merged_by="r2", n_rows=4, n_failed=0, worker={"pid": 1})
    record_shard(store, job_id="caption-1", shard="r-1.parquet", step="caption", run_id="r",
                 merged_by="r3", n_rows=4, n_failed=0, worker={})  # a second merge: no-op
    assert merged_shards(store, "caption-1") == {"r-1.parquet"}
    assert store.scalar("SELECT merged_by FROM engine_shards") == "r2"
    job.remove_results(["r-1.parquet"])
    job.remove_inputs()
    assert job.results() == [] and job.inputs() == []
    assert default_job_dir(store).endswith(".duckdb.ray")


def test_missing_ray_says_how_to_install(monkeypatch):
    from memeatlas.distributed.cluster import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(BackendError, match=r"pip install 'memeatlas\[ray\]'"):
        import_ray()


def test_object_store_uris_are_read_through_pyarrow(tmp_path):
    from helpers_caption import draw_meme

    from memeatlas.distributed.uri import is_uri, load_any

    p = tmp_path / "a.png"
    draw_meme("A", "B", size=(300, 200)).save(p)
    assert is_uri("s3://bucket/a.png") and not is_uri(str(p)) and not is_uri(f"file://{p}")
    assert load_any(f"file://{p}", 10_000).size[0] < 300  # file:// goes through load_image
    with pytest.raises(InputError, match="cannot read"):
        load_any("mock://nowhere/a.png")


def test_merging_a_killed_jobs_shard_keeps_work_outside_this_selection(tmp_path, store):
    import json

    from helpers_caption import insert_memes, write_images

    from memeatlas.caption.batch import CaptionConfig, CaptionSummary
    from memeatlas.caption.ray_job import RayCaptionExecutor

    ids = insert_memes(store, write_images(tmp_path / "imgs", 3))
    job = JobDir(str(tmp_path / "jobs"), "caption-x")
    obj = {"description": "d", "ocr_text": "", "intent": "i", "template": None,
           "tone": "neutral", "entities": []}
    job.write_result("old-1.parquet", pa.table({
        "meme_id": ids, "path": ["p"] * 3,
        "obj": [json.dumps(obj), json.dumps(obj), None],
        "tokens_in": [5, 5, None], "tokens_out": [7, 7, None], "model_ms": [1.0, 1.0, 1.0],
        "attempts": ["[]", "[]", json.dumps([["invalid_json", "bad", "{"]])]}),
        {"run_id": "old", "stats": {"n_attempts": 3}, "worker": {"pid": 9}})
    key = ("m@x", "p", "s")
    summary = CaptionSummary(run_id="new", annotator="m@x", backend="b", model="m",
                             prompt_hash="p", schema_hash="s")

    class Bar:
        def update(self, n):
            pass

    ctx = {"summary": summary, "timings": {"write": 0.0}, "bar": Bar(), "key": key}
    ex = RayCaptionExecutor(None, RayOptions(), {}, CaptionConfig())
    open_ids = {ids[0]}  # this run (say --limit 1) selected only the first meme
    got = ex._merge(store, job, "old-1.parquet", ctx, open_ids, adopt=True)
    assert got == {ids[0], ids[1]} and (summary.n_done, summary.n_failed) == (2, 1)
    assert store.scalar("SELECT count(*) FROM annotations WHERE run_id = 'new'") == 2
    assert store.fetchone("SELECT meme_id, error, final FROM caption_failures") == (
        ids[2], "invalid_json", True)
    assert store.fetchone("SELECT run_id, merged_by, n_rows, n_failed FROM engine_shards") == (
        "old", "new", 3, 1)
