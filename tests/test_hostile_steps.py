"""Hostile input to the steps after ingest (issue 16, defects 6, 7, 14, 15, 16).

Rating dimensions checked against the pair set, keywords in any script, fast offline
model-load failures, left-out memes counted in every summary, and killed caption runs
marked interrupted.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from helpers_evaluate import add_memes, add_run
from typer.testing import CliRunner

from memeatlas.cli import app
from memeatlas.errors import InputError

# --- defect 6: unknown rating dimensions ---------------------------------------------------


@pytest.fixture
def pair_set(store, tmp_path):
    from memeatlas.evaluate import sample_pairs

    m = add_memes(store, 16)
    add_run(store, "r1", {x: i % 4 for i, x in enumerate(m)})
    sample_pairs(store, "r1", n=8, pair_set="ps", seed=1)
    return [r[0] for r in store.fetchall("SELECT pair_id FROM rating_pairs ORDER BY position")]


def _long(path, rows):
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["pair_id", "coder", "dimension", "rating"])
        w.writerows(rows)
    return path


def test_unknown_dimensions_are_refused_with_the_sets_list(store, pair_set, tmp_path):
    from memeatlas.evaluate import import_ratings

    rows = [(p, "a", "connotative", 2) for p in pair_set] + \
           [(pair_set[0], "b", "connotativ", 2), (pair_set[1], "b", "Connotative", 3)]
    f = _long(tmp_path / "r.csv", rows)
    with pytest.raises(InputError) as e:
        import_ratings(store, f, pair_set="ps")
    msg = str(e.value)
    assert "'connotativ'" in msg and "'Connotative'" in msg
    assert "(connotative, denotative)" in msg and "did you mean 'connotative'" in msg
    assert store.scalar("SELECT count(*) FROM ratings") == 0
    # wide layout: a misspelt column is refused before any row is read
    w = tmp_path / "w.csv"
    w.write_text(f"pair_id,a:connotative,a:denotatve\n{pair_set[0]},1,2\n")
    with pytest.raises(InputError, match="a:denotatve.*did you mean 'denotative'"):
        import_ratings(store, w, pair_set="ps")
    # the right names import; agreement then sees the set's dimensions only
    s = import_ratings(store, _long(tmp_path / "ok.csv", rows[:len(pair_set)]), pair_set="ps")
    assert s.dimensions == ["connotative"]


def test_imported_pair_set_keeps_its_first_dimensions(store, tmp_path):
    from memeatlas.evaluate import import_ratings

    m = add_memes(store, 4)
    f = tmp_path / "ext.csv"
    f.write_text(f"meme_a,meme_b,coder,dimension,rating\n{m[0]},{m[1]},a,funny,2\n")
    import_ratings(store, f, pair_set="ext")
    g = tmp_path / "ext2.csv"
    g.write_text(f"meme_a,meme_b,coder,dimension,rating\n{m[2]},{m[3]},a,Funny,2\n")
    with pytest.raises(InputError, match=r"'Funny'.*\(funny\)"):
        import_ratings(store, g, pair_set="ext")


# --- defect 7: keywords in any script ------------------------------------------------------

LANGS = {
    "de": ["Die Prüfung war schwer, die Prüfung macht müde", "Nach der Prüfung kommt die Freude",
           "Prüfung morgen und ich lerne nicht", "Die Straße zur Prüfung ist lang"],
    "ru": ["Мой кот смотрит на мем и смеётся", "Кот опять спит на клавиатуре",
           "Кот против понедельника", "Когда кот видит огурец"],
    "ar": ["القطة تنظر إلى الميم وتضحك", "القطة نائمة على لوحة المفاتيح",
           "القطة ضد يوم الاثنين", "عندما ترى القطة خيارا"],
    "emoji": ["when the code works 😂😂", "deploy on friday 😂🔥", "me at 3am 😂",
              "the build passed 😂👍🏽"],
    "zh": ["我的猫在看这个表情包", "猫咪又在键盘上睡觉了", "猫咪讨厌星期一", "当猫咪看到黄瓜"],
    "ja": ["猫がミームを見ている", "ミームを送る猫", "月曜日のミーム", "猫とミームと月曜日"],
}
EXPECT = {"de": "prüfung", "ru": "кот", "ar": "القطة", "emoji": "😂", "zh": "猫咪", "ja": "ミーム"}


@pytest.mark.parametrize("lang", list(LANGS))
def test_keyword_tokens_in_every_script(lang):
    from memeatlas.cluster.tokenize import keyword_tokens

    toks = [t for doc in LANGS[lang] for t in keyword_tokens(doc)]
    assert EXPECT[lang] in toks
    assert all(t.strip() for t in toks)
    if lang == "de":
        assert "prfung" not in toks and "die" not in toks  # umlauts kept, function words out


def test_ctfidf_keywords_per_language_cluster():
    """The real c-TF-IDF path (BERTopic, pass-through clustering) gives each cluster its word."""
    from memeatlas.cluster.config import LabelConfig
    from memeatlas.cluster.labeling import _topic_keywords

    docs, labels = [], []
    for k, lang in enumerate(LANGS):
        docs += LANGS[lang]
        labels += [k] * len(LANGS[lang])
    labels = np.array(labels)
    emb = np.random.default_rng(0).normal(size=(len(docs), 8)).astype(np.float32)
    kw = _topic_keywords(docs, labels, emb, LabelConfig(run_id="x", n_keywords=5))
    for k, lang in enumerate(LANGS):
        words = [w for w, _ in kw[k]]
        assert words, lang
        assert EXPECT[lang] in words, (lang, words)


# --- defect 16: a killed caption run is marked interrupted ---------------------------------


class _Fake:
    """A caption backend that writes a fixed valid annotation (no model)."""

    @staticmethod
    def make():
        from memeatlas.caption.backends.base import Backend, BackendInfo, GenerationResult

        good = {"description": "a cat", "ocr_text": "", "intent": "joke", "entities": [],
                "template": "none", "tone": "humorous"}

        class Fake(Backend):
            name = "fake"

            @property
            def info(self):
                return BackendInfo("fake", "fake-model", "r1", "fake-model@r1")

            def generate(self, requests):
                return [GenerationResult(json.dumps(good), True, 1, 1, 1.0) for _ in requests]

        return Fake()


def _image_memes(store, tmp_path, n=3, without_image=0):
    from helpers_ingest import write_image

    from memeatlas.ingest import ingest_paths

    d = tmp_path / "imgs"
    d.mkdir(exist_ok=True)
    ingest_paths(store, [write_image(d / f"{i}.png", color=(40 * i, 9, 9)) for i in range(n)])
    if without_image:
        add_memes(store, without_image, prefix="noimg")
        store.execute("UPDATE memes SET has_image = false, path = NULL WHERE path LIKE '/data/%'")


def test_killed_caption_run_is_marked_interrupted(store, tmp_path):
    from memeatlas.caption import CaptionConfig, run

    _image_memes(store, tmp_path)
    # What a SIGKILL leaves behind: a run row with a start and no end (the real kill is
    # exercised in test_caption_transformers::test_resume_after_sigkill...).
    store.execute("INSERT INTO caption_runs (run_id, backend, model, annotator, prompt_hash, "
                  "schema_hash, started_at, status) VALUES ('dead', 'fake', 'm', 'fake-model@r1', "
                  "'p', 's', now(), 'running')")
    s = run(store, CaptionConfig(model="fake-model"), backend=_Fake.make())
    assert s.n_interrupted_runs == 1 and s.n_done == 3
    rows = dict(store.fetchall("SELECT run_id, status FROM caption_runs"))
    assert rows == {"dead": "interrupted", s.run_id: "finished"}
    from memeatlas.pipeline import status

    st = {what: n for _, what, n in status(store)}
    assert st["interrupted caption runs"] == 1
    assert st["memes in no space (see each embed summary's left out)"] == 3


def test_caption_run_stopped_by_an_error_is_interrupted(store, tmp_path):
    from memeatlas.caption import CaptionConfig, run

    _image_memes(store, tmp_path)
    fake = _Fake.make()

    def boom(requests):
        raise KeyboardInterrupt

    fake.generate = boom
    with pytest.raises(KeyboardInterrupt):
        run(store, CaptionConfig(model="fake-model"), backend=fake)
    assert store.scalar("SELECT status FROM caption_runs") == "interrupted"


# --- defect 15: every step counts what it left out -----------------------------------------


def test_caption_summary_counts_memes_without_image(store, tmp_path):
    from memeatlas.caption import CaptionConfig, run

    _image_memes(store, tmp_path, n=2, without_image=3)
    s = run(store, CaptionConfig(model="fake-model"), backend=_Fake.make())
    assert s.n_done == 2
    assert s.left_out == {"no image": 3}
    assert s.as_dict()["left_out"] == {"no image": 3}


def test_embed_text_counts_empty_and_unannotated(store, tmp_path):
    from memeatlas.embed import TextEmbedConfig, embed_text

    m = add_memes(store, 5)
    for i, mid in enumerate(m[:4]):
        store.execute("INSERT INTO annotations (meme_id, annotator, prompt_hash, schema_hash, "
                      "ocr_text) VALUES (?, 'ocr:test', '', '', ?)", [mid, "" if i else "HELLO"])
    s = embed_text(store, TextEmbedConfig(fields=("ocr_text",), annotator="ocr:test"))
    assert s.embedded == 1
    assert s.left_out == {"empty ocr_text": 3, "no annotation by ocr:test": 1}
    r = CliRunner().invoke(app, ["embed", "text", "--fields", "ocr_text", "--annotator",
                                 "ocr:test", "--db", str(store.path), "--json"])
    assert "left out" in r.output


def test_step_summaries_name_left_out(tmp_path):
    from memeatlas.embed.config import EmbedSummary
    from memeatlas.leftout import describe

    s = EmbedSummary(space="text:ocr_text", kind="text", model="m", dim=3, annotator="ocr:x",
                     skipped_empty=150, fields=("ocr_text",))
    assert describe(s.left_out) == "150 left out (150 empty ocr_text)"
    assert describe({}) == ""


def test_report_says_how_many_memes_it_covers(store, tmp_path):
    import re

    from helpers_report import XSS_TEXTS, fill_store

    from memeatlas.report import build

    fill_store(store, tmp_path / "img", sweep=False, pair_set=None)
    in_run = store.scalar("SELECT count(*) FROM cluster_assignments WHERE run_id = 'cluster-test-a'")
    # The run's text space: its recipe names the annotator (a hostile name, shown as text).
    who = XSS_TEXTS[0]
    store.execute("INSERT INTO embedding_spaces (space, kind, model, dim, params) VALUES "
                  "('text:description+intent', 'text', 'm', 2, ?)",
                  [json.dumps({"recipe": {"annotator": who, "fields": ["description", "intent"]}})])
    store.execute("INSERT INTO embeddings (meme_id, space, model, dim, vector) SELECT meme_id, "
                  "'text:description+intent', 'm', 2, [1.0, 0.0]::FLOAT[] FROM cluster_assignments "
                  "WHERE run_id = 'cluster-test-a'")
    store.execute("UPDATE annotations SET annotator = ?", [who])
    extra = add_memes(store, 3, prefix="late")
    store.execute("INSERT INTO annotations (meme_id, annotator, prompt_hash, schema_hash, "
                  "description) VALUES (?, ?, '', '', '')", [extra[0], who])
    rs = build(store, "cluster-test-a", tmp_path / "r.html")
    cov = rs.coverage
    assert (cov["in_store"], cov["in_run"]) == (in_run + 3, in_run)
    assert cov["absent"] == {f"no annotation by {who}": 2, "empty description/intent": 1}
    assert cov["note"].startswith(f"covers {in_run} of the store's {in_run + 3} memes; 3 absent")
    assert rs.as_dict()["left out"].startswith("3 (2 no annotation")
    html = (tmp_path / "r.html").read_text()
    data = json.loads(re.search(r'id="memeatlas-data">(.*?)</script>', html, re.S).group(1))
    assert data["coverage"]["note"] == cov["note"]
    assert who not in html  # the payload is escaped inside the page's JSON block


def test_pipeline_step_lines_name_left_out():
    from memeatlas.pipeline import _left_out

    assert _left_out({"empty ocr_text": 150}) == "; 150 left out (150 empty ocr_text)"
    assert _left_out({}) == "" and _left_out(None) == ""


# --- defect 14: offline model loading fails fast, bars honour --no-progress ----------------


class _Refused(Exception):
    """Stands for httpx's ConnectError: the hub cannot be reached."""


