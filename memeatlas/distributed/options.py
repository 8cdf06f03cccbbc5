"""Options of the ray engine (`engine_options` in the caption and embed configs)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from memeatlas.errors import InputError


@dataclass
class RayOptions:
    """How a step runs on Ray.

    address:      'local' starts a Ray instance in this process (or reuses one already
                  initialised); 'auto' joins the cluster this node belongs to (`ray start`);
                  'HOST:6379' or 'ray://HOST:10001' a given one.
    workers:      actors in the pool (model replicas); default: one per GPU of the cluster,
                  else one per `cpus_per_worker` CPUs.
    cpus_per_worker, gpus_per_worker: resources each actor reserves; gpus_per_worker None
                  means 1 when the cluster has GPUs, else 0.
    job_dir:      directory or URI (s3://bucket/prefix, gs://...) for the input and result
                  shards, reachable by every node; default `<db file>.ray/` beside the DB.
    shard_size:   items per shard (rounded up to whole batches); the unit of work a worker
                  writes and the driver merges, and the most a killed job redoes per worker.
    keep_shards:  keep input and merged result shards after a successful job.
    wrap_backend: 'module:callable' applied to each worker's backend/encoder after it is
                  created (instrumentation, fault injection in tests).
    """

    address: str = "local"
    workers: int | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float | None = None
    job_dir: str | None = None
    shard_size: int | None = None
    keep_shards: bool = False
    wrap_backend: str | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> RayOptions:
        """From `engine_options`; an unknown key is an InputError naming the valid ones."""
        d = dict(d or {})
        d.pop("name", None)
        known = {f.name for f in fields(cls)}
        bad = sorted(set(d) - known)
        if bad:
            raise InputError(f"unknown ray option(s) {', '.join(bad)}; valid: "
                             f"{', '.join(sorted(known))}")
        opts = cls(**d)
        if opts.workers is not None and opts.workers < 1:
            raise InputError("--ray-workers must be at least 1")
        if opts.shard_size is not None and opts.shard_size < 1:
            raise InputError("--ray-shard-size must be at least 1")
        return opts

    def provenance(self) -> dict[str, Any]:
        """What is recorded in run provenance (paths and hooks included; never secrets)."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def default_job_dir(store) -> str:
    """`<db file>.ray` beside the DuckDB file."""
    p = Path(store.path)
    return str(p.with_name(p.name + ".ray"))


def round_to_batches(n: int, batch_size: int) -> int:
    """n rounded up to a whole number of batches, so shards never change model batching."""
    return max(1, -(-n // batch_size)) * batch_size
