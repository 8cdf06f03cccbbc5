"""Metric learning: fine-tuning the bundled MiniLM on labelled memes pulls same-class texts together."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers_classify import write_labels_csv
from helpers_embed import add_annotation, add_meme, meme_id_for
from test_classify import TOPICS, cli

from memeatlas.store import Store


def _gap(X: np.ndarray, y: np.ndarray) -> float:
    """Mean same-class cosine minus mean different-class cosine (rows normalised)."""
    S = X @ X.T
    same = y[:, None] == y[None, :]
    off = ~np.eye(len(y), dtype=bool)
    return float(S[same & off].mean() - S[~same].mean())


@pytest.mark.slow
def test_tune_encoder_raises_same_class_similarity(tmp_path, monkeypatch):
    import torch

    # One intra-op thread: on a small shared CI machine two threads are slower for this model.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    try:
        _run(tmp_path)
    finally:
        monkeypatch.undo()
        torch.set_num_threads(old)


def _run(tmp_path):
    db = tmp_path / "t.duckdb"
    rows = []
    with Store.open(db) as s:
        for c, texts in TOPICS.items():
            for i, t in enumerate(texts):
                m = meme_id_for(f"{c}:{i}")
                add_meme(s, m)
                add_annotation(s, m, "human:test", prompt_hash="", schema_hash="", ocr_text=t)
                rows.append((m, "ana", c))
    write_labels_csv(tmp_path / "l.csv", rows, header=("meme_id", "coder", "label"))
    assert cli(db, "classify", "import-labels", str(tmp_path / "l.csv"), "--task", "topic").exit_code == 0
    out = tmp_path / "tuned"
    r = cli(db, "classify", "tune-encoder", "--task", "topic", "--out", str(out), "--fields", "ocr_text",
            "--epochs", "2", "--batch-size", "8", "--lr", "5e-5")
    assert r.exit_code == 0, r.output
    assert (out / "memeatlas-encoder.json").is_file()
    for space, model in (("text:base", None), ("text:tuned", str(out))):
        args = ["embed", "text", "--fields", "ocr_text", "--space", space] + (["--model", model] if model else [])
        r = cli(db, *args)
        assert r.exit_code == 0, r.output
    from memeatlas.embed import load_space

    with Store.open(db) as s:
        lab = dict(s.fetchall("SELECT meme_id, label FROM class_labels"))
        gaps = {}
        for space in ("text:base", "text:tuned"):
            ids, X = load_space(s, space)
            gaps[space] = _gap(X, np.array([lab[m] for m in ids]))
        enc = s.fetch_dict("SELECT * FROM text_encoders")
    assert gaps["text:tuned"] > gaps["text:base"] + 0.05, gaps
    assert enc["task"] == "topic" and enc["loss"] == "mnrl" and enc["n_examples"] == 24
    assert json.loads(enc["params"])["steps"] > 0