_Refused.__name__ = "ConnectError"


def _no_hub(monkeypatch, calls):
    import huggingface_hub

    def model_info(*a, **k):
        calls.append(k.get("timeout"))
        raise _Refused("[Errno 111] Connection refused")

    monkeypatch.setattr(huggingface_hub, "model_info", model_info)
    from memeatlas import hub

    hub.hub_unreachable.cache_clear()


def test_uncached_model_with_hub_unreachable_fails_at_once(monkeypatch, tmp_path):
    from memeatlas import hub
    from memeatlas.embed.text import TextEncoder
    from memeatlas.errors import ModelNotFoundError

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    calls: list = []
    _no_hub(monkeypatch, calls)
    with pytest.raises(ModelNotFoundError, match="cannot be reached.*Connection refused"):
        TextEncoder("someone/not-cached-model")
    assert calls == [hub.HUB_TIMEOUT_S]  # the hub asked once, with a short timeout


def test_offline_env_never_asks_the_hub(monkeypatch):
    from memeatlas.caption.backends.transformers import TransformersBackend
    from memeatlas.embed.image import ImageEncoder
    from memeatlas.errors import ModelNotFoundError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    calls: list = []
    _no_hub(monkeypatch, calls)
    with pytest.raises(ModelNotFoundError, match="HF_HUB_OFFLINE is set"):
        ImageEncoder("someone/not-cached-clip", backend="transformers", device="cpu")
    with pytest.raises(ModelNotFoundError, match="could not be loaded.*HF_HUB_OFFLINE"):
        TransformersBackend(model="someone/not-cached-vlm", device="cpu")
    assert calls == []


