"""`embed_text` and `embed_image`: select inputs, skip what is stored, encode, commit per batch."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from memeatlas import progress
from memeatlas.corpus import texts as T
from memeatlas.corpus.spaces import (
    check_model,
    check_recipe,
    prepare_space,
    stored_inputs,
    write_vectors,
)
from memeatlas.embed.config import EmbedSummary, ImageEmbedConfig, TextEmbedConfig
from memeatlas.embed.summary import TEXT_RECIPE_VERSION
from memeatlas.embed.summary import finish as _finish
from memeatlas.errors import InputError
from memeatlas.provenance import short_hash, software

_MAX_FAILURES_KEPT = 20


def _chunks(n: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, size):
        yield start, min(n, start + size)


def _commit_size(commit_every: int, batch_size: int) -> int:
    """Round the commit size up to whole encode batches, so chunking never changes batching."""
    if batch_size < 1 or commit_every < 1:
        raise InputError("--batch-size and --commit-every must be at least 1")
    return max(1, -(-commit_every // batch_size)) * batch_size


def _plan(items: Sequence[tuple[str, str]], stored: dict[str, tuple[str, str | None]],
          model: str, force: bool) -> tuple[list[tuple[str, str]], int, int]:
    """Split (meme_id, input_hash) items into (todo, changed, skipped_existing)."""
    todo, changed, skipped = [], 0, 0
    for meme_id, h in items:
        old = stored.get(meme_id)
        if old is not None and not force and old[0] == model and old[1] == h:
            skipped += 1
            continue
        if old is not None and old[1] != h:
            changed += 1
        todo.append((meme_id, h))
    return todo, changed, skipped


def _text_params(cfg: TextEmbedConfig, max_seq_length: int | None, device: str
                 ) -> dict[str, Any]:
    """How a text space's vectors were made (embedding_spaces.params, beside the recipe)."""
    return {"normalize": "l2", "batch_size": cfg.batch_size, "max_seq_length": max_seq_length,
            "field_separator": "\\n", "entity_format": "name (role): stands_for",
            "device": device}


def _image_params(cfg: ImageEmbedConfig, backend: str, device: str) -> dict[str, Any]:
    """How an image space's vectors were made (embedding_spaces.params, beside the recipe)."""
    return {"normalize": "l2", "backend": backend, "batch_size": cfg.batch_size,
            "device": device}


