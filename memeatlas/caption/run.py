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
from pathlib import Path
from typing import Any

from memeatlas import progress
from memeatlas.caption.backends import Backend, backend_class, create
from memeatlas.caption.batch import (
    OCR_SCHEMA,
    CaptionConfig,
    CaptionSummary,
    Item,
    generate_batch,
    write_batch,
)
from memeatlas.caption.prompts import DEFAULT_PROMPT_VERSION, Prompt, load_prompt
from memeatlas.caption.schema import Validator, load_schema, schema_hash
from memeatlas.errors import InputError
from memeatlas.provenance import new_run_id, software, stable_json, utcnow


def _select(store, key: tuple[str, str, str], cfg: CaptionConfig, keep: set[str] | None = None
            ) -> tuple[list[tuple[str, str]], int]:
    """Memes to caption (meme_id, path) and how many were skipped as already done.

    `keep`: the ids matching --where (memeatlas.corpus.where), or None for all.
    """
    done_cond = ("EXISTS (SELECT 1 FROM annotations a WHERE a.meme_id = m.meme_id "
                 "AND a.annotator = ? AND a.prompt_hash = ? AND a.schema_hash = ?)")
    rows = store.fetchall(f"SELECT m.meme_id, m.path, {done_cond} AS done FROM memes m "
                          f"WHERE m.has_image AND m.path IS NOT NULL ORDER BY m.meme_id", list(key))
    if keep is not None:
        rows = [r for r in rows if r[0] in keep]
    skipped = 0 if cfg.force else sum(1 for r in rows if r[2])
    todo = [(r[0], r[1]) for r in rows if cfg.force or not r[2]]
    if cfg.limit is not None:
        todo = todo[:max(int(cfg.limit), 0)]
    return todo, skipped


def _left_out(store, n_considered: int) -> dict[str, int]:
    """Memes of the store this run does not look at: no image, or outside --where/--limit."""
    total, no_image = store.fetchone(
        "SELECT count(*), count(*) FILTER (WHERE NOT has_image OR path IS NULL) FROM memes")
    out = {"no image": int(no_image),
           "not selected (--where/--limit)": int(total) - int(no_image) - n_considered}
    return {k: v for k, v in out.items() if v > 0}


def mark_interrupted(store) -> int:
    """Mark caption runs that never ended as interrupted, with what they did get done.

    Call with the store open for writing: DuckDB lets one process write a file, so a run
    still 'running' then is one whose process died (SIGKILL, power loss) mid-run.
    """
    n = int(store.scalar("SELECT count(*) FROM caption_runs WHERE finished_at IS NULL AND "
                         "coalesce(status, 'running') = 'running'"))
    if n:
        store.execute(
            "UPDATE caption_runs r SET status = 'interrupted', "
            "n_done = (SELECT count(*) FROM annotations a WHERE a.run_id = r.run_id), "
            "n_failed = (SELECT count(DISTINCT meme_id) FROM caption_failures f "
            "WHERE f.run_id = r.run_id AND f.final) "
            "WHERE finished_at IS NULL AND coalesce(status, 'running') = 'running'")
    return n


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
    from memeatlas.corpus.where import where_ids

    keep = where_ids(store, cfg.where)  # a bad --where is refused before anything is written
    if cfg.engine != "local":  # the same selection and rows, generated on a cluster
        from memeatlas.caption.ray_job import run_caption

        return run_caption(store, cfg, _run_with, backend, keep=keep)
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
        return _run_with(store, cfg, backend, is_ocr, t_start, timings, keep)
    finally:  # also on a bad --schema/--prompt/--where: a backend we created is ours to close
        if own_backend:
            backend.close()


