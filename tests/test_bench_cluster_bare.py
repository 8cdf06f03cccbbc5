"""benchmarks/cluster_bare.py reads real captions (skipped without ../shared/data)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

from memeatlas.testing.shared_data import require_shared

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "cluster_bare.py"


def _bench():
    spec = importlib.util.spec_from_file_location("cluster_bare_bench", BENCH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_caption_text_is_title_then_boxes():
    b = _bench()
    assert b.caption_text({"title": "Y U No", "boxes": ["A", "", "B"]}) == "Y U No\nA\nB"
    assert b.caption_text({"title": None, "boxes": []}) == ""


def test_real_captions_are_a_distinct_prefix_of_the_200k_file():
    require_shared("imgflip", "captions-200k.jsonl.gz")
    b = _bench()
    texts, templates = b.real_captions(500)
    assert len(texts) == len(set(texts)) == len(templates) == 500
    short, short_t = b.real_captions(100)
    assert short == texts[:100] and list(short_t) == list(templates[:100])  # caches reuse rows
    assert all(t.strip() for t in texts)


def test_real_vectors_are_cached_outside_the_repository(tmp_path, monkeypatch):
    require_shared("imgflip", "captions-200k.jsonl.gz")
    b = _bench()
    monkeypatch.setattr(b, "REAL_CACHE", tmp_path)
    monkeypatch.setattr(b, "CHUNK", 4)

    class Enc:
        def encode(self, texts, batch_size=64):
            return np.ones((len(texts), 3), dtype=np.float32)

    import memeatlas.embed.text as text_mod
    monkeypatch.setattr(text_mod, "get_text_encoder", lambda model=None: Enc())
    x, templates = b.real_vectors(10)
    assert x.shape == (10, 3) and len(templates) == 10
    assert (tmp_path / "captions200k-minilm-10.npy").exists()
    assert len(list((tmp_path / "captions200k-minilm-chunks").glob("*.npy"))) == 3