def embed_text(store, config: TextEmbedConfig) -> EmbedSummary:
    """Embed one text per meme (annotation fields or a template) into a text space.

    Skips memes whose stored vector came from the same model and the same text; re-embeds
    memes whose text changed (counted in `changed`); `force` re-embeds all. Commits every
    `commit_every` texts, so an interrupted run keeps what it finished.
    """
    from memeatlas.embed.tfidf import embed_tfidf, is_tfidf

    if is_tfidf(config.model):  # corpus-fitted TF-IDF + LSA: refitted as a whole (tfidf.py)
        return embed_tfidf(store, config)
    t0 = time.perf_counter()
    cfg = config
    fields, annotator, default_space = T.text_recipe(store, cfg)
    space = cfg.space or default_space
    from memeatlas.embed.text import resolve_text_model

    _, model_name = resolve_text_model(cfg.model)
    info = check_model(store, space, model_name, force=cfg.force,
                       replace=cfg.replace_space)  # fail before loading anything

    rows, missing = T.annotation_texts(store, annotator, fields, cfg.template,
                                       meme_ids=cfg.meme_ids, limit=cfg.limit)
    summary = EmbedSummary(space=space, kind="text", model=model_name, dim=0,
                           annotator=annotator, candidates=len(rows),
                           skipped_no_annotation=missing, fields=tuple(fields))
    text_of: dict[str, str] = {}
    items: list[tuple[str, str]] = []
    for meme_id, text in rows:
        if not text:
            summary.skipped_empty += 1
            continue
        text_of[meme_id] = text
        items.append((meme_id, short_hash(text)))
    recipe = {"annotator": annotator, "fields": None if cfg.template else list(fields),
              "template": cfg.template, "text_version": TEXT_RECIPE_VERSION}
    same_space = (info is not None and info.model == model_name
                  and info.params.get("recipe") == recipe)
    if info is not None and not cfg.force:
        check_recipe(info, recipe)
    stored = stored_inputs(store, space) if same_space else {}
    todo, summary.changed, summary.skipped_existing = _plan(items, stored, model_name, cfg.force)
    if not todo:
        if not items and rows:
            progress.info(f"nothing to embed: all {len(rows)} annotations by {annotator} have "
                          f"an empty {'/'.join(fields)}")
        return _finish(summary, store, t0)
    if cfg.engine != "local":  # the same to-do set and vectors, encoded on a cluster
        from memeatlas.embed.ray_job import run_embed_text

        run_embed_text(store, cfg, summary, todo=todo, text_of=text_of, space=space,
                       model_name=model_name, recipe=recipe, params=_text_params,
                       commit_size=_commit_size(cfg.commit_every, cfg.batch_size))
        return _finish(summary, store, t0)

    from memeatlas.embed.text import get_text_encoder

    t = time.perf_counter()
    enc = get_text_encoder(cfg.model, device=cfg.device)
    summary.load_seconds = time.perf_counter() - t
    summary.dim = enc.dim
    prepare_space(store, space=space, kind="text", model=model_name, dim=enc.dim, recipe=recipe,
                  params=_text_params(cfg, enc.max_seq_length, enc.device),
                  software=software("sentence-transformers", "transformers", "torch"),
                  force=cfg.force,
                  replace=cfg.replace_space)
    # Longest first, like SentenceTransformer.encode sorts internally: with commit chunks made of
    # whole batches, the batches are exactly those one encode() over everything would form.
    todo.sort(key=lambda it: -len(text_of[it[0]]))
    size = _commit_size(cfg.commit_every, cfg.batch_size)
    with progress.bar(total=len(todo), desc=f"embed {space}", unit="text") as bar:
        for a, b in _chunks(len(todo), size):
            part = todo[a:b]
            batch_texts = [text_of[m] for m, _ in part]
            t = time.perf_counter()
            vecs = enc.encode(batch_texts, batch_size=cfg.batch_size)
            t1 = time.perf_counter()
            write_vectors(store, space=space, model=model_name, ids=[m for m, _ in part],
                          vectors=vecs, input_hashes=[h for _, h in part], annotator=annotator)
            t2 = time.perf_counter()
            summary.encode_seconds += t1 - t
            summary.write_seconds += t2 - t1
            summary.truncated += enc.count_truncated(batch_texts)
            summary.embedded += len(part)
            bar.update(len(part))
    return _finish(summary, store, t0)


def _image_candidates(store, cfg: ImageEmbedConfig) -> list[tuple[str, str | None, bool]]:
    sql = "SELECT meme_id, path, has_image FROM memes"
    params: list[Any] = []
    if cfg.meme_ids is not None:
        sql += " WHERE meme_id IN (SELECT unnest(?::VARCHAR[]))"
        params.append(list(cfg.meme_ids))
    sql += " ORDER BY meme_id"
    if cfg.limit:
        sql += f" LIMIT {int(cfg.limit)}"
    return store.fetchall(sql, params)


def _load_all(paths: list[tuple[str, str]], max_pixels: int | None,
              pool: ThreadPoolExecutor, prep=None) -> list[tuple[str, Any, str | None]]:
    """(meme_id, image or None, error or None) for each path, decoded on worker threads.

    `prep` (the encoder's own per-image transform) runs on the same threads, so resizing and
    normalising overlap the model's forward pass instead of adding to it.
    """
    from memeatlas.imaging import load_image

    def one(item: tuple[str, str]) -> tuple[str, Any, str | None]:
        meme_id, path = item
        try:
            img = load_image(path, max_pixels=max_pixels)
            return meme_id, (prep(img) if prep else img), None
        except InputError as exc:
            return meme_id, None, str(exc)

    return list(pool.map(one, paths))


