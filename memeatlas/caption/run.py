"""The caption run loop: select memes, generate, validate, retry, store; resumable per batch.

    from memeatlas.caption import CaptionConfig, run
    summary = run(store, CaptionConfig(backend="transformers", model="/models/qwen2.5-vl-3b"))

Each annotation row is keyed by (meme_id, annotator, prompt_hash, schema_hash).
Memes that already have a row under the run's key are skipped (unless
`force`), so a re-run after a crash or a `--limit` finishes the rest with no
duplicates. Every batch is written in one transaction: a killed run loses at
most the batch in flight.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from memeatlas import progress
from memeatlas.caption.backends import DEFAULT_BACKEND, Backend, backend_class, create
from memeatlas.caption.backends.base import GenerationRequest, GenerationResult
from memeatlas.caption.prompts import Prompt, load_prompt
from memeatlas.caption.schema import AnnotationError, Validator, load_schema, schema_hash
from memeatlas.errors import InputError
from memeatlas.imaging import DEFAULT_MAX_PIXELS, load_image
from memeatlas.provenance import new_run_id, software, stable_json, utcnow

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
    n_attempts: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

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
class _Item:
    meme_id: str
    path: str
    request: GenerationRequest | None = None
    attempts: list[tuple[str, str, str]] = field(default_factory=list)  # (error, detail, raw)
    result: GenerationResult | None = None
    obj: dict[str, Any] | None = None
    model_ms: float = 0.0


def _select(store, key: tuple[str, str, str], cfg: CaptionConfig) -> tuple[list[tuple[str, str]], int]:
    """Memes to caption (meme_id, path) and how many were skipped as already done."""
    import duckdb

    annotator, p_hash, s_hash = key
    where = f"AND ({cfg.where})" if cfg.where else ""
    base = f"FROM memes m WHERE m.has_image AND m.path IS NOT NULL {where}"
    done_cond = ("EXISTS (SELECT 1 FROM annotations a WHERE a.meme_id = m.meme_id "
                 "AND a.annotator = ? AND a.prompt_hash = ? AND a.schema_hash = ?)")
    try:
        if cfg.force:
            skipped = 0
            sql = f"SELECT m.meme_id, m.path {base} ORDER BY m.meme_id"
            params: list[Any] = []
        else:
            skipped = store.scalar(f"SELECT count(*) {base} AND {done_cond}", list(key))
            sql = f"SELECT m.meme_id, m.path {base} AND NOT {done_cond} ORDER BY m.meme_id"
            params = list(key)
        if cfg.limit is not None:
            sql += f" LIMIT {int(cfg.limit)}"
        rows = store.fetchall(sql, params)
    except duckdb.Error as exc:
        if cfg.where:
            raise InputError(f"--where {cfg.where!r} is not a valid SQL condition over memes "
                             f"(alias m): {str(exc).splitlines()[0]}") from None
        raise
    return [(r[0], r[1]) for r in rows], int(skipped or 0)


def _record_texts(store, prompt: Prompt, schema: dict[str, Any], s_hash: str) -> None:
    store.execute("INSERT INTO prompts (prompt_hash, version, text) VALUES (?, ?, ?) "
                  "ON CONFLICT DO NOTHING", [prompt.hash, prompt.version, prompt.text])
    store.execute("INSERT INTO annotation_schemas (schema_hash, json_schema) VALUES (?, ?) "
                  "ON CONFLICT DO NOTHING", [s_hash, json.dumps(schema)])


def run(store, config: CaptionConfig, backend: Backend | None = None) -> CaptionSummary:
    """Caption the selected memes into `annotations`; returns a CaptionSummary.

    `backend`: an already created backend to reuse (benchmarks, tests); by
    default one is created from `config.backend`, `config.model` and
    `config.backend_options`. Invalid or truncated outputs are retried
    `config.retries` times and then stored in `caption_failures` with the raw
    text; the run goes on.
    """
    cfg = config
    if cfg.batch_size < 1:
        raise InputError("--batch-size must be at least 1")
    if cfg.retries < 0:
        raise InputError("--retries must be 0 or more")
    if cfg.engine != "local":  # the same selection and rows, generated on a cluster
        from memeatlas.distributed import run_caption

        return run_caption(store, cfg, backend)
    t_start = time.perf_counter()
    timings = {"backend_init": 0.0, "setup": 0.0, "load": 0.0, "model": 0.0, "validate": 0.0,
               "write": 0.0}

    own_backend = backend is None
    is_ocr = (backend_class(cfg.backend) if own_backend else backend).produces == "ocr_text"
    if is_ocr and (cfg.schema_file or cfg.prompt_file):  # before loading the engine
        raise InputError("the ocr backend reads text only; --prompt and --schema do not apply")
    if backend is None:
        backend = create(cfg.backend, model=cfg.model, **cfg.backend_options)
    try:
        return _run_with(store, cfg, backend, is_ocr, t_start, timings)
    finally:  # also on a bad --schema/--prompt/--where: a backend we created is ours to close
        if own_backend:
            backend.close()


def _run_with(store, cfg: CaptionConfig, backend: Backend, is_ocr: bool, t_start: float,
              timings: dict[str, float], executor: Callable[..., None] | None = None
              ) -> CaptionSummary:
    """The run once the backend exists (see `run`).

    `executor(store, todo, ctx)` replaces the local batch loop (memeatlas.distributed);
    `ctx` holds what a worker needs to build the same requests and rows.
    """
    timings["backend_init"] = time.perf_counter() - t_start
    info = backend.info
    if is_ocr:
        schema = OCR_SCHEMA
        prompt = Prompt(text=f"ocr {stable_json(info.config)}", version="ocr")
    else:
        schema = load_schema(cfg.schema_file)
        prompt = load_prompt(cfg.prompt_file, schema)
    s_hash = schema_hash(schema)
    key = (info.annotator, prompt.hash, s_hash)
    validator = Validator(schema) if not is_ocr else None

    summary = CaptionSummary(run_id=new_run_id("caption"), annotator=info.annotator,
                             backend=info.backend, model=info.model, prompt_hash=prompt.hash,
                             schema_hash=s_hash)
    sampling = dict(getattr(backend, "sampling", {}) or {})
    sampling.update(max_new_tokens=cfg.max_new_tokens, retries=cfg.retries,
                    retry_temperature=cfg.retry_temperature)
    run_config = dict(info.config)
    run_config.update(batch_size=cfg.batch_size, max_pixels=cfg.max_pixels, limit=cfg.limit,
                      where=cfg.where, force=cfg.force,
                      prompt_file=str(cfg.prompt_file) if cfg.prompt_file else None,
                      schema_file=str(cfg.schema_file) if cfg.schema_file else None)
    if cfg.engine != "local":
        run_config["engine"] = {"name": cfg.engine, **cfg.engine_options}
    with store.transaction():
        _record_texts(store, prompt, schema, s_hash)
        store.execute(
            "INSERT INTO caption_runs (run_id, backend, model, revision, annotator, prompt_hash, "
            "schema_hash, prompt_version, sampling, config, software, started_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [summary.run_id, info.backend, info.model, info.revision, info.annotator, prompt.hash,
             s_hash, prompt.version, json.dumps(sampling), json.dumps(run_config, default=str),
             json.dumps({**software(), **info.software}), utcnow()])

    todo, summary.n_skipped = _select(store, key, cfg)
    summary.n_selected = len(todo)
    timings["setup"] = time.perf_counter() - t_start - timings["backend_init"]
    if summary.n_skipped:
        progress.info(f"caption: {summary.n_skipped} meme(s) already annotated by "
                      f"{info.annotator} with this prompt/schema (use --force to redo)")

    bar = progress.bar(total=len(todo), desc=f"caption {info.annotator}", unit="img")
    try:
        if executor is not None:
            executor(store, todo, {
                "prompt": prompt, "schema": schema, "key": key, "is_ocr": is_ocr, "bar": bar,
                "summary": summary, "timings": timings, "sampling": sampling})
        batches = [] if executor is not None else range(0, len(todo), cfg.batch_size)
        for b_no, start in enumerate(batches, 1):
            batch = [_Item(mid, path) for mid, path in todo[start:start + cfg.batch_size]]
            _caption_batch(store, batch, backend, validator, prompt, schema, key, cfg, summary,
                           timings, is_ocr)
            bar.update(len(batch))
            if cfg.on_batch:
                cfg.on_batch(b_no, summary.n_done)
    finally:
        bar.close()
        summary.seconds = time.perf_counter() - t_start
        summary.timings = {k: round(v, 4) for k, v in timings.items()}
        store.execute(
            "UPDATE caption_runs SET finished_at = ?, n_done = ?, n_failed = ?, n_skipped = ?, "
            "tokens_in = ?, tokens_out = ?, seconds = ?, timings = ? WHERE run_id = ?",
            [utcnow(), summary.n_done, summary.n_failed, summary.n_skipped,
             summary.tokens_in, summary.tokens_out, summary.seconds,
             json.dumps(summary.timings), summary.run_id])
    return summary


def _caption_batch(store, batch: list[_Item], backend: Backend, validator: Validator | None,
                   prompt: Prompt, schema: dict[str, Any], key: tuple[str, str, str],
                   cfg: CaptionConfig, summary: CaptionSummary, timings: dict[str, float],
                   is_ocr: bool) -> None:
    _generate_batch(batch, backend, validator, prompt, schema, cfg, summary, timings, is_ocr)
    _write_batch(store, batch, key, cfg, summary, timings)


def _generate_batch(batch: list[_Item], backend: Backend, validator: Validator | None,
                    prompt: Prompt, schema: dict[str, Any], cfg: CaptionConfig,
                    summary: CaptionSummary, timings: dict[str, float], is_ocr: bool,
                    loader: Callable[[str, int | None], Any] = load_image) -> None:
    """Load, generate, validate and retry one batch in place (no database; also run by
    distributed workers, with `loader` reading object-store URIs)."""
    t = time.perf_counter()
    pending: list[_Item] = []
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
            err = _check(res, validator, is_ocr)
            if isinstance(err, tuple):
                it.attempts.append((err[0], err[1], res.text))
                still.append(it)
            else:
                it.obj = err
        pending = still
        timings["validate"] += time.perf_counter() - t


def _write_batch(store, batch: list[_Item], key: tuple[str, str, str], cfg: CaptionConfig,
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
        if also is not None:
            also()
    timings["write"] += time.perf_counter() - t


def _check(res: GenerationResult, validator: Validator | None, is_ocr: bool
           ) -> tuple[str, str] | dict[str, Any]:
    """The parsed annotation, or (error code, detail) for caption_failures."""
    if res.error:
        return ("request_failed", res.error)
    if not res.finished:
        return ("truncated", f"output hit max_new_tokens ({res.tokens_out} tokens) before EOS")
    if is_ocr:
        return {"ocr_text": res.text}
    try:
        return validator(res.text)
    except AnnotationError as exc:
        return (exc.kind, str(exc))


def prompt_and_schema(prompt_file: str | Path | None = None,
                      schema_file: str | Path | None = None) -> tuple[Prompt, dict[str, Any]]:
    """The rendered prompt and the JSON Schema a run would use (for `--print-prompt` etc.)."""
    schema = load_schema(schema_file)
    return load_prompt(prompt_file, schema), schema
