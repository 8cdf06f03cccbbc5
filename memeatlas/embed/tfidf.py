"""The model-free text space: TF-IDF + LSA, fitted on the corpus (`embed text --model tfidf-lsa`).

The surface baseline of the Meme-Context-Clustering project: sublinear TF-IDF over words
(Unicode-aware tokens, English stop words removed, terms in ≥ 2 documents when there are 50 or
more), reduced by truncated SVD (latent semantic analysis) to `n_components` dimensions
(default 100; `--model tfidf-lsa:N` for N) and L2-normalised. No weights are downloaded.

Unlike a sentence encoder, every vector depends on the whole corpus, so the space is refitted
as a whole: a re-run with the same texts (the corpus hash over every meme id and text hash,
plus the parameters) skips; any added or changed text refits and replaces every vector.
The vocabulary size, explained variance and corpus hash are stored in the space's params.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from memeatlas.errors import InputError

MODEL = "tfidf-lsa"
DEFAULT_COMPONENTS = 100
RECIPE_VERSION = 1


def is_tfidf(model: str | None) -> bool:
    """Whether a --model value names the TF-IDF + LSA space."""
    return bool(model) and (model == MODEL or model.startswith(MODEL + ":"))


def parse_model(model: str) -> int:
    """`tfidf-lsa` → 100 components; `tfidf-lsa:N` → N."""
    if model == MODEL:
        return DEFAULT_COMPONENTS
    tail = model.split(":", 1)[1]
    try:
        n = int(tail)
    except ValueError:
        raise InputError(f"--model {model!r}: expected tfidf-lsa or tfidf-lsa:N with N the "
                         f"number of LSA dimensions, e.g. tfidf-lsa:100") from None
    if n < 2:
        raise InputError(f"--model {model!r}: need at least 2 LSA dimensions")
    return n


def tfidf_params(n_docs: int) -> dict[str, Any]:
    """The vectoriser's settings for a corpus of n_docs texts (recorded with the space)."""
    return {"sublinear_tf": True, "stop_words": "english", "token_pattern": r"(?u)\b\w\w+\b",
            "lowercase": True, "min_df": 2 if n_docs >= 50 else 1, "max_df": 0.95 if
            n_docs >= 50 else 1.0, "ngram_range": [1, 1], "norm": "l2"}


def fit_transform(texts: list[str], n_components: int = DEFAULT_COMPONENTS, seed: int = 0
                  ) -> tuple[np.ndarray, dict[str, Any]]:
    """(L2-normalised float32 [n, d], fit info) for the texts; d ≤ n_components.

    d is capped below the number of documents and of vocabulary terms (truncated SVD needs
    fewer components than either).
    """
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    n = len(texts)
    p = tfidf_params(n)
    vec = TfidfVectorizer(sublinear_tf=p["sublinear_tf"], stop_words=p["stop_words"],
                          token_pattern=p["token_pattern"], lowercase=p["lowercase"],
                          min_df=p["min_df"], max_df=p["max_df"],
                          ngram_range=tuple(p["ngram_range"]), norm=p["norm"])
    try:
        m = vec.fit_transform(texts)
    except ValueError as exc:  # empty vocabulary: only stop words / one-letter tokens
        raise InputError(f"tfidf-lsa: no usable words in the {n} texts ({exc}); embed other "
                         f"fields or use a sentence-transformers model") from None
    d = int(min(n_components, m.shape[1] - 1, n - 1))
    if d < 2:
        raise InputError(f"tfidf-lsa needs at least 3 texts and 3 distinct words; got {n} "
                         f"texts and {m.shape[1]} terms")
    svd = TruncatedSVD(n_components=d, algorithm="randomized", n_iter=7, random_state=seed)
    z = svd.fit_transform(m)
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    # A text whose words were all dropped (stop words, rare terms) has a zero row: give it a
    # fixed unit vector rather than NaN so it is stored and visibly lands on its own.
    zero = norms[:, 0] == 0
    z = z / np.where(norms == 0, 1.0, norms)
    if zero.any():
        z[zero] = 0.0
        z[zero, -1] = 1.0
    info = {"tfidf": p, "vocabulary_size": int(m.shape[1]), "n_components": d,
            "requested_components": int(n_components),
            "explained_variance": round(float(svd.explained_variance_ratio_.sum()), 6),
            "n_docs": n, "empty_after_tokenising": int(zero.sum()), "seed": seed}
    return np.ascontiguousarray(z, dtype=np.float32), info


def embed_tfidf(store, cfg) -> Any:
    """`embed_text` for --model tfidf-lsa: select texts as usual, fit, replace the space."""
    from memeatlas import progress
    from memeatlas.corpus import texts as T
    from memeatlas.corpus.spaces import check_model, prepare_space, write_vectors
    from memeatlas.embed.config import EmbedSummary
    from memeatlas.embed.summary import TEXT_RECIPE_VERSION
    from memeatlas.embed.summary import finish as _finish
    from memeatlas.provenance import short_hash, software

    t0 = time.perf_counter()
    n_components = parse_model(cfg.model)
    model_name = cfg.model
    fields, annotator, default_space = T.text_recipe(store, cfg)
    space = cfg.space or default_space + ":" + MODEL
    info = check_model(store, space, model_name, force=cfg.force,
                       replace=cfg.replace_space)
    rows, missing = T.annotation_texts(store, annotator, fields, cfg.template,
                                       meme_ids=cfg.meme_ids, limit=cfg.limit)
    summary = EmbedSummary(space=space, kind="text", model=model_name, dim=0,
                           annotator=annotator, candidates=len(rows),
                           skipped_no_annotation=missing)
    items = [(m, t) for m, t in rows if t]
    summary.skipped_empty = len(rows) - len(items)
    if not items:
        progress.info(f"nothing to embed: no annotation by {annotator} has text in "
                      f"{'/'.join(fields)}")
        return _finish(summary, store, t0)
    hashes = [short_hash(t) for _, t in items]
    corpus = short_hash({"ids": [m for m, _ in items], "texts": hashes,
                         "components": n_components, "version": RECIPE_VERSION}, 32)
    recipe = {"annotator": annotator, "fields": None if cfg.template else list(fields),
              "template": cfg.template, "text_version": TEXT_RECIPE_VERSION}
    if (info is not None and not cfg.force and info.params.get("corpus_hash") == corpus
            and info.params.get("recipe") == recipe and info.n == len(items)):
        summary.skipped_existing = len(items)
        return _finish(summary, store, t0)
    t = time.perf_counter()
    vecs, fit = fit_transform([t for _, t in items], n_components)
    summary.encode_seconds = time.perf_counter() - t
    summary.dim = vecs.shape[1]
    # A refit changes every vector (and maybe the dimension): the space is always replaced.
    prepare_space(store, space=space, kind="text", model=model_name, dim=summary.dim,
                  recipe=recipe, params={"method": MODEL, "normalize": "l2",
                                         "corpus_hash": corpus, **fit,
                                         "field_separator": "\\n"},
                  software=software("scikit-learn", "numpy"), force=True,
                  replace=cfg.replace_space)
    t = time.perf_counter()
    for a in range(0, len(items), 4096):
        write_vectors(store, space=space, model=model_name,
                      ids=[m for m, _ in items[a:a + 4096]], vectors=vecs[a:a + 4096],
                      input_hashes=hashes[a:a + 4096], annotator=annotator)
    summary.write_seconds = time.perf_counter() - t
    summary.embedded = len(items)
    return _finish(summary, store, t0)