def embed_image(store, config: ImageEmbedConfig) -> EmbedSummary:
    """Embed each meme's image (CLIP / SigLIP) into the space `image:<model short name>`.

    Images go through `memeatlas.imaging.load_image` with the captioning pixel budget, on
    worker threads that decode the next batch while the model encodes this one. Memes without
    an image are skipped and counted; unreadable images are counted as failed.
    """
    from memeatlas.embed.image import model_short_name, resolve_image_model
    from memeatlas.imaging import DEFAULT_MAX_PIXELS

    t0 = time.perf_counter()
    cfg = config
    _, model_name = resolve_image_model(cfg.model)
    space = cfg.space or f"image:{model_short_name(model_name)}"
    info = check_model(store, space, model_name, force=cfg.force,
                       replace=cfg.replace_space)
    max_pixels = cfg.max_pixels if cfg.max_pixels is not None else DEFAULT_MAX_PIXELS
    recipe = {"max_pixels": max_pixels, "preprocess": "memeatlas.imaging.load_image"}
    if info is not None and not cfg.force:
        check_recipe(info, recipe)

    rows = _image_candidates(store, cfg)
    summary = EmbedSummary(space=space, kind="image", model=model_name, dim=0,
                           candidates=len(rows))
    items, path_of = [], {}
    for meme_id, path, has_image in rows:
        if not has_image or not path:
            summary.skipped_no_image += 1
            continue
        path_of[meme_id] = path
        items.append((meme_id, meme_id))  # meme_id is the SHA-256 of the image bytes
    same_space = info is not None and info.model == model_name
    stored = stored_inputs(store, space) if same_space else {}
    todo, summary.changed, summary.skipped_existing = _plan(items, stored, model_name, cfg.force)
    if not todo:
        return _finish(summary, store, t0)
    if cfg.engine != "local":
        from memeatlas.embed.ray_job import run_embed_image

        run_embed_image(store, cfg, summary, todo=todo, path_of=path_of, space=space,
                        model_name=model_name, recipe=recipe, params=_image_params,
                        commit_size=_commit_size(cfg.commit_every, cfg.batch_size))
        return _finish(summary, store, t0)

    from memeatlas.embed.image import ImageEncoder

    t = time.perf_counter()
    enc = ImageEncoder(cfg.model, backend=cfg.backend, device=cfg.device)
    summary.load_seconds = time.perf_counter() - t
    summary.dim = enc.dim
    prepare_space(store, space=space, kind="image", model=model_name, dim=enc.dim, recipe=recipe,
                  params={**_image_params(cfg, enc.backend, enc.device),
                          **({"weights": enc.weights_info} if enc.weights_info else {})},
                  software=software("transformers", "sentence-transformers", "torch",
                                    "torchvision", "pillow"),
                  force=cfg.force,
                  replace=cfg.replace_space)
    size = _commit_size(cfg.commit_every, cfg.batch_size)
    chunks = [todo[a:b] for a, b in _chunks(len(todo), size)]
    with ThreadPoolExecutor(max_workers=max(1, cfg.load_workers)) as pool, \
            ThreadPoolExecutor(max_workers=1) as prefetch, \
            progress.bar(total=len(todo), desc=f"embed {space}", unit="img") as bar:
        def submit(i: int):
            return prefetch.submit(_load_all, [(m, path_of[m]) for m, _ in chunks[i]],
                                   max_pixels, pool, enc.preprocess)
        nxt = submit(0)
        for i, part in enumerate(chunks):
            loaded = nxt.result()
            if i + 1 < len(chunks):
                nxt = submit(i + 1)  # decode the next chunk while this one encodes
            hashes = dict(part)
            ok = []
            for meme_id, img, err in loaded:
                if img is None:
                    summary.failed += 1
                    if len(summary.failures) < _MAX_FAILURES_KEPT:
                        summary.failures.append((meme_id, err or "unreadable"))
                    progress.info(f"skipped {meme_id[:12]}: {err}")
                else:
                    ok.append((meme_id, img))
            if ok:
                t = time.perf_counter()
                vecs = enc.encode([img for _, img in ok], batch_size=cfg.batch_size)
                t1 = time.perf_counter()
                write_vectors(store, space=space, model=model_name, ids=[m for m, _ in ok],
                              vectors=vecs, input_hashes=[hashes[m] for m, _ in ok])
                summary.encode_seconds += t1 - t
                summary.write_seconds += time.perf_counter() - t1
                summary.embedded += len(ok)
            bar.update(len(part))
    return _finish(summary, store, t0)


__all__ = ["embed_text", "embed_image"]
