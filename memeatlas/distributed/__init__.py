"""The Ray engine: cluster connection, job directories, shards and URIs, for any step's batches.

This package knows no step: `caption` (memeatlas.caption.ray_job) and `embed`
(memeatlas.embed.ray_job) hand it their batch work, so the engine sits below the steps.
Together they run `caption` and `embed` on a Ray cluster with the same keys, rows and resume
as a local run.

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

import importlib

from memeatlas.errors import BackendError, InputError

ENGINES = ("local", "ray")


def check_engine(name: str) -> str:
    """`name` if it is a known engine, else a BackendError listing the valid ones."""
    if name not in ENGINES:
        raise BackendError(f"unknown engine {name!r}; choose one of: {', '.join(ENGINES)}")
    return name


def resolve(ref: str):
    """'package.module:attr' → the object (a worker's wrapper or hook named in a job spec)."""
    mod, _, attr = ref.partition(":")
    if not attr:
        raise InputError(f"expected 'module:callable', got {ref!r}")
    return getattr(importlib.import_module(mod), attr)


__all__ = ["ENGINES", "check_engine", "resolve"]
