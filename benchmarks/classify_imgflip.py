"""Benchmark: classify ImgFlip memes by template from their text (../shared/data/imgflip).

    python benchmarks/classify_imgflip.py [--train-per-class 30] [--test-per-class 10]
        [--title-per-class 5] [--tune] [--epochs 1] [--seed 0]

A seeded sample per template (88 templates): TRAIN memes, disjoint TEST memes (box text, same
source) and TITLE memes whose title is written by the poster (not the template's name) and share
no meme with TRAIN. Text = the caption boxes joined by newlines (what OCR of the meme reads).

(a) 5-fold CV macro-F1 of each head on the TRAIN box text (MiniLM, bundled weights);
(b) cross-source: fitted on all TRAIN box text, scored on TEST box text and on TITLE titles;
(c) with --tune, the same after metric learning (`memeatlas.classify.metric.fine_tune`, MNRL with
    same-class positives) on the TRAIN box text only, and the fine-tuning time per 1,000 examples.
Embeddings are cached in benchmarks/out/classify-cache/ (keyed by model and texts).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MEMEATLAS_NO_PROGRESS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from memeatlas.classify.heads import make_head  # noqa: E402
from memeatlas.classify.heads.base import balanced_class_weight  # noqa: E402
from memeatlas.classify.metrics import score  # noqa: E402
from memeatlas.classify.train import class_name_text, cross_validate  # noqa: E402
from memeatlas.testing.shared_data import shared_path  # noqa: E402

CACHE = ROOT / "benchmarks" / "out" / "classify-cache"
HEADS = [("linear", {}), ("knn", {}), ("knn", {"k": 5}), ("knn", {"k": 5, "top_k": 5}),
         ("adapter", {}), ("mlp", {})]


def _norm(s: str) -> str:
    return re.sub(r"[^a-z0-9]", "", s.lower())


def _data() -> Path:
    p = shared_path("imgflip", "captions.jsonl.gz")
    if p is None or not p.exists():
        sys.exit("../shared/data/imgflip/captions.jsonl.gz not found (see memeatlas.testing.shared_data)")
    return p


def load(train_n: int, test_n: int, title_n: int, seed: int):
    rows = [json.loads(line) for line in gzip.open(_data())]
    rng = random.Random(seed)
    by: dict[str, list[dict]] = {}
    for r in rows:
        text = "\n".join(b.strip() for b in r["boxes"] if b and b.strip())
        if text:
            by.setdefault(r["template"], []).append({**r, "text": text})
    train, test, title = [], [], []
    for t in sorted(by):
        items = by[t][:]
        rng.shuffle(items)
        own = [r for r in items if _norm(r["title"]) and _norm(t) not in _norm(r["title"])
               and _norm(r["title"]) not in _norm(t)]
        own_ids = {id(r) for r in own[:title_n]}
        rest = [r for r in items if id(r) not in own_ids]
        title += [(r["title"], t) for r in own[:title_n]]
        train += [(r["text"], t) for r in rest[:train_n]]
        test += [(r["text"], t) for r in rest[train_n:train_n + test_n]]
    return train, test, title


def embed(texts: list[str], model: str | None, tag: str) -> np.ndarray:
    key = hashlib.sha256(json.dumps([tag, model, texts]).encode()).hexdigest()[:20]
    path = CACHE / f"{key}.npy"
    if path.exists():
        return np.load(path)
    from memeatlas.embed.text import TextEncoder

    t0 = time.perf_counter()
    X = TextEncoder(model).encode(texts, batch_size=64)
    print(f"  embedded {len(texts)} texts ({tag}) in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, X)
    return X


def lsa_space(train_texts: list[str], other: dict[str, list[str]], dim: int = 256, seed: int = 0,
              kind: str = "char"):
    """A lexical space fitted on TRAIN only: TF-IDF → LSA (TruncatedSVD) → L2 norm.

    kind 'char': character 2–5-grams within words; 'word': words, English stop words removed,
    terms in ≥ 2 documents (the recipe of `embed text --model tfidf-lsa`).
    """
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = (TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2) if kind == "char"
           else TfidfVectorizer(sublinear_tf=True, min_df=2, stop_words="english"))
    svd = TruncatedSVD(dim, random_state=seed)

    def norm(X):
        return (X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-9)).astype(np.float32)

    Xtr = norm(svd.fit_transform(vec.fit_transform(train_texts)))
    return Xtr, {k: norm(svd.transform(vec.transform(v))) for k, v in other.items()}


def run_heads(label: str, Xtr, ytr, sets, classes, names, seed, cv: bool, heads=HEADS):
    out = []
    C = len(classes)
    Xtr = Xtr if isinstance(Xtr, list) else [Xtr]
    names_l = [names] + [None] * (len(Xtr) - 1)
    for head, params in heads:
        t0 = time.perf_counter()
        cv_f1 = None
        if cv:
            oof = cross_validate(head, params, Xtr, ytr, C, folds=5, seed=seed, names=names_l)
            cv_f1 = score(ytr, oof.argmax(1), classes, bootstrap=0).macro_f1
        t_cv = time.perf_counter() - t0
        h = make_head(head, params)
        h.fit(Xtr, ytr, C, class_weight=balanced_class_weight(ytr, C), seed=seed, class_name_vectors=names_l)
        res = {"encoder": label, "head": head, "params": params, "cv_macro_f1": cv_f1, "cv_seconds": round(t_cv, 1)}
        for name, (X, y) in sets.items():
            X = X if isinstance(X, list) else [X]
            s = score(y, h.predict_proba(X).argmax(1), classes, bootstrap=500, seed=seed)
            res[name] = (s.macro_f1, *s.ci["macro_f1"])
        out.append(res)
        print(json.dumps(res), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-per-class", type=int, default=30)
    ap.add_argument("--test-per-class", type=int, default=10)
    ap.add_argument("--title-per-class", type=int, default=5)
    ap.add_argument("--tune", action="store_true")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--no-cv", action="store_true")
    ap.add_argument("--lsa", action="store_true", help="also MiniLM + a char-n-gram TF-IDF/LSA space")
    ap.add_argument("--lsa-kind", default="char", choices=("char", "word"))
    ap.add_argument("--lsa-dim", type=int, default=256)
    ap.add_argument("--skip-base", action="store_true", help="skip the MiniLM-only heads")
    ap.add_argument("--heads", default=None, help="head specs, e.g. 'linear,knn:k=5'")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    train, test, title = load(a.train_per_class, a.test_per_class, a.title_per_class, a.seed)
    classes = sorted({t for _, t in train})
    idx = {c: i for i, c in enumerate(classes)}
    print(f"{len(classes)} templates; train {len(train)}, test {len(test)}, titles {len(title)}", file=sys.stderr)
    ytr = np.array([idx[t] for _, t in train])
    sets_y = {"test_box": np.array([idx[t] for _, t in test]), "test_title": np.array([idx[t] for _, t in title])}
    texts = {"train": [x for x, _ in train], "test_box": [x for x, _ in test], "test_title": [x for x, _ in title]}
    name_texts = [class_name_text(c) for c in classes]

    def sets_for(model, tag):
        return {k: (embed(texts[k], model, f"{tag}:{k}"), sets_y[k]) for k in sets_y}

    heads = HEADS
    if a.heads:
        heads = []
        for spec in a.heads.split(","):
            name, _, ps = spec.partition(":")
            heads.append((name, dict(kv.split("=") for kv in ps.split(";") if kv)))
    Xtr = embed(texts["train"], None, "base:train")
    names = embed(name_texts, None, "base:names")
    base_sets = sets_for(None, "base")
    if not a.skip_base:
        run_heads("MiniLM", Xtr, ytr, base_sets, classes, names, a.seed, not a.no_cv, heads)
    if a.lsa:
        Ltr, Lsets = lsa_space(texts["train"], {k: texts[k] for k in sets_y}, dim=a.lsa_dim, seed=a.seed,
                               kind=a.lsa_kind)
        lsa_name = f"{a.lsa_kind} TF-IDF/LSA-{a.lsa_dim}"
        run_heads(f"MiniLM + {lsa_name}", [Xtr, Ltr],
                  ytr, {k: ([base_sets[k][0], Lsets[k]], sets_y[k]) for k in sets_y}, classes, names, a.seed,
                  not a.no_cv, heads)
    if a.tune:
        from memeatlas.classify.metric import fine_tune

        out = ROOT / "benchmarks" / "out" / f"tuned-{a.train_per_class}-{a.epochs}-{a.seed}"
        if not (out / "modules.json").exists():
            model, steps, sec = fine_tune(texts["train"], [t for _, t in train], epochs=a.epochs, batch_size=32,
                                          seed=a.seed)
            model.save(str(out))
            n = a.epochs * len(train)
            print(json.dumps({"metric_learning": {"examples": len(train), "epochs": a.epochs, "steps": steps,
                                                  "seconds": round(sec, 1),
                                                  "seconds_per_1000": round(1000 * sec / n, 1)}}), flush=True)
        tag = f"tuned{a.train_per_class}-{a.epochs}-{a.seed}"
        Xtr2 = embed(texts["train"], str(out), f"{tag}:train")
        names2 = embed(name_texts, str(out), f"{tag}:names")
        # CV on the tuned encoder would leak (it saw every TRAIN label): cross-source scores only.
        tuned_sets = sets_for(str(out), tag)
        run_heads("MiniLM + metric learning", Xtr2, ytr, tuned_sets, classes, names2, a.seed, False, heads)
        if a.lsa:
            run_heads(f"MiniLM + metric learning + {lsa_name}", [Xtr2, Ltr], ytr,
                      {k: ([tuned_sets[k][0], Lsets[k]], sets_y[k]) for k in sets_y}, classes, names2, a.seed,
                      False, heads)


if __name__ == "__main__":
    main()
