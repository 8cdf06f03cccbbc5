"""OCR backend: no VLM, just the text in the image, with rapidocr (ONNX models shipped in the wheel).

Runs offline on any laptop; `memeatlas demo` captions with it. It fills
`ocr_text` only (annotator `ocr:rapidocr`). Text lines come back in reading
order (top to bottom, then left to right) joined by newlines. Lines that are
not text (fragments, low-confidence glyphs, a script the image does not carry)
are dropped and counted by reason (memeatlas.caption.backends.ocr_filter).

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
from memeatlas.caption.backends.ocr_filter import TextFilter, keep_lines
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


def _reading_order(boxes, txts, keep: list[bool]) -> list[str]:
    items = []
    for box, txt, k in zip(boxes, txts, keep, strict=False):
        if not k:
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
    """rapidocr (PP-OCR det + cls + rec on onnxruntime).

    Options (see ocr_filter.TextFilter): min_score (drop low-confidence lines), confident_score,
    sure_score, min_chars.
    """

    name = "ocr"
    produces = "ocr_text"
    default_model = "rapidocr"

    def __init__(self, model: str | None = None, *, min_score: float = 0.5,
                 confident_score: float = 0.9, sure_score: float = 0.95,
                 min_chars: int = 3) -> None:
        if model not in (None, "rapidocr"):
            raise BackendError(f"the ocr backend has one engine, 'rapidocr'; got --model {model!r}")
        for name, v in (("min_score", min_score), ("confident_score", confident_score),
                        ("sure_score", sure_score)):
            if not 0.0 <= float(v) <= 1.0:
                raise BackendError(f"ocr option {name} must be between 0 and 1, got {v}")
        if int(min_chars) < 1:
            raise BackendError(f"ocr option min_chars must be at least 1, got {min_chars}")
        self.filter = TextFilter(float(min_score), float(confident_score), float(sure_score),
                                 int(min_chars))
        self.min_score = self.filter.min_score
        self._engine = engine()

    @property
    def info(self) -> BackendInfo:
        sw = software("rapidocr", "onnxruntime")
        return BackendInfo(backend=self.name, model="rapidocr", revision=sw.get("rapidocr"),
                           annotator="ocr:rapidocr",
                           config=self.filter.config(), software=sw)

    @property
    def sampling(self) -> dict[str, Any]:
        return {}

    def read(self, image) -> str:
        """The text in one PIL image, lines in reading order joined by newlines."""
        return self.read_counted(image)[0]

    def read_counted(self, image) -> tuple[str, dict[str, int]]:
        """The text in one PIL image and the lines dropped as not text, by reason."""
        arr = np.asarray(image.convert("RGB"))[:, :, ::-1].copy()  # rapidocr wants BGR like cv2
        out = self._engine(arr)
        if out is None or getattr(out, "txts", None) is None or out.boxes is None:
            return "", {}
        txts = [str(t or "") for t in out.txts]
        scores = [float(s) for s in (out.scores if out.scores is not None else [0.0] * len(txts))]
        keep, dropped = keep_lines(txts, scores, self.filter)
        return "\n".join(_reading_order(out.boxes, txts, keep)), dict(dropped)

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """OCR each request's image; the prompt and schema are ignored. Text-only requests raise."""
        if any(r.image is None for r in requests):
            raise BackendError("the ocr backend reads images; it cannot answer text-only requests "
                               "(use the transformers, vllm or openai backend)")
        results = []
        for r in requests:
            t = time.perf_counter()
            try:
                text, dropped = self.read_counted(r.image)
                results.append(GenerationResult(text=text, finished=True, tokens_in=0,
                                                tokens_out=0,
                                                latency_ms=(time.perf_counter() - t) * 1000,
                                                meta={"dropped": dropped} if dropped else None))
            except Exception as exc:  # one unreadable image must not stop the run
                results.append(GenerationResult(text="", finished=False,
                                                latency_ms=(time.perf_counter() - t) * 1000,
                                                error=f"ocr failed: {type(exc).__name__}: {exc}"))
        return results
