"""Lexical spaces for classifiers: character n-gram TF-IDF → LSA of the meme text, fitted with the model.

A space named ``lexical:FIELDS`` (``lexical:ocr_text``, ``lexical:description+intent``, optionally
``@ANNOTATOR``) is not read from `embeddings`: `classify train` builds the text from those
annotation fields (as `embed text` does), fits sublinear TF-IDF over character 2–5-grams within
words and a truncated SVD (LSA) on the labelled memes, and stores the fitted transform inside the
model; `predict` and `evaluate` apply it to new memes. Character n-grams catch what sentence
encoders smooth away — spelling variants and the formulaic phrases of a template ("one does not
simply", "y u no") — and add to a sentence-encoder space (measured in benchmarks/results/classify.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from memeatlas.errors import InputError

PREFIX = "lexical:"
N_COMPONENTS = 256


def is_lexical(space: str) -> bool:
    return space.startswith(PREFIX)


def parse(space: str) -> tuple[tuple[str, ...], str | None]:
    """'lexical:ocr_text+intent@human:x' → (('ocr_text', 'intent'), 'human:x')."""
    body = space[len(PREFIX):]
    fields, _, annotator = body.partition("@")
    names = tuple(f.strip() for f in fields.replace(",", "+").split("+") if f.strip())
    if not names:
        raise InputError(f"space {space!r}: name the annotation fields, e.g. lexical:ocr_text")
    return names, (annotator or None)


def texts_for(store, space: str, meme_ids: Sequence[str], annotator: str | None = None
              ) -> tuple[dict[str, str], str]:
    """(meme_id → text of the space's fields, annotator) for the memes annotated with them.

    `annotator` (the one a model was trained on) overrides the choice, so new annotators added
    after training do not change what a stored model reads.
    """
    from memeatlas.corpus.texts import annotation_texts, choose_annotator

    fields, named = parse(space)
    who = choose_annotator(store, fields, annotator or named, list(meme_ids))
    items, _ = annotation_texts(store, who, fields, meme_ids=list(meme_ids))
    return {m: t for m, t in items if t.strip()}, who


class LexicalTransform:
    """Fitted char n-gram TF-IDF + LSA; rows L2-normalised float32."""

    def __init__(self, n_components: int = N_COMPONENTS, seed: int = 0) -> None:
        self.n_components = n_components
        self.seed = seed

    def fit(self, texts: list[str]) -> LexicalTransform:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True,
                                   min_df=2 if len(texts) >= 50 else 1, lowercase=True)
        X = self.vec.fit_transform(texts)
        k = max(1, min(self.n_components, X.shape[1] - 1, X.shape[0] - 1))
        self.svd = TruncatedSVD(k, random_state=self.seed)
        self.svd.fit(X)
        self.dim = k
        return self

    def transform(self, texts: list[str]) -> np.ndarray:
        Z = self.svd.transform(self.vec.transform(texts))
        return (Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-9)).astype(np.float32)

    def describe(self) -> dict:
        return {"kind": "char_wb 2-5 tfidf + lsa", "dim": self.dim, "annotator": getattr(self, "annotator", None), "vocabulary": len(self.vec.vocabulary_),
                "explained_variance": round(float(self.svd.explained_variance_ratio_.sum()), 4)}


def load_inputs(store, spaces: Sequence[str], meme_ids: Sequence[str], *,
                fitted: dict[str, LexicalTransform] | None = None, seed: int = 0
                ) -> tuple[list[str], list[np.ndarray], dict[str, LexicalTransform]]:
    """(ids, one matrix per space, fitted lexical transforms) for the memes present in every space.

    Stored spaces come from `embeddings`; lexical ones are computed from annotation text, fitting
    their transform on these memes unless `fitted` holds it (prediction).
    """
    from memeatlas.corpus.vectors import load_aligned

    stored = [s for s in spaces if not is_lexical(s)]
    ids = sorted(set(meme_ids))
    by_space: dict[str, np.ndarray] = {}
    if stored:
        ids, mats = load_aligned(store, stored, meme_ids=ids)
        by_space = dict(zip(stored, mats, strict=True))
    texts: dict[str, dict[str, str]] = {}
    who: dict[str, str] = {}
    for s in spaces:
        if is_lexical(s):
            known = getattr((fitted or {}).get(s), "annotator", None)
            texts[s], who[s] = texts_for(store, s, ids, known)
    if texts:
        keep = set(ids)
        for t in texts.values():
            keep &= set(t)
        if not keep:
            raise InputError(f"no meme has text for {', '.join(texts)}" + (" and vectors in " + ", ".join(stored)
                                                                            if stored else ""))
        pos = {m: i for i, m in enumerate(ids)}
        new_ids = sorted(keep)
        rows = [pos[m] for m in new_ids]
        by_space = {s: m[rows] for s, m in by_space.items()}
        ids = new_ids
    fitted = dict(fitted or {})
    for s, t in texts.items():
        docs = [t[m] for m in ids]
        if s not in fitted:
            fitted[s] = LexicalTransform(seed=seed).fit(docs)
            fitted[s].annotator = who[s]
        by_space[s] = fitted[s].transform(docs)
    return ids, [by_space[s] for s in spaces], fitted
