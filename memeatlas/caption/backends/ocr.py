"""OCR backend: no VLM, just the text in the image, with rapidocr (ONNX models shipped in the wheel).

Runs offline on any laptop; `memeatlas demo` captions with it. It fills
`ocr_text` only (annotator `ocr:rapidocr`). Text lines come back in reading
order (top to bottom, then left to right) joined by newlines.

The engine loads its three ONNX models once per process (about a second) and
is shared by every OCRBackend instance.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from memeatlas.caption.backends.base import (
    Backend,
    BackendInfo,
    GenerationRequest,
    GenerationResult,
)
from memeatlas.errors import BackendError
from memeatlas.provenance import software

_ENGINE: Any = None
_ENGINE_LOCK = threading.Lock()


def engine():
    """The process-wide RapidOCR engine (created on first use)."""
    global _ENGINE
    if _ENGINE is None:
        with _ENGINE_LOCK:
            if _ENGINE is None:
                try:
                    from rapidocr import RapidOCR
                except ImportError as exc:  # pragma: no cover - rapidocr is a dependency
                    raise BackendError(
                        f"the ocr backend needs rapidocr and onnxruntime ({exc}); "
                        f"pip install rapidocr onnxruntime") from None
                _ENGINE = RapidOCR(params={"Global.log_level": "error"})
    return _ENGINE


def _reading_order(boxes, txts, scores, min_score: float) -> list[str]:
    items = []
    for box, txt, score in zip(boxes, txts, scores, strict=False):
        # Lines without a letter or digit are shapes read as glyphs (a circle as '●').
        if not txt or score < min_score or not any(ch.isalnum() for ch in txt):
            continue
        pts = np.asarray(box, dtype=float)
        y0, y1 = pts[:, 1].min(), pts[:, 1].max()
        items.append(((y0 + y1) / 2, y1 - y0, pts[:, 0].min(), txt.strip()))
    items.sort(key=lambda t: (t[0], t[2]))
    # Boxes whose vertical centres are within half a line height form one line.
    lines: list[list[tuple]] = []
    for it in items:
        if lines and abs(it[0] - lines[-1][0][0]) < 0.5 * max(it[1], lines[-1][0][1]):
            lines[-1].append(it)
        else:
            lines.append([it])
    return [" ".join(t[3] for t in sorted(line, key=lambda t: t[2])) for line in lines]


class OCRBackend(Backend):
    """rapidocr (PP-OCR det + cls + rec on onnxruntime). Options: min_score (drop low-confidence lines)."""

    name = "ocr"
    produces = "ocr_text"
    default_model = "rapidocr"

    def __init__(self, model: str | None = None, *, min_score: float = 0.5) -> None:
        if model not in (None, "rapidocr"):
            raise BackendError(f"the ocr backend has one engine, 'rapidocr'; got --model {model!r}")
        self.min_score = float(min_score)
        self._engine = engine()

    @property
    def info(self) -> BackendInfo:
        sw = software("rapidocr", "onnxruntime")
        return BackendInfo(backend=self.name, model="rapidocr", revision=sw.get("rapidocr"),
                           annotator="ocr:rapidocr",
                           config={"min_score": self.min_score}, software=sw)

    @property
    def sampling(self) -> dict[str, Any]:
        return {}

    def read(self, image) -> str:
        """The text in one PIL image, lines in reading order joined by newlines."""
        arr = np.asarray(image.convert("RGB"))[:, :, ::-1].copy()  # rapidocr wants BGR like cv2
        out = self._engine(arr)
        if out is None or getattr(out, "txts", None) is None or out.boxes is None:
            return ""
        return "\n".join(_reading_order(out.boxes, out.txts, out.scores, self.min_score))

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """OCR each request's image; the prompt and schema are ignored. Text-only requests raise."""
        if any(r.image is None for r in requests):
            raise BackendError("the ocr backend reads images; it cannot answer text-only requests "
                               "(use the transformers, vllm or openai backend)")
        results = []
        for r in requests:
            t = time.perf_counter()
            try:
                text = self.read(r.image)
                results.append(GenerationResult(text=text, finished=True, tokens_in=0,
                                                tokens_out=0,
                                                latency_ms=(time.perf_counter() - t) * 1000))
            except Exception as exc:  # one unreadable image must not stop the run
                results.append(GenerationResult(text="", finished=False,
                                                latency_ms=(time.perf_counter() - t) * 1000,
                                                error=f"ocr failed: {type(exc).__name__}: {exc}"))
        return results
