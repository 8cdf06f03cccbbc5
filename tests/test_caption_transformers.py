"""The transformers backend and the run loop end to end, on a tiny random Qwen2.5-VL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import helpers_caption
import jsonschema
import pytest
from helpers_caption import insert_memes, write_images

from memeatlas.caption import CaptionConfig, run
from memeatlas.caption.backends import GenerationRequest, create
from memeatlas.caption.schema import Annotation
from memeatlas.errors import InputError, ModelNotFoundError
from memeatlas.store import Store

HERE = Path(__file__).parent

# Shared session fixtures (defined in helpers_caption).
tiny_qwen_dir = helpers_caption.tiny_qwen_dir
tiny_backend = helpers_caption.tiny_backend


@pytest.fixture
def corpus(store, tmp_path):
    paths = write_images(tmp_path / "imgs", 12)
    return insert_memes(store, paths)


def test_tiny_model_captions_a_dozen_images(store, corpus, tiny_qwen_dir, tiny_backend):
    cfg = CaptionConfig(model=str(tiny_qwen_dir), batch_size=4, max_new_tokens=200)
    s = run(store, cfg, backend=tiny_backend)
    assert (s.n_selected, s.n_done, s.n_failed, s.n_skipped) == (12, 12, 0, 0)
    assert s.annotator.startswith("tiny-qwen25vl@local-")
    assert s.tokens_out > 0 and s.images_per_s > 0 and 0 <= s.outside_model_share < 1

    rows = store.fetchall("SELECT a.raw, s.json_schema, a.description, a.tone, a.entities "
                          "FROM annotations a JOIN annotation_schemas s USING (schema_hash)")
    assert len(rows) == 12
    for raw, schema, desc, tone, ents in rows:
        obj = json.loads(raw)
        jsonschema.validate(obj, json.loads(schema))
        Annotation.model_validate(obj)
        assert desc == obj["description"] and tone == obj["tone"]
        assert json.loads(ents) == obj["entities"]
    n_roles = store.scalar("SELECT count(*) FROM entity_roles WHERE role IN "
                           "('hero','villain','victim','other')")
    assert n_roles >= 1
    assert store.scalar("SELECT count(*) FROM latest_annotations") == 12
    run_row = store.fetchone("SELECT n_done, n_failed, finished_at, prompt_hash, sampling, "
                             "timings, software FROM caption_runs WHERE run_id = ?", [s.run_id])
    assert run_row[0] == 12 and run_row[1] == 0 and run_row[2] is not None
    assert run_row[3] == s.prompt_hash
    assert json.loads(run_row[4])["max_new_tokens"] == 200
    assert set(json.loads(run_row[5])) >= {"load", "model", "validate", "write"}
    assert "transformers" in json.loads(run_row[6])
    assert store.scalar("SELECT count(*) FROM prompts WHERE prompt_hash = ?", [s.prompt_hash]) == 1

    # Same key again: nothing to do.
    again = run(store, cfg, backend=tiny_backend)
    assert (again.n_done, again.n_skipped) == (0, 12)
    # --force redoes them in place: still one row per meme.
    forced = run(store, CaptionConfig(model=str(tiny_qwen_dir), batch_size=2, force=True,
                                      limit=2, max_new_tokens=200), backend=tiny_backend)
    assert forced.n_done == 2
    assert store.scalar("SELECT count(*) FROM annotations") == 12
    assert store.scalar("SELECT count(*) FROM annotations WHERE run_id = ?", [forced.run_id]) == 2


def test_truncation_goes_to_failures_with_raw_output(store, corpus, tiny_qwen_dir, tiny_backend):
    cfg = CaptionConfig(model=str(tiny_qwen_dir), batch_size=4, max_new_tokens=6, retries=1,
                        limit=3)
    s = run(store, cfg, backend=tiny_backend)
    assert (s.n_done, s.n_failed) == (0, 3)
    assert s.n_attempts == 6  # one try + one retry each
    rows = store.fetchall("SELECT meme_id, attempt, error, raw_output, final FROM caption_failures "
                          "WHERE run_id = ? ORDER BY meme_id, attempt", [s.run_id])
    assert len(rows) == 6
    assert {r[1] for r in rows} == {1, 2}
    assert all(r[2] == "truncated" for r in rows)
    assert all(r[3] and r[3].startswith("{") for r in rows)  # the partial JSON is kept
    assert [r[4] for r in rows] == [False, True] * 3
    assert store.scalar("SELECT finished_at IS NOT NULL FROM caption_runs WHERE run_id = ?",
                        [s.run_id])
    assert store.scalar("SELECT count(*) FROM annotations") == 0
    # Failures are not "done": the next run under the same key picks those memes up again.
    s2 = run(store, CaptionConfig(model=str(tiny_qwen_dir), batch_size=2, max_new_tokens=200,
                                  limit=2), backend=tiny_backend)
    assert s2.n_done == 2 and s2.n_skipped == 0


def test_unreadable_image_is_a_failure_not_a_crash(store, tmp_path, tiny_qwen_dir, tiny_backend):
    paths = write_images(tmp_path / "imgs", 2)
    ids = insert_memes(store, paths)
    paths[0].write_bytes(b"not an image any more")
    s = run(store, CaptionConfig(model=str(tiny_qwen_dir), max_new_tokens=200),
            backend=tiny_backend)
    assert (s.n_done, s.n_failed) == (1, 1)
    err = store.fetchone("SELECT meme_id, error, final FROM caption_failures")
    assert err == (ids[0], "image_unreadable", True)


def test_resume_after_sigkill_annotates_each_meme_once(db_path, tmp_path, tiny_qwen_dir,
                                                       tiny_backend):
    with Store.open(db_path) as st:
        insert_memes(st, write_images(tmp_path / "imgs", 5))
    env = dict(os.environ, PYTHONPATH=f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               HF_HUB_OFFLINE="1", MEMEATLAS_NO_PROGRESS="1")
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "helpers_caption.py"), "resume", str(db_path),
         str(tiny_qwen_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line.strip())
            if line.startswith("GEN 2"):
                break
        else:
            pytest.fail(f"subprocess ended early: {seen} {proc.stderr.read()[-2000:]}")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert "BATCH 1 2" in seen

    with Store.open(db_path) as st:
        assert st.scalar("SELECT count(*) FROM annotations") == 2  # batch 1 survived the kill
        # The WAL left by the killed process is replayed on open; the re-run does the rest.
        s = run(st, CaptionConfig(model=str(tiny_qwen_dir), batch_size=3, max_new_tokens=200),
                backend=tiny_backend)
        assert (s.n_skipped, s.n_done, s.n_failed) == (2, 3, 0)
        assert st.scalar("SELECT count(*) FROM annotations") == 5
        assert st.scalar("SELECT count(DISTINCT meme_id) FROM annotations") == 5
        assert st.scalar("SELECT count(*) FROM caption_runs") == 2
        # the killed run is marked interrupted (with what it got done) when the next one starts
        assert s.n_interrupted_runs == 1
        assert st.fetchall("SELECT status, n_done FROM caption_runs ORDER BY started_at") == [
            ("interrupted", 2), ("finished", 3)]


def test_text_only_requests_for_the_label_step(tiny_backend):
    schema = {"type": "object", "properties": {"label": {"type": "string",
                                                         "pattern": "^[a-z ]{1,20}$"}},
              "required": ["label"], "additionalProperties": False}
    res = tiny_backend.generate([
        GenerationRequest("Name this cluster of memes: cats, mondays.", None, schema, 64),
        GenerationRequest("Say hi.", None, None, 5),
    ])
    assert len(res) == 2
    assert res[0].finished and res[0].error is None and res[0].tokens_in > 0
    assert set(json.loads(res[0].text)) == {"label"}
    assert res[1].tokens_out == 5 and not res[1].finished


def test_custom_schema_and_prompt_make_a_new_key(store, tmp_path, tiny_qwen_dir, tiny_backend):
    insert_memes(store, write_images(tmp_path / "imgs", 1))
    base = run(store, CaptionConfig(model=str(tiny_qwen_dir), max_new_tokens=200),
               backend=tiny_backend)
    schema_file = tmp_path / "extra.json"
    schema_file.write_text(json.dumps({"type": "object", "properties": {
        "is_political": {"type": "boolean", "description": "About politics?"}}}))
    prompt_file = tmp_path / "prompt.txt"
    prompt_file.write_text("Annotate this meme.\n{fields}\n")
    ext = run(store, CaptionConfig(model=str(tiny_qwen_dir), max_new_tokens=200,
                                   schema_file=schema_file, prompt_file=prompt_file),
              backend=tiny_backend)
    assert ext.n_done == 1 and ext.schema_hash != base.schema_hash
    assert ext.prompt_hash != base.prompt_hash
    raws = [json.loads(r[0]) for r in store.fetchall(
        "SELECT raw FROM annotations WHERE schema_hash = ?", [ext.schema_hash])]
    assert all(isinstance(r["is_political"], bool) for r in raws)
    text = store.scalar("SELECT text FROM prompts WHERE prompt_hash = ?", [ext.prompt_hash])
    assert "is_political" in text and text.startswith("Annotate this meme.")
    assert store.scalar("SELECT count(*) FROM annotations") == 2


def test_bad_where_is_an_input_error(store, corpus, tiny_qwen_dir, tiny_backend):
    with pytest.raises(InputError, match="--where"):
        run(store, CaptionConfig(model=str(tiny_qwen_dir), where="no_such_column = 1"),
            backend=tiny_backend)
    s = run(store, CaptionConfig(model=str(tiny_qwen_dir), where="m.format = 'GIF'",
                                 max_new_tokens=200, limit=1), backend=tiny_backend)
    assert s.n_done == 1
    assert store.scalar("SELECT m.format FROM annotations a JOIN memes m USING (meme_id)") == "GIF"


def test_missing_model_names_it_and_says_how_to_use_a_directory():
    with pytest.raises(ModelNotFoundError) as ei:
        create("transformers", model="memeatlas-test/no-such-model", device="cpu")
    msg = str(ei.value)
    assert "memeatlas-test/no-such-model" in msg and "--model /path/to/dir" in msg


def test_cli_caption(db_path, tmp_path, tiny_qwen_dir, tiny_backend):  # backend: warm grammar
    from typer.testing import CliRunner

    from memeatlas.cli import app

    with Store.open(db_path) as st:
        insert_memes(st, write_images(tmp_path / "imgs", 2))
    r = CliRunner().invoke(app, ["caption", "--db", str(db_path), "--model", str(tiny_qwen_dir),
                                 "--device", "cpu", "--limit", "1", "--max-new-tokens", "200"])
    assert r.exit_code == 0, r.output
    assert "annotated" in r.output
    with Store.open(db_path, read_only=True) as st:
        assert st.scalar("SELECT count(*) FROM annotations") == 1
    bad = CliRunner().invoke(app, ["caption", "--db", str(db_path), "--backend", "nope"])
    assert bad.exit_code == 1 and "Error:" in bad.output and "transformers" in bad.output
    missing = CliRunner().invoke(app, ["caption", "--db", str(db_path), "--model",
                                       str(tmp_path / "not-a-model")])
    assert missing.exit_code == 1 and "--model /path/to/dir" in missing.output
    sch = CliRunner().invoke(app, ["caption", "--print-schema"])
    assert sch.exit_code == 0 and json.loads(sch.stdout)["title"] == "MemeAnnotation"