def test_local_directory_is_not_checked(monkeypatch, tmp_path):
    from memeatlas.hub import plan_load

    calls: list = []
    _no_hub(monkeypatch, calls)
    assert plan_load(str(tmp_path)) == (False, None) and calls == []


def test_library_bars_follow_no_progress(monkeypatch):
    from transformers.utils import logging as hf_logging

    from memeatlas import progress
    from memeatlas.hub import plan_load

    hf_logging.enable_progress_bar()
    monkeypatch.setattr(progress, "_ENABLED", False)
    plan_load("/")
    assert not hf_logging.is_progress_bar_enabled()
    hf_logging.enable_progress_bar()


_EMBED_CHILD = """
import sys, time
from memeatlas.embed import TextEmbedConfig, embed_text
import importlib
R = importlib.import_module("memeatlas.embed.run")
from memeatlas.store import Store
real = R.write_vectors
calls = []
def write(*a, **k):
    real(*a, **k)
    calls.append(1)
    print("COMMIT", len(calls), flush=True)
    if len(calls) == 2:
        time.sleep(600)  # killed here, after two committed chunks
R.write_vectors = write
embed_text(Store.open(sys.argv[1]), TextEmbedConfig(fields=("description",), batch_size=2,
                                                    commit_every=2))
"""


