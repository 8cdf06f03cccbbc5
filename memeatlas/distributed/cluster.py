"""Joining or starting a Ray cluster, and sizing the actor pool from its resources."""

from __future__ import annotations

import os
from typing import Any

from memeatlas.distributed.options import RayOptions
from memeatlas.errors import BackendError


def import_ray():
    """`ray` with Ray Data, or a BackendError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise BackendError(f"the ray engine needs Ray Data: pip install 'memeatlas[ray]' "
                           f"({exc})") from None
    return ray


def connect(opts: RayOptions) -> Any:
    """Initialise Ray for `opts.address` (reusing an initialised one); returns the module."""
    ray = import_ray()
    if not ray.is_initialized():
        kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "configure_logging": False}
        # Workers on this machine see the driver's environment, e.g. PYTHONPATH and
        # HF_HUB_OFFLINE; remote nodes need memeatlas installed (see docs/scale-out.md).
        address = None if opts.address in ("", "local") else opts.address
        try:
            ray.init(address=address, **kw)
        except ConnectionError as exc:
            raise BackendError(f"cannot reach the Ray cluster at {opts.address!r}: {exc}. "
                               f"Start one with `ray start --head` or pass --ray local"
                               ) from None
    ctx = ray.data.DataContext.get_current()
    if os.environ.get("MEMEATLAS_NO_PROGRESS"):
        ctx.enable_progress_bars = False
    return ray


def pool(ray, opts: RayOptions) -> dict[str, Any]:
    """Actor pool size and per-actor resources for this cluster."""
    res = ray.cluster_resources()
    gpus = float(res.get("GPU", 0))
    cpus = float(res.get("CPU", 1))
    per_gpu = opts.gpus_per_worker if opts.gpus_per_worker is not None else (1.0 if gpus else 0.0)
    if per_gpu and not gpus:
        raise BackendError(f"--ray-gpus-per-worker {per_gpu} but the cluster has no GPU")
    if opts.workers:
        n = opts.workers
    elif per_gpu:
        n = max(1, int(gpus // per_gpu))
    else:
        n = max(1, int(cpus // max(opts.cpus_per_worker, 0.01)))
    return {"workers": n, "num_cpus": opts.cpus_per_worker, "num_gpus": per_gpu,
            "cluster_cpus": cpus, "cluster_gpus": gpus}


def actor_pool_args(ray, size: int) -> dict[str, Any]:
    """`map_batches` keyword for a fixed pool of `size` actors."""
    strategy = getattr(ray.data, "ActorPoolStrategy", None)
    if strategy is not None:
        return {"compute": strategy(size=size)}
    return {"concurrency": size}


def from_shards(ray, names: list[str]):
    """A dataset of one row per input shard, one block each, so every actor gets work."""
    return ray.data.from_items([{"input": n} for n in names],
                               override_num_blocks=max(1, len(names)))
