"""`caption` on Ray: the local run's selection, provenance and rows; generation on actors.

The driver runs the local run's own loop (`run_with`, handed over by memeatlas.caption.run)
unchanged up to the batch loop (run row,
prompt and schema texts, the to-do set, skip counts), then hands the to-do set to
`RayCaptionExecutor`: merge result shards left by a killed job, write the rest as input
shards, stream them through a pool of `CaptionWorker` actors, merge each result shard as it
lands. Workers call the same `batch.generate_batch` (load, generate, validate, retry) as a local
run on the same batches, so rows differ from a local run's only in run id and timings.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from typing import Any

import pyarrow as pa

from memeatlas import progress
from memeatlas.caption import batch as B
from memeatlas.caption.backends.base import Backend, BackendInfo, GenerationResult
from memeatlas.caption.prompts import DEFAULT_PROMPT_VERSION
from memeatlas.distributed import check_engine, resolve
from memeatlas.distributed.cluster import actor_pool_args, connect, from_shards, pool
from memeatlas.distributed.options import RayOptions, default_job_dir, round_to_batches
from memeatlas.distributed.shards import JobDir, merged_shards, record_shard, worker_info
from memeatlas.errors import InputError
from memeatlas.provenance import short_hash

DEFAULT_SHARD_SIZE = 64
_CFG_FIELDS = ("backend", "model", "backend_options", "batch_size", "retries",
               "retry_temperature", "max_new_tokens", "max_pixels")


def job_id_for(key: tuple[str, str, str]) -> str:
    """One job per annotation key: a resumed run finds the shards of the killed one."""
    return "caption-" + short_hash(list(key), 16)


class _InfoOnly(Backend):
    """Provenance of a backend created on a worker (vLLM loads its engine in __init__, which a
    CPU-only driver cannot and should not do)."""

    def __init__(self, name: str, info: BackendInfo, sampling: dict[str, Any]) -> None:
        self.name = name
        self._info = info
        self.sampling = sampling

    @property
    def info(self) -> BackendInfo:
        return self._info


def _probe(cfg, res: dict[str, Any], ray) -> _InfoOnly:
    @ray.remote(num_cpus=res["num_cpus"], num_gpus=res["num_gpus"])
    def probe(backend: str, model: str | None, options: dict[str, Any]):
        from memeatlas.caption.backends import create

        b = create(backend, model=model, **options)
        try:
            return asdict(b.info), dict(getattr(b, "sampling", {}) or {})
        finally:
            b.close()

    info, sampling = ray.get(probe.remote(cfg.backend, cfg.model, cfg.backend_options))
    return _InfoOnly(cfg.backend, BackendInfo(**info), sampling)


def run_caption(store, cfg, run_with, backend: Backend | None = None,
                keep: set[str] | None = None):
    """`memeatlas.caption.run` with `cfg.engine == 'ray'`; returns its CaptionSummary.

    `run_with` is the local run's loop (run.py), which this runs with a Ray executor.

    `keep`: the ids matching --where (memeatlas.corpus.where), or None for all.
    """
    check_engine(cfg.engine)  # an unknown engine is refused before anything loads
    from memeatlas.caption.backends import backend_class, create

    opts = RayOptions.from_dict(cfg.engine_options)
    t_start = time.perf_counter()
    timings = {"backend_init": 0.0, "setup": 0.0, "load": 0.0, "model": 0.0, "validate": 0.0,
               "write": 0.0}
    is_ocr = (backend_class(cfg.backend) if backend is None else backend).produces == "ocr_text"
    if is_ocr and (cfg.schema_file or cfg.prompt_file):
        raise InputError("the ocr backend reads text only; --prompt and --schema do not apply")
    ray = connect(opts)
    res = pool(ray, opts)
    own = backend is None
    if backend is None:
        # The driver needs only the backend's provenance (annotator name, config). The
        # transformers backend reads just the model config here; vLLM is probed on a worker.
        backend = (_probe(cfg, res, ray) if cfg.backend == "vllm"
                   else create(cfg.backend, model=cfg.model, **cfg.backend_options))
    run_cfg = replace(cfg, engine_options={**opts.provenance(), "workers": res["workers"],
                                           "gpus_per_worker": res["num_gpus"]})
    executor = RayCaptionExecutor(ray, opts, res, cfg)
    try:
        return run_with(store, run_cfg, backend, is_ocr, t_start, timings, keep=keep,
                           executor=executor)
    finally:
        if own:
            backend.close()


class RayCaptionExecutor:
    """The batch loop of a caption run, on Ray (see module docstring)."""

    def __init__(self, ray, opts: RayOptions, res: dict[str, Any], cfg) -> None:
        self.ray, self.opts, self.res, self.cfg = ray, opts, res, cfg
        self.n_merged = 0

    def __call__(self, store, todo: list[tuple[str, str]], ctx: dict[str, Any]) -> None:
        cfg, summary = self.cfg, ctx["summary"]
        job = JobDir(self.opts.job_dir or default_job_dir(store), job_id_for(ctx["key"]))
        open_ids = {m for m, _ in todo}
        done = merged_shards(store, job.job_id)
        pending = [n for n in job.results() if n not in done]
        if pending:
            progress.info(f"caption (ray): merging {len(pending)} finished shard(s) of an "
                          f"earlier job in {job.base}")
        merged: list[str] = []
        annotated: set[str] = set()
        for name in pending:  # a killed job's finished work is kept, whatever this run selects
            annotated |= self._merge(store, job, name, ctx, open_ids, adopt=True)
            merged.append(name)
        rest = [(m, p) for m, p in todo if m not in annotated]
        open_ids = {m for m, _ in rest}
        if rest:
            shard_size = round_to_batches(self.opts.shard_size or DEFAULT_SHARD_SIZE,
                                          cfg.batch_size)
            n_in = job.write_inputs(pa.table({"meme_id": [m for m, _ in rest],
                                              "path": [p for _, p in rest]}), shard_size)
            progress.info(f"caption (ray): {len(rest)} meme(s) in {n_in} shard(s) on "
                          f"{self.res['workers']} worker(s) ({job.base})")
            spec = {
                "cfg": {k: getattr(cfg, k) for k in _CFG_FIELDS},
                "prompt": {"text": ctx["prompt"].text, "version": ctx["prompt"].version},
                "schema": ctx["schema"], "is_ocr": ctx["is_ocr"], "job": job.spec(),
                "run_id": summary.run_id, "wrap_backend": self.opts.wrap_backend,
            }
            ds = self._pipeline(job, spec, shard_size)
            for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                for name in batch.column("shard").to_pylist():
                    self._merge(store, job, name, ctx, open_ids)
                    merged.append(name)
        if not self.opts.keep_shards:
            job.remove_inputs()
            job.remove_results(merged)

    def _pipeline(self, job: JobDir, spec: dict[str, Any], shard_size: int):
        """One row per input shard: each actor reads its shard from the job directory and
        writes the result shard, so only file names pass through the driver. (No read
        tasks either: on a small cluster they would wait for CPUs the actors hold.)"""
        ray = self.ray
        ds = from_shards(ray, job.inputs())
        return ds.map_batches(
            CaptionWorker, fn_constructor_kwargs={"spec": spec}, batch_size=1,
            batch_format="pyarrow", num_cpus=self.res["num_cpus"],
            num_gpus=self.res["num_gpus"] or None, **actor_pool_args(ray, self.res["workers"]))

    def _merge(self, store, job: JobDir, name: str, ctx: dict[str, Any],
               open_ids: set[str], adopt: bool = False) -> set[str]:
        """Merge one result shard in one transaction; returns the memes it annotated.

        Rows for memes outside `open_ids` are skipped (merged already, or not selected),
        except with `adopt` (a killed job's shard): memes still without an annotation under
        this key are stored too, so a resume with another --limit/--where loses no work."""
        table, meta = job.read_result(name)
        rows = table.to_pylist()
        extra: set[str] = set()
        if adopt:
            cand = [r["meme_id"] for r in rows if r["meme_id"] not in open_ids]
            if cand and not self.cfg.force:
                key = ctx["key"]
                have = {m for (m,) in store.fetchall(
                    "SELECT meme_id FROM annotations WHERE annotator = ? AND prompt_hash = ? "
                    "AND schema_hash = ? AND meme_id IN (SELECT unnest(?::VARCHAR[]))",
                    [*key, cand])}
                known = {m for (m,) in store.fetchall(
                    "SELECT meme_id FROM memes WHERE meme_id IN (SELECT unnest(?::VARCHAR[]))",
                    [cand])}
                extra = known - have
        items = []
        for r in rows:
            if r["meme_id"] not in open_ids and r["meme_id"] not in extra:
                continue
            open_ids.discard(r["meme_id"])
            extra.discard(r["meme_id"])
            it = B.Item(r["meme_id"], r["path"])
            it.attempts = [tuple(a) for a in json.loads(r["attempts"])]
            it.model_ms = r["model_ms"] or 0.0
            if r["obj"] is not None:
                it.obj = json.loads(r["obj"])
                it.result = GenerationResult(text="", finished=True, tokens_in=r["tokens_in"],
                                             tokens_out=r["tokens_out"])
            items.append(it)
        summary, timings = ctx["summary"], ctx["timings"]
        stats = meta.get("stats", {})
        summary.n_attempts += stats.get("n_attempts", 0)
        summary.tokens_in += stats.get("tokens_in", 0)
        summary.tokens_out += stats.get("tokens_out", 0)
        for k, v in (meta.get("timings") or {}).items():  # worker-seconds, summed over actors
            if k in timings:
                timings[k] += v
        n_failed = sum(it.obj is None for it in items)

        def record() -> None:
            record_shard(store, job_id=job.job_id, shard=name, step="caption",
                         run_id=meta.get("run_id"), merged_by=summary.run_id,
                         n_rows=len(items), n_failed=n_failed, worker=meta.get("worker", {}))

        B.write_batch(store, items, ctx["key"], self.cfg, summary, timings, also=record)
        ctx["bar"].update(len(items))
        self.n_merged += 1
        if self.cfg.on_batch:
            self.cfg.on_batch(self.n_merged, summary.n_done)
        return {it.meme_id for it in items if it.obj is not None}


class CaptionWorker:
    """A Ray Data actor: loads the backend once, captions a block, writes its result shard."""

    def __init__(self, spec: dict[str, Any]) -> None:
        from memeatlas.caption.backends import create
        from memeatlas.caption.prompts import Prompt
        from memeatlas.caption.schema import Validator

        self.spec = spec
        self.cfg = B.CaptionConfig(**spec["cfg"])
        self.backend = create(self.cfg.backend, model=self.cfg.model,
                              **self.cfg.backend_options)
        if spec.get("wrap_backend"):
            self.backend = resolve(spec["wrap_backend"])(self.backend)
        self.prompt = Prompt(**spec["prompt"])
        self.schema = spec["schema"]
        self.is_ocr = spec["is_ocr"]
        self.validator = None if self.is_ocr else Validator(self.schema)
        self.job = JobDir(**spec["job"])
        info = getattr(self.backend, "info", None)
        self.device = (info.config.get("device") if info is not None else None)

    def _generate(self, batch: list, summary, timings: dict[str, float]) -> None:
        from memeatlas.distributed.uri import load_any

        B.generate_batch(batch, self.backend, self.validator, self.prompt, self.schema,
                          self.cfg, summary, timings, self.is_ocr, loader=load_any,
                          check_example=self.prompt.version == DEFAULT_PROMPT_VERSION)

    def __call__(self, batch: pa.Table) -> pa.Table:
        names = [self._one(n) for n in batch.column("input").to_pylist()]
        return pa.table({"shard": names})

    def _one(self, input_name: str) -> str:
        block = self.job.read_input(input_name)
        ids = block.column("meme_id").to_pylist()
        paths = block.column("path").to_pylist()
        items = [B.Item(m, p) for m, p in zip(ids, paths, strict=True)]
        summary = B.CaptionSummary(run_id=self.spec["run_id"], annotator="", backend="",
                                   model="", prompt_hash="", schema_hash="")
        timings = {"load": 0.0, "model": 0.0, "validate": 0.0}
        bs = self.cfg.batch_size
        for start in range(0, len(items), bs):
            sub = items[start:start + bs]
            try:
                self._generate(sub, summary, timings)
            except Exception:
                # One bad item must not fail the block (and, after Ray's retries, the job):
                # redo the batch one item at a time and record the item that raises.
                for i, it in enumerate(sub):
                    one = B.Item(it.meme_id, it.path)
                    try:
                        self._generate([one], summary, timings)
                    except Exception as exc:
                        one.attempts.append(("worker_error", f"{type(exc).__name__}: {exc}", ""))
                    sub[i] = one
                items[start:start + bs] = sub
        out = pa.table({
            "meme_id": pa.array([it.meme_id for it in items], pa.string()),
            "path": pa.array([it.path for it in items], pa.string()),
            "obj": pa.array([json.dumps(it.obj) if it.obj is not None else None
                             for it in items], pa.string()),
            "tokens_in": pa.array([it.result.tokens_in if it.obj is not None else None
                                   for it in items], pa.int64()),
            "tokens_out": pa.array([it.result.tokens_out if it.obj is not None else None
                                    for it in items], pa.int64()),
            "model_ms": pa.array([it.model_ms for it in items], pa.float64()),
            "attempts": pa.array([json.dumps(it.attempts) for it in items], pa.string()),
        })
        name = f"{self.spec['run_id']}-{short_hash(ids, 16)}.parquet"
        self.job.write_result(name, out, {
            "run_id": self.spec["run_id"], "worker": worker_info(device=self.device),
            "stats": {"n_attempts": summary.n_attempts, "tokens_in": summary.tokens_in,
                      "tokens_out": summary.tokens_out},
            "timings": timings, "input": input_name})
        return name
