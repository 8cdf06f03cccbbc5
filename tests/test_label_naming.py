"""label's LLM naming through an OpenAI-compatible server: loud failures, partial runs redone."""

from __future__ import annotations

import json

import helpers_caption
import pytest
from helpers_cluster import add_memes, add_space, blobs, meme_id
from helpers_server import QuirkServer, free_port

from memeatlas.cluster import ClusterConfig, LabelConfig, label, run
from memeatlas.errors import BackendError

tiny_qwen_dir = helpers_caption.tiny_qwen_dir
tiny_backend = helpers_caption.tiny_backend


@pytest.fixture
def clustered(store):
    words = ["cat kitten meow box", "car traffic engine road", "pizza cheese slice oven"]
    x, y = blobs(6, 3, dim=16, seed=2)
    ids = [meme_id(3000 + i) for i in range(len(y))]
    add_memes(store, ids, texts=[f"{words[c]} number {i}" for i, c in enumerate(y)],
              annotator="human:test")
    add_space(store, "text:description", ids, x, annotator="human:test",
              params={"recipe": {"annotator": "human:test", "fields": ["description"],
                                 "template": None}})
    [rid] = run(store, ClusterConfig(spaces=["text:description"], algorithm="kmeans", k=3,
                                     layout=False))
    return store, rid


def _cfg(rid, url, **kw):
    return LabelConfig(run_id=rid, llm_backend="openai", llm_model="tiny-qwen",
                       llm_options={"base_url": url, "api_key_env": "MEMEATLAS_TEST_KEY",
                                    "concurrency": 1, "backoff": 0.01, **kw.pop("opts", {})},
                       llm_max_new_tokens=24, **kw)


def test_partly_named_run_is_reported_and_redone_not_skipped(clustered, tiny_backend,
                                                             monkeypatch):
    from helpers_server import SECRET

    monkeypatch.setenv("MEMEATLAS_TEST_KEY", SECRET)
    store, rid = clustered
    # Request 1 is the format probe (json_schema taken), 2-4 the three names (one at a time):
    # the second is refused after the first succeeded, so only that cluster keeps its keyword
    # label. The strict form: xgrammar holds the random model to the name's pattern, which
    # every stored name must keep (a friendly-form server's random names would be refused).
    with QuirkServer(tiny_backend, "openai", plan={3: 400}) as srv:
        s = label(store, _cfg(rid, srv.url))
        rows = store.fetchall("SELECT labeler, params FROM cluster_labels WHERE run_id = ? AND "
                              "cluster >= 0 ORDER BY cluster", [rid])
        assert (s.n_named, s.n_name_failed) == (2, 1) and "injected failure" in s.name_error
        assert sorted(r[0].split("@")[0] for r in rows) == ["bertopic", "bertopic+tiny-qwen",
                                                            "bertopic+tiny-qwen"]
        dec = json.loads(rows[0][1])["llm_decoding"]
        assert dec["response_format"] == "json_schema" and dec["schema_form"] == "strict"
        again = label(store, _cfg(rid, srv.url))  # not skipped: one cluster lacks its name
    assert not again.skipped and (again.n_named, again.n_name_failed) == (3, 0)
    assert label(store, _cfg(rid, "http://127.0.0.1:9/v1")).skipped  # complete now: skipped


def test_naming_that_fails_everywhere_raises_and_keeps_the_labels(clustered, tiny_backend,
                                                                 monkeypatch):
    store, rid = clustered
    label(store, LabelConfig(run_id=rid))
    before = store.fetchall("SELECT cluster, label, labeler FROM cluster_labels WHERE "
                            "run_id = ? ORDER BY cluster", [rid])
    with pytest.raises(BackendError, match="cannot connect"):
        label(store, _cfg(rid, f"http://127.0.0.1:{free_port()}/v1"))
    monkeypatch.delenv("MEMEATLAS_TEST_KEY", raising=False)
    with QuirkServer(tiny_backend, "openai") as srv, pytest.raises(BackendError, match="401"):
        label(store, _cfg(rid, srv.url))
    after = store.fetchall("SELECT cluster, label, labeler FROM cluster_labels WHERE "
                           "run_id = ? ORDER BY cluster", [rid])
    assert after == before
