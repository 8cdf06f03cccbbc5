"""A caption batch, defined once: what is generated per meme, how it is checked and written.

The local loop (run.py) and the Ray engine (ray_job.py: its workers generate, its driver
writes) both run these, so a run's rows are the same on either engine.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from memeatlas.caption.backends import DEFAULT_BACKEND, Backend
from memeatlas.caption.backends.base import GenerationRequest, GenerationResult
from memeatlas.caption.probe import echoes_worked_example
from memeatlas.caption.prompts import Prompt
from memeatlas.caption.schema import AnnotationError, Validator
from memeatlas.errors import InputError
from memeatlas.imaging import DEFAULT_MAX_PIXELS, load_image

# What the ocr backend "decodes" into: the annotations row gets ocr_text only.
OCR_SCHEMA: dict[str, Any] = {
    "title": "OcrText", "type": "object", "additionalProperties": False,
    "properties": {"ocr_text": {"type": "string"}}, "required": ["ocr_text"],
}


@dataclass
class CaptionConfig:
    """What `memeatlas caption` does; every field maps to a CLI option."""

    backend: str = DEFAULT_BACKEND
    model: str | None = None              # None: the backend's default model
    backend_options: dict[str, Any] = field(default_factory=dict)  # device, dtype, base_url, ...
    prompt_file: str | Path | None = None
    schema_file: str | Path | None = None
    limit: int | None = None              # caption at most this many (after skipping done ones)
    where: str | None = None              # SQL condition over `memes m`, e.g. "m.source = 'folder'"
    batch_size: int = 4
    force: bool = False                   # redo memes already annotated under this key
    retries: int = 2                      # extra attempts for an invalid/truncated output
    retry_temperature: float = 0.7        # retries sample, so they do not repeat a greedy failure
    max_new_tokens: int = 768
    max_pixels: int | None = DEFAULT_MAX_PIXELS  # image budget (memeatlas.imaging.load_image)
    on_batch: Callable[[int, int], None] | None = None  # called (batch_no, n_done) after each commit
    vision_check: bool = True             # servers (openai): refuse a model that cannot see
    engine: str = "local"                 # local | ray (memeatlas.distributed)
    engine_options: dict[str, Any] = field(default_factory=dict)  # ray: address, workers, ...


@dataclass
class CaptionSummary:
    """What a run did. `annotator` is the name stored in annotations.annotator."""

    run_id: str
    annotator: str
    backend: str
    model: str
    prompt_hash: str
    schema_hash: str
    n_selected: int = 0
    n_done: int = 0
    n_failed: int = 0
    n_skipped: int = 0
    n_interrupted_runs: int = 0       # earlier runs found without an end and marked interrupted
    n_attempts: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)  # final error code -> memes
    first_failure: str | None = None      # detail of the first meme that failed
    left_out: dict[str, int] = field(default_factory=dict)  # memes not captioned, by reason
    ocr_dropped: dict[str, int] = field(default_factory=dict)  # OCR lines dropped as not text, by reason

    @property
    def images_per_s(self) -> float:
        return self.n_done / self.seconds if self.seconds else 0.0

    @property
    def tokens_per_s(self) -> float:
        """Generated tokens per second of the whole run."""
        return self.tokens_out / self.seconds if self.seconds else 0.0

    @property
    def outside_model_share(self) -> float:
        """Share of the run's time spent outside the model (setup, image loading, validation,
        writes); loading the model itself (`backend_init`) is left out of both sides."""
        t = {k: v for k, v in self.timings.items() if k != "backend_init"}
        total = sum(t.values())
        return (total - t.get("model", 0.0)) / total if total else 0.0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(images_per_s=self.images_per_s, tokens_per_s=self.tokens_per_s,
                 outside_model_share=self.outside_model_share)
        return d


@dataclass
class Item:
    """One meme through generation: its request, attempts (error, detail, raw) and result."""

    meme_id: str
    path: str
    request: GenerationRequest | None = None
    attempts: list[tuple[str, str, str]] = field(default_factory=list)  # (error, detail, raw)
    result: GenerationResult | None = None
    obj: dict[str, Any] | None = None
    model_ms: float = 0.0


def generate_batch(batch: list[Item], backend: Backend, validator: Validator | None,
                    prompt: Prompt, schema: dict[str, Any], cfg: CaptionConfig,
                    summary: CaptionSummary, timings: dict[str, float], is_ocr: bool,
                    loader: Callable[[str, int | None], Any] = load_image,
                    check_example: bool = False) -> None:
    """Load, generate, validate and retry one batch in place (no database; also run by
    distributed workers, with `loader` reading object-store URIs)."""
    t = time.perf_counter()
    pending: list[Item] = []
    for it in batch:
        try:
            image = loader(it.path, cfg.max_pixels)
        except InputError as exc:
            it.attempts.append(("image_unreadable", str(exc), ""))
            continue
        it.request = GenerationRequest(prompt=prompt.text, image=image,
                                       json_schema=None if is_ocr else schema,
                                       max_new_tokens=cfg.max_new_tokens)
        pending.append(it)
    timings["load"] += time.perf_counter() - t

    for attempt in range(cfg.retries + 1):
        if not pending:
            break
        if attempt:  # sample on retries: a greedy decode would repeat the same failure
            for it in pending:
                it.request.temperature = cfg.retry_temperature
                it.request.seed = attempt
        t = time.perf_counter()
        results = backend.generate([it.request for it in pending])
        dt = time.perf_counter() - t
        if len(results) != len(pending):  # a backend bug; storing misaligned rows would be worse
            raise RuntimeError(f"backend {backend.name} returned {len(results)} results for "
                               f"{len(pending)} requests")
        timings["model"] += dt
        summary.n_attempts += len(pending)
        t = time.perf_counter()
        still = []
        for it, res in zip(pending, results, strict=True):
            it.result = res
            summary.tokens_in += res.tokens_in or 0
            summary.tokens_out += res.tokens_out or 0
            it.model_ms += res.latency_ms if res.latency_ms is not None else dt * 1000
            err = check(res, validator, is_ocr, check_example)
            if isinstance(err, tuple):
                it.attempts.append((err[0], err[1], res.text))
                if err[0] != "request_failed":  # the backend already retried what can be
                    still.append(it)
            else:
                it.obj = err
        pending = still
        timings["validate"] += time.perf_counter() - t


def write_batch(store, batch: list[Item], key: tuple[str, str, str], cfg: CaptionConfig,
                 summary: CaptionSummary, timings: dict[str, float],
                 also: Callable[[], None] | None = None) -> None:
    """Store one generated batch (annotations and failure attempts) in one transaction;
    `also` runs inside it (the distributed driver records the merged shard there)."""
    t = time.perf_counter()
    with store.transaction():
        for it in batch:
            for n, (error, detail, raw) in enumerate(it.attempts, 1):
                store.execute(
                    "INSERT INTO caption_failures (meme_id, annotator, prompt_hash, schema_hash, "
                    "run_id, attempt, error, raw_output, detail, final) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [it.meme_id, *key, summary.run_id, n, error, raw, detail,
                     it.obj is None and n == len(it.attempts)])
            if it.obj is None:
                summary.n_failed += 1
                code, detail = (it.attempts[-1][:2] if it.attempts else ("unknown", ""))
                summary.failures[code] = summary.failures.get(code, 0) + 1
                if summary.first_failure is None:
                    summary.first_failure = f"{code}: {detail}"[:300]
                continue
            if cfg.force:
                store.execute("DELETE FROM annotations WHERE meme_id = ? AND annotator = ? "
                              "AND prompt_hash = ? AND schema_hash = ?", [it.meme_id, *key])
            o, r = it.obj, it.result
            ents = o.get("entities")
            store.execute(
                "INSERT INTO annotations (meme_id, annotator, prompt_hash, schema_hash, description, "
                "ocr_text, intent, template, tone, entities, raw, run_id, tokens_in, tokens_out, "
                "latency_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [it.meme_id, *key, o.get("description"), o.get("ocr_text"), o.get("intent"),
                 o.get("template"), o.get("tone"),
                 json.dumps(ents) if ents is not None else None, json.dumps(o), summary.run_id,
                 r.tokens_in, r.tokens_out, it.model_ms])
            summary.n_done += 1
            for reason, n in (o.get("ocr_dropped") or {}).items():
                summary.ocr_dropped[reason] = summary.ocr_dropped.get(reason, 0) + int(n)
        if also is not None:
            also()
    timings["write"] += time.perf_counter() - t


def check(res: GenerationResult, validator: Validator | None, is_ocr: bool,
           check_example: bool = False) -> tuple[str, str] | dict[str, Any]:
    """The parsed annotation, or (error code, detail) for caption_failures."""
    if res.error:
        return ("request_failed", res.error)
    if not res.finished:
        if res.tokens_out is None:  # a server that gave no token count (issue 23)
            return ("truncated", f"the answer ({len(res.text):,} characters) did not end "
                                 "with finish_reason 'stop' and the server reported no token "
                                 "count: cut off at max_new_tokens or ended early")
        return ("truncated", f"output hit max_new_tokens ({res.tokens_out} tokens) before EOS")
    if is_ocr:
        dropped = (res.meta or {}).get("dropped")
        return {"ocr_text": res.text, **({"ocr_dropped": dropped} if dropped else {})}
    try:
        obj = validator(res.text)
    except AnnotationError as exc:
        return (exc.kind, str(exc))
    if check_example and echoes_worked_example(obj):
        return ("worked_example", "the annotation repeats the prompt's worked example (the "
                "Distracted Boyfriend meme about 'my thesis'): the model did not see the image")
    return obj