def _run_with(store, cfg: CaptionConfig, backend: Backend, is_ocr: bool, t_start: float,
              timings: dict[str, float], keep: set[str] | None = None,
              executor: Callable[..., None] | None = None) -> CaptionSummary:
    """The run once the backend exists (see `run`).

    `keep`: the ids matching --where. `executor(store, todo, ctx)` replaces the local batch
    loop (memeatlas.distributed); `ctx` holds what a worker needs to build the same requests
    and rows.
    """
    timings["backend_init"] = time.perf_counter() - t_start
    plan: dict[str, Any] = {}
    if is_ocr:
        schema = OCR_SCHEMA
        prompt = Prompt(text=f"ocr {stable_json(backend.info.config)}", version="ocr")
    else:
        schema = load_schema(cfg.schema_file)
        prompt = load_prompt(cfg.prompt_file, schema)
        prepare = getattr(backend, "prepare", None)
        if prepare is not None:  # servers: negotiate the format, probe vision (may refuse)
            plan = prepare(schema, vision_check=cfg.vision_check) or {}
    validator = Validator(schema) if not is_ocr else None
    if plan.get("schema") is not None and plan["schema"] != schema:
        # The server-friendly form is what the server decodes with: it is the run's schema
        # (and hash); its bounds are minLength/maxLength, checked here after decoding.
        schema = plan["schema"]
        validator = Validator(schema, typed=False)
    info = backend.info  # after prepare: it reports the negotiated format
    s_hash = schema_hash(schema)
    key = (info.annotator, prompt.hash, s_hash)
    check_example = prompt.version == DEFAULT_PROMPT_VERSION

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
    if plan:
        run_config["decoding"] = {k: v for k, v in plan.items() if k != "schema"}
    if cfg.engine != "local":
        run_config["engine"] = {"name": cfg.engine, **cfg.engine_options}
    with store.transaction():
        summary.n_interrupted_runs = mark_interrupted(store)
        _record_texts(store, prompt, schema, s_hash)
        store.execute(
            "INSERT INTO caption_runs (run_id, backend, model, revision, annotator, prompt_hash, "
            "schema_hash, prompt_version, sampling, config, software, started_at, status) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running')",
            [summary.run_id, info.backend, info.model, info.revision, info.annotator, prompt.hash,
             s_hash, prompt.version, json.dumps(sampling), json.dumps(run_config, default=str),
             json.dumps({**software(), **info.software}), utcnow()])
    if summary.n_interrupted_runs:
        progress.info(f"caption: {summary.n_interrupted_runs} earlier run(s) ended without "
                      f"finishing (killed?); marked interrupted, their annotations are kept")

    todo, summary.n_skipped = _select(store, key, cfg, keep)
    summary.n_selected = len(todo)
    summary.left_out = _left_out(store, len(todo) + summary.n_skipped)
    timings["setup"] = time.perf_counter() - t_start - timings["backend_init"]
    if summary.n_skipped:
        progress.info(f"caption: {summary.n_skipped} meme(s) already annotated by "
                      f"{info.annotator} with this prompt/schema (use --force to redo)")

    bar = progress.bar(total=len(todo), desc=f"caption {info.annotator}", unit="img")
    status = "interrupted"  # Ctrl-C or an error ends the run early; a SIGKILL leaves 'running'
    try:
        if executor is not None:
            executor(store, todo, {
                "prompt": prompt, "schema": schema, "key": key, "is_ocr": is_ocr, "bar": bar,
                "summary": summary, "timings": timings, "sampling": sampling})
        batches = [] if executor is not None else range(0, len(todo), cfg.batch_size)
        for b_no, start in enumerate(batches, 1):
            batch = [Item(mid, path) for mid, path in todo[start:start + cfg.batch_size]]
            _caption_batch(store, batch, backend, validator, prompt, schema, key, cfg, summary,
                           timings, is_ocr, check_example)
            bar.update(len(batch))
            if cfg.on_batch:
                cfg.on_batch(b_no, summary.n_done)
        status = "finished"
    finally:
        bar.close()
        summary.seconds = time.perf_counter() - t_start
        summary.timings = {k: round(v, 4) for k, v in timings.items()}
        store.execute(
            "UPDATE caption_runs SET finished_at = ?, n_done = ?, n_failed = ?, n_skipped = ?, "
            "tokens_in = ?, tokens_out = ?, seconds = ?, timings = ?, status = ? WHERE run_id = ?",
            [utcnow(), summary.n_done, summary.n_failed, summary.n_skipped,
             summary.tokens_in, summary.tokens_out, summary.seconds,
             json.dumps(summary.timings), status, summary.run_id])
    return summary


def _caption_batch(store, batch: list[Item], backend: Backend, validator: Validator | None,
                   prompt: Prompt, schema: dict[str, Any], key: tuple[str, str, str],
                   cfg: CaptionConfig, summary: CaptionSummary, timings: dict[str, float],
                   is_ocr: bool, check_example: bool = False) -> None:
    generate_batch(batch, backend, validator, prompt, schema, cfg, summary, timings, is_ocr,
                    check_example=check_example)
    write_batch(store, batch, key, cfg, summary, timings)


def prompt_and_schema(prompt_file: str | Path | None = None,
                      schema_file: str | Path | None = None) -> tuple[Prompt, dict[str, Any]]:
    """The rendered prompt and the JSON Schema a run would use (for `--print-prompt` etc.)."""
    schema = load_schema(schema_file)
    return load_prompt(prompt_file, schema), schema
