"""Run `caption` and `embed` on a Ray cluster with the same keys, rows and resume as a local run.

    from memeatlas.caption import CaptionConfig, run
    run(store, CaptionConfig(model="/shared/models/qwen2.5-vl-3b", engine="ray",
                             engine_options={"address": "auto", "workers": 8}))

The driver (the process that holds the DuckDB file, its only writer) selects the to-do set
exactly as a local run does, writes it as Parquet input shards into a job directory that
every node can reach (a shared filesystem path or an `s3://` / `gs://` URI), and runs a Ray
Data pipeline: `read_parquet` → `map_batches` with a callable class per actor that loads
memeatlas's own backend or encoder once → one Parquet result shard per block, written by the
worker. The driver merges each result shard into DuckDB in one transaction together with its
row in `engine_shards`, so a killed driver, re-run with the same command, merges the shards
that finished, skips what is merged and re-runs the rest.

Ray is optional (`pip install 'memeatlas[ray]'`) and imported only when a job starts.
"""

from __future__ import annotations

from typing import Any

from memeatlas.errors import BackendError

ENGINES = ("local", "ray")


def check_engine(name: str) -> str:
    """`name` if it is a known engine, else a BackendError listing the valid ones."""
    if name not in ENGINES:
        raise BackendError(f"unknown engine {name!r}; choose one of: {', '.join(ENGINES)}")
    return name


def run_caption(store, cfg, backend=None, keep: set[str] | None = None) -> Any:
    """`memeatlas.caption.run` on the engine named by `cfg.engine` (see caption_job); `keep`
    holds the ids matching --where (None: all)."""
    check_engine(cfg.engine)
    from memeatlas.distributed.caption_job import run_caption as _run

    return _run(store, cfg, backend, keep=keep)


def run_embed_text(store, cfg, summary, **plan: Any) -> None:
    """The encode-and-store part of `embed_text` on `cfg.engine` (see embed_job)."""
    check_engine(cfg.engine)
    from memeatlas.distributed.embed_job import run_embed_text as _run

    _run(store, cfg, summary, **plan)


def run_embed_image(store, cfg, summary, **plan: Any) -> None:
    """The encode-and-store part of `embed_image` on `cfg.engine` (see embed_job)."""
    check_engine(cfg.engine)
    from memeatlas.distributed.embed_job import run_embed_image as _run

    _run(store, cfg, summary, **plan)


__all__ = ["ENGINES", "check_engine", "run_caption", "run_embed_text", "run_embed_image"]
