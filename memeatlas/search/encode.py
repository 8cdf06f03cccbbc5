"""Queries as vectors, made by the space's own model: text for text spaces, text or an image
for CLIP-type image spaces (whose text and image towers share one space)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import numpy as np

from memeatlas.errors import InputError, ModelNotFoundError


def _is_tfidf(model: str) -> bool:
    from memeatlas.embed.tfidf import is_tfidf

    return is_tfidf(model)


def text_queryable(info) -> bool:
    """Whether a text query can be embedded into space `info` (SpaceInfo)."""
    if info.kind == "text":
        return not _is_tfidf(info.model)
    return info.kind == "image" and is_clip_like(info)


def is_clip_like(info) -> bool:
    """An image space whose model also has a text tower (CLIP, SigLIP, ST clip models),
    judged from the model's config without loading weights."""
    backend = (info.params or {}).get("backend")
    if backend == "sentence-transformers":
        return "clip" in info.model.lower()
    if backend not in (None, "transformers"):
        return False
    cfg = _config(info.model)
    return bool(cfg) and "text_config" in cfg and "vision_config" in cfg


@lru_cache(maxsize=8)
def _config(model: str) -> dict | None:
    p = Path(model)
    path = p / "config.json" if p.is_dir() else None
    if path is None:
        try:
            from huggingface_hub import try_to_load_from_cache

            got = try_to_load_from_cache(model, "config.json")
            path = Path(got) if isinstance(got, str) else None
        except Exception:  # no hub library or a malformed id: not a CLIP we can load
            return None
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path else None
    except (OSError, ValueError):
        return None


@lru_cache(maxsize=2)
def _image_encoder(model: str, backend: str):
    from memeatlas.embed.image import ImageEncoder

    return ImageEncoder(model, backend=backend, device="cpu")


@contextmanager
def _one_thread() -> Iterator[None]:
    """torch on one thread while embedding one query: a single short text gains nothing from
    intra-op threads, and on a busy machine their synchronisation made it 20× slower
    (763 ms vs 36 ms p50 for MiniLM on the shared 2-core VM)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def embed_text(info, text: str) -> np.ndarray:
    """The query text as a unit vector of space `info`."""
    with _one_thread():
        return _embed_text(info, text)


def _embed_text(info, text: str) -> np.ndarray:
    if info.kind == "text":
        if _is_tfidf(info.model):
            raise InputError(f"space {info.space!r} is a corpus-fitted TF-IDF space, which "
                             f"cannot embed a new query; use --mode lexical, --like MEME, or "
                             f"another --space")
        from memeatlas.embed.text import get_text_encoder

        return get_text_encoder(info.model, device="cpu").encode([text])[0]
    if not is_clip_like(info):
        raise InputError(f"space {info.space!r} holds image vectors from {info.model}, which "
                         f"has no text encoder; search it with --like MEME or an image path")
    backend = (info.params or {}).get("backend") or "auto"
    enc = _image_encoder(info.model, backend)
    if enc.backend == "sentence-transformers":
        v = enc.st.encode([text], normalize_embeddings=True, convert_to_numpy=True,
                          show_progress_bar=False)
        return np.asarray(v, np.float32).reshape(-1)
    return _clip_text(enc, text)


def _clip_text(enc, text: str) -> np.ndarray:
    import torch
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(enc.load_path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(f"cannot load the text tokenizer of {enc.name}: {exc}") from None
    siglip = "siglip" in type(enc.model).__name__.lower()
    inputs = tok([text], padding="max_length" if siglip else True, truncation=True,
                 return_tensors="pt")
    with torch.inference_mode():
        out = enc.model.get_text_features(**inputs)
    feats = out if isinstance(out, torch.Tensor) else (
        out.pooler_output if getattr(out, "pooler_output", None) is not None else out[0])
    feats = torch.nn.functional.normalize(feats.float(), p=2, dim=-1)
    return feats[0].cpu().numpy().astype(np.float32)


def embed_image_file(info, path: Path) -> np.ndarray:
    """An image file as a unit vector of image space `info`, preprocessed as at embed time."""
    from memeatlas.imaging import DEFAULT_MAX_PIXELS, load_image

    if info.kind != "image":
        raise InputError(f"--like {path} is an image, but space {info.space!r} holds text "
                         f"vectors; pass an image space with --space")
    recipe = (info.params or {}).get("recipe") or {}
    image = load_image(path, recipe.get("max_pixels", DEFAULT_MAX_PIXELS))
    backend = (info.params or {}).get("backend") or "auto"
    with _one_thread():
        return _image_encoder(info.model, backend).encode([image])[0]
