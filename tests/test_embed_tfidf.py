"""The model-free TF-IDF + LSA text space (`embed text --model tfidf-lsa`), fitted on the corpus."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers_cluster import add_memes, meme_id
from sklearn.metrics import adjusted_rand_score
from typer.testing import CliRunner

from memeatlas.cli import app
from memeatlas.cluster import ClusterConfig, get_run, run
from memeatlas.embed import TextEmbedConfig, embed_text, get_space, load_space
from memeatlas.errors import InputError

TOPICS = {
    0: "cat sleeping on the keyboard while owner works from home",
    1: "football fans celebrate the goal in the stadium tonight",
    2: "student panics before the final exam deadline at midnight",
}
FILLER = ["really", "again", "honestly", "today", "somehow", "literally", "always", "finally"]


def _corpus(n_per: int = 20) -> tuple[list[str], list[str], np.ndarray]:
    rng = np.random.default_rng(0)
    ids, texts, y = [], [], []
    for c, base in TOPICS.items():
        words = base.split()
        for i in range(n_per):
            pick = rng.choice(len(words), size=len(words) - 2, replace=False)
            extra = rng.choice(FILLER, size=2)
            texts.append(" ".join([words[j] for j in sorted(pick)] + list(extra)))
            ids.append(meme_id(100 * c + i))
            y.append(c)
    return ids, texts, np.array(y)


@pytest.fixture
def corpus(store):
    ids, texts, y = _corpus()
    add_memes(store, ids, texts)
    return store, ids, texts, y


def test_tfidf_lsa_space_is_fitted_with_provenance_and_skips_reruns(corpus):
    store, ids, texts, y = corpus
    s = embed_text(store, TextEmbedConfig(fields=("description",), model="tfidf-lsa:8"))
    assert s.space == "text:description:tfidf-lsa" and s.embedded == len(ids) and s.dim == 8
    info = get_space(store, s.space)
    assert info.model == "tfidf-lsa:8" and info.kind == "text"
    p = info.params
    assert p["method"] == "tfidf-lsa" and p["n_components"] == 8 and p["n_docs"] == len(ids)
    assert p["vocabulary_size"] > 10 and 0 < p["explained_variance"] <= 1
    assert p["tfidf"]["sublinear_tf"] is True and len(p["corpus_hash"]) == 32
    assert "scikit-learn" in info.software
    got_ids, x = load_space(store, s.space)
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    # The same corpus again: nothing refitted.
    again = embed_text(store, TextEmbedConfig(fields=("description",), model="tfidf-lsa:8"))
    assert again.embedded == 0 and again.skipped_existing == len(ids)
    # One changed text: the whole space is refitted (every vector depends on the corpus).
    store.execute("UPDATE annotations SET description = 'a completely new caption about dogs' "
                  "WHERE meme_id = ?", [ids[0]])
    refit = embed_text(store, TextEmbedConfig(fields=("description",), model="tfidf-lsa:8"))
    assert refit.embedded == len(ids)
    assert get_space(store, s.space).params["corpus_hash"] != p["corpus_hash"]


def test_tfidf_lsa_clusters_topics_inside_memeatlas(corpus):
    store, ids, _, y = corpus
    s = embed_text(store, TextEmbedConfig(fields=("description",), model="tfidf-lsa"))
    assert s.dim < 100  # capped below the number of terms
    [rid] = run(store, ClusterConfig(spaces=[s.space], algorithm="kmeans", k=3, layout=False))
    df = get_run(store, rid)
    pos = {m: i for i, m in enumerate(ids)}
    assert adjusted_rand_score(y[[pos[m] for m in df["meme_id"]]], df["cluster"]) >= 0.95


def test_tfidf_lsa_errors(corpus):
    store, *_ = corpus
    with pytest.raises(InputError, match="tfidf-lsa:N"):
        embed_text(store, TextEmbedConfig(fields=("description",), model="tfidf-lsa:x"))
    from memeatlas.embed.tfidf import fit_transform

    with pytest.raises(InputError, match="no usable words"):
        fit_transform(["the a", "of to", "is it"])


def test_cli_embed_text_tfidf_lsa(corpus, db_path):
    store, ids, *_ = corpus
    store.close()
    res = CliRunner().invoke(app, ["embed", "text", "--fields", "description", "--model",
                                   "tfidf-lsa:6", "--db", str(db_path), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout[res.stdout.index("{"):])
    assert out["space"] == "text:description:tfidf-lsa" and out["embedded"] == len(ids)
    assert out["model"] == "tfidf-lsa:6" and out["dim"] == 6