@pytest.mark.slow
def test_sigkill_during_embed_keeps_committed_chunks(db_path, tmp_path):
    """A real SIGKILL mid-embed: committed chunks survive, the re-run does the rest once."""
    import os
    import signal
    import subprocess
    import sys

    from memeatlas.embed import TextEmbedConfig, embed_text
    from memeatlas.store import Store

    with Store.open(db_path) as st:
        ids = add_memes(st, 7)
        for i, mid in enumerate(ids):
            st.execute("INSERT INTO annotations (meme_id, annotator, prompt_hash, schema_hash, "
                       "description) VALUES (?, 'human:t', '', '', ?)", [mid, f"meme text {i}"])
    env = dict(os.environ, MEMEATLAS_NO_PROGRESS="1")
    proc = subprocess.Popen([sys.executable, "-c", _EMBED_CHILD, str(db_path)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if line.startswith("COMMIT 2"):
                break
        else:
            pytest.fail(f"child ended early: {proc.stderr.read()[-2000:]}")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    with Store.open(db_path) as st:
        assert st.scalar("SELECT count(*) FROM embeddings") == 4
        s = embed_text(st, TextEmbedConfig(fields=("description",), batch_size=2))
        assert (s.skipped_existing, s.embedded) == (4, 3)
        assert st.scalar("SELECT count(DISTINCT meme_id) FROM embeddings") == 7


def test_migration_marks_old_unfinished_caption_runs(db_path):
    from memeatlas.store import Store

    with Store.open(db_path, migrate_to=5) as old:
        for rid, end in (("old-done", "now()"), ("old-dead", "NULL")):
            old.execute("INSERT INTO caption_runs (run_id, backend, model, annotator, prompt_hash, "
                        f"schema_hash, started_at, finished_at) VALUES (?, 'b', 'm', 'a', 'p', 's', "
                        f"now(), {end})", [rid])
    with Store.open(db_path) as new:
        assert dict(new.fetchall("SELECT run_id, status FROM caption_runs")) == {
            "old-done": "finished", "old-dead": "interrupted"}


def test_cluster_summary_counts_memes_not_in_the_run(store, db_path):
    from helpers_cluster import synthetic_store

    synthetic_store(store, n_per=10, n_clusters=2, dim=8)
    add_memes(store, 4, prefix="unembedded")
    store.close()
    r = CliRunner().invoke(app, ["cluster", "--space", "text:synthetic", "--algorithm", "kmeans",
                                 "--k", "2", "--no-layout", "--db", str(db_path)])
    assert r.exit_code == 0, r.output
    assert "left out" in r.output and "4 (4 not embedded in text:synthetic)" in r.output


@pytest.mark.parametrize("body", ['"unterminated,x,connotative,2\n', "p,c,connotative," + "9" * 200_000 + "\n"])
def test_ratings_csv_that_cannot_be_parsed_is_one_error(store, pair_set, tmp_path, body):
    from memeatlas.evaluate import import_ratings

    f = tmp_path / "bad.csv"
    f.write_text("pair_id,coder,dimension,rating\n" + body)
    with pytest.raises(InputError, match="cannot parse as CSV"):
        import_ratings(store, f, pair_set="ps")
    assert store.scalar("SELECT count(*) FROM ratings") == 0


@pytest.mark.slow
def test_real_template_images_left_out_is_counted(store, tmp_path):
    """Issue 16's case on real data: OCR of template images (most carry no text), then embed
    ocr_text: every meme is either embedded or counted as left out with its reason."""
    import shutil

    from memeatlas.caption import CaptionConfig, run
    from memeatlas.embed import TextEmbedConfig, embed_text
    from memeatlas.ingest import ingest_paths
    from memeatlas.testing.shared_data import require_shared

    src = require_shared("template-images", "imgflip")
    d = tmp_path / "t"
    d.mkdir()
    for f in sorted(src.iterdir())[:8]:
        shutil.copy(f, d / f.name)
    ingest_paths(store, [d])
    add_memes(store, 2, prefix="textless")  # image-less memes: caption leaves them out
    store.execute("UPDATE memes SET has_image = false, path = NULL WHERE path LIKE '/data/%'")
    cs = run(store, CaptionConfig(backend="ocr"))
    assert cs.n_done + cs.n_failed == 8 and cs.left_out == {"no image": 2}
    es = embed_text(store, TextEmbedConfig(fields=("ocr_text",), annotator=cs.annotator))
    assert es.embedded + sum(es.left_out.values()) == 10
    assert es.left_out.get("no annotation by ocr:rapidocr") == 2
    assert es.left_out.get("empty ocr_text", 0) == 8 - es.embedded


def test_missing_local_path_is_not_looked_up_on_the_hub(monkeypatch, tmp_path):
    from memeatlas.hub import is_hub_id, plan_load

    calls: list = []
    _no_hub(monkeypatch, calls)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for path in (str(tmp_path / "no" / "model"), "./models/x", "../m"):
        assert not is_hub_id(path) and plan_load(path) == (False, None)
    assert is_hub_id("Qwen/Qwen2.5-VL-3B-Instruct") and calls == []
