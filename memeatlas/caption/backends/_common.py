"""Helpers shared by the model backends: model references and revisions."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_CHUNK = 1 << 20

#: The model the transformers, vllm and openai backends use when none is given.
DEFAULT_MODEL = "Qwen/Qwen2.5-VL-3B-Instruct"


def local_dir_hash(path: str | os.PathLike[str], n: int = 12) -> str:
    """A fingerprint of a model directory without reading gigabytes of weights.

    Hashes every file's relative name and size, the whole of small files
    (configs, tokenizer) and the first and last MiB of large ones (weights):
    two different checkpoints differ there in practice.
    """
    root = Path(path)
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file() and ".cache" not in p.parts):
        size = f.stat().st_size
        h.update(f"{f.relative_to(root).as_posix()}\0{size}\0".encode())
        with open(f, "rb") as fh:
            if size <= 4 * _CHUNK:
                h.update(fh.read())
            else:
                h.update(fh.read(_CHUNK))
                fh.seek(size - _CHUNK)
                h.update(fh.read(_CHUNK))
    return h.hexdigest()[:n]


def is_local(model: str) -> bool:
    """Whether `model` names an existing local directory (rather than a Hub id)."""
    return Path(model).expanduser().is_dir()


def model_label(model: str) -> str:
    """The model part of an annotator name: the Hub id, or a local directory's name."""
    if is_local(model):
        return Path(model).expanduser().resolve().name
    return model


def annotator_name(model: str, revision: str | None) -> str:
    """`<model>@<revision>` as stored in annotations.annotator."""
    return f"{model_label(model)}@{revision or 'unknown'}"


def not_found_message(model: str, detail: str = "") -> str:
    """The ModelNotFoundError text: names the model and how to point at a local directory."""
    extra = f" ({detail})" if detail else ""
    return (
        f"model {model!r} could not be loaded{extra}. If it is a Hugging Face model id, check "
        f"the spelling and that you are online (or that it is in your HF cache); to use a model "
        f"you have on disk, pass its directory: --model /path/to/dir"
    )
