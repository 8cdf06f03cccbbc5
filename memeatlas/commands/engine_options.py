"""CLI options of the ray engine, shared by `caption`, `embed text` and `embed image`."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any

import typer

EngineOpt = Annotated[str, typer.Option(
    "--engine", help="Where the step runs: local (this process) or ray (a Ray Data pipeline; "
                     "pip install 'memeatlas[ray]'). --ray implies ray.")]
RayOpt = Annotated[str | None, typer.Option(
    "--ray", metavar="ADDRESS|auto|local",
    help="Ray cluster to run on: local (start one here), auto (the cluster this node "
         "joined with `ray start`), or HOST:6379 / ray://HOST:10001.")]
RayWorkersOpt = Annotated[int | None, typer.Option(
    "--ray-workers", min=1, help="Actors (model replicas) [default: one per GPU, else one "
                                 "per CPU].")]
RayGpusOpt = Annotated[float | None, typer.Option(
    "--ray-gpus-per-worker", min=0.0, max=4096.0, help="GPUs each actor reserves [default: 1 when the "
                                           "cluster has GPUs, else 0].")]
RayCpusOpt = Annotated[float, typer.Option(
    "--ray-cpus-per-worker", min=0.0, max=4096.0, help="CPUs each actor reserves.")]
RayDirOpt = Annotated[str | None, typer.Option(
    "--ray-dir", help="Job directory for input/result shards, reachable from every node: a "
                      "shared path or s3://... / gs://... [default: <db>.ray beside the DB].")
]
RayShardOpt = Annotated[int | None, typer.Option(
    "--ray-shard-size", min=1, help="Items per shard (the unit a worker writes and a killed "
                                    "job redoes) [default: caption 64, embed --commit-every]."
)]
RayKeepOpt = Annotated[bool, typer.Option(
    "--ray-keep-shards", help="Keep input and result shards after the job finishes.")]


def engine_settings(engine: str, ray: str | None, workers: int | None, gpus: float | None,
                    cpus: float, job_dir: str | None, shard_size: int | None,
                    keep: bool) -> tuple[str, dict[str, Any]]:
    """(engine name, engine_options) from the options above."""
    from memeatlas.distributed import check_engine

    if ray is not None:
        engine = "ray"
    check_engine(engine)
    if engine == "local":
        return "local", {}
    opts: dict[str, Any] = {"address": ray or "local", "cpus_per_worker": cpus,
                            "keep_shards": keep}
    for k, v in (("workers", workers), ("gpus_per_worker", gpus), ("job_dir", job_dir),
                 ("shard_size", shard_size)):
        if v is not None:
            opts[k] = v
    return "ray", opts


_OPTIONS: dict[str, tuple[Any, Any]] = {
    "engine": (EngineOpt, "local"), "ray": (RayOpt, None), "ray_workers": (RayWorkersOpt, None),
    "ray_gpus_per_worker": (RayGpusOpt, None), "ray_cpus_per_worker": (RayCpusOpt, 1.0),
    "ray_dir": (RayDirOpt, None), "ray_shard_size": (RayShardOpt, None),
    "ray_keep_shards": (RayKeepOpt, False),
}


def with_engine_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command the --engine / --ray* options above, last; the command takes one
    `engine` parameter and receives (engine name, engine_options) from `engine_settings`."""
    sig = inspect.signature(fn, eval_str=True)
    kept = [p for p in sig.parameters.values() if p.name != "engine"]
    added = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=a, default=d)
             for n, (a, d) in _OPTIONS.items()]

    @functools.wraps(fn)
    def command(*args: Any, **kwargs: Any) -> Any:
        kwargs["engine"] = engine_settings(*(kwargs.pop(n) for n in _OPTIONS))
        return fn(*args, **kwargs)

    command.__signature__ = sig.replace(parameters=kept + added)  # what typer reads
    command.__annotations__ = {p.name: p.annotation for p in kept + added}
    return command
