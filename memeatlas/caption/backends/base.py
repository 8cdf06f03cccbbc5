"""The backend contract: requests in, results out, one batch at a time.

This contract is used by the caption run loop and by the cluster label step
(text-only requests to name clusters), so it stays stable:

    backend = memeatlas.caption.backends.create("transformers", model="Qwen/Qwen2.5-VL-3B-Instruct")
    results = backend.generate([GenerationRequest(prompt="...", image=None, json_schema=None,
                                                  max_new_tokens=64)])
    results[0].text, results[0].finished

- `generate` returns exactly one result per request, in order, and never
  raises for one bad request: a request that failed has `error` set (and
  `text` holds whatever came back, possibly "").
- `finished` is True when the model stopped on its own (EOS / finish_reason
  "stop"); False means the output was cut at `max_new_tokens`.
- `image=None` asks for a text-only completion (transformers, vllm, openai);
  the ocr backend needs an image and raises BackendError without one.
- `json_schema` (a JSON Schema dict) constrains decoding where the backend can
  (xgrammar, vLLM structured outputs, server `response_format`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image


@dataclass
class GenerationRequest:
    """One prompt (with an optional image) to complete."""

    prompt: str
    image: Image.Image | None = None
    json_schema: dict[str, Any] | None = None
    max_new_tokens: int = 512
    # Optional sampling overrides (None: the backend's configured defaults, greedy by default).
    temperature: float | None = None
    seed: int | None = None


@dataclass
class GenerationResult:
    """What came back for one request."""

    text: str
    finished: bool
    tokens_in: int | None = None
    tokens_out: int | None = None
    latency_ms: float | None = None  # wall time of the call that produced it (shared in a batch)
    error: str | None = None
    meta: dict[str, Any] | None = None  # backend facts about the output (ocr: lines dropped, by reason)


@dataclass
class BackendInfo:
    """Provenance a backend reports about itself (stored in caption_runs)."""

    backend: str
    model: str
    revision: str | None
    annotator: str
    config: dict[str, Any] = field(default_factory=dict)
    software: dict[str, Any] = field(default_factory=dict)


class Backend:
    """Base class for caption backends (subclasses implement `generate` and `info`).

    `produces` is "annotation" for models that write the JSON annotation, or
    "ocr_text" for engines that only read the text in the image.
    """

    name: str = ""
    produces: str = "annotation"
    default_model: str | None = None

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        raise NotImplementedError

    @property
    def info(self) -> BackendInfo:
        raise NotImplementedError

    @property
    def annotator(self) -> str:
        """`<model>@<revision>` (or `ocr:<engine>`): the name stored in annotations.annotator."""
        return self.info.annotator

    def close(self) -> None:
        """Free the model / connections (optional)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
