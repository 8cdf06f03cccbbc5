"""`embed text` / `embed image` on Ray: the local to-do set and chunks; encoding on actors.

`embed_text` / `embed_image` (memeatlas.embed.run) select, plan and skip exactly as locally and
hand the to-do list here. Text shards are the local run's commit chunks (longest text first,
`commit_every` rounded up to whole batches), so each actor's `encode` sees the batches a local
run forms. The driver creates the space from the first merged shard (its worker reports the
dimension and device) and stores each shard's vectors with the same `write_vectors`.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa

from memeatlas import progress
from memeatlas.distributed import check_engine, resolve
from memeatlas.distributed.cluster import actor_pool_args, connect, from_shards, pool
from memeatlas.distributed.options import RayOptions, default_job_dir, round_to_batches
from memeatlas.distributed.shards import JobDir, merged_shards, record_shard, worker_info
from memeatlas.provenance import new_run_id, short_hash, software

_MAX_FAILURES_KEPT = 20


def job_id_for(space: str, model: str, recipe: dict[str, Any]) -> str:
    """One job per space, model and recipe: a resumed run finds the killed one's shards."""
    return "embed-" + short_hash({"space": space, "model": model, "recipe": recipe}, 16)


def run_embed_text(store, cfg, summary, *, todo: list[tuple[str, str]], text_of: dict[str, str],
                   space: str, model_name: str, recipe: dict[str, Any], params,
                   commit_size: int) -> None:
    """Encode `todo` [(meme_id, input_hash)] on Ray and store the vectors (see module doc);
    `commit_size` is the local run's commit chunk, so shards match its batches."""
    check_engine(cfg.engine)
    todo = sorted(todo, key=lambda it: -len(text_of[it[0]]))  # as the local loop orders them
    rows = pa.table({"meme_id": [m for m, _ in todo], "input_hash": [h for _, h in todo],
                     "text": [text_of[m] for m, _ in todo]})
    job = _EmbedJob(store, cfg, summary, kind="text", space=space, model_name=model_name,
                    recipe=recipe, params=params,
                    software=software("sentence-transformers", "transformers", "torch"))
    job.run(todo, rows, commit_size, {
        "kind": "text", "model": cfg.model, "device": cfg.device, "batch_size": cfg.batch_size})


def run_embed_image(store, cfg, summary, *, todo: list[tuple[str, str]], path_of: dict[str, str],
                    space: str, model_name: str, recipe: dict[str, Any], params,
                    commit_size: int) -> None:
    """Encode the images of `todo` on Ray and store the vectors; unreadable ones are counted."""
    check_engine(cfg.engine)
    rows = pa.table({"meme_id": [m for m, _ in todo], "input_hash": [h for _, h in todo],
                     "path": [path_of[m] for m, _ in todo]})
    job = _EmbedJob(store, cfg, summary, kind="image", space=space, model_name=model_name,
                    recipe=recipe, params=params,
                    software=software("transformers", "sentence-transformers", "torch",
                                      "pillow"))
    job.run(todo, rows, commit_size, {
        "kind": "image", "model": cfg.model, "backend": cfg.backend, "device": cfg.device,
        "batch_size": cfg.batch_size, "max_pixels": recipe["max_pixels"]})


class _EmbedJob:
    """Driver side of one embed job: pending merges, input shards, pipeline, merges."""

    def __init__(self, store, cfg, summary, *, kind: str, space: str, model_name: str,
                 recipe: dict[str, Any], params, software: dict[str, Any]) -> None:
        self.store, self.cfg, self.summary = store, cfg, summary
        self.kind, self.space, self.model_name, self.recipe = kind, space, model_name, recipe
        self.params_fn, self.software = params, software
        self.opts = RayOptions.from_dict(cfg.engine_options)
        self.prepared = False
        self.run_tag = new_run_id(f"embed-{kind}")
        self.res: dict[str, Any] = {}

    def run(self, todo: list[tuple[str, str]], rows: pa.Table, chunk: int,
            worker_cfg: dict[str, Any]) -> None:
        store, opts = self.store, self.opts
        job = JobDir(opts.job_dir or default_job_dir(store),
                     job_id_for(self.space, self.model_name, self.recipe))
        expected = dict(todo)  # meme_id → the input hash this run would embed
        done = merged_shards(store, job.job_id)
        pending = [n for n in job.results() if n not in done]
        merged: list[str] = []
        ray = connect(opts)
        self.res = pool(ray, opts)
        if pending:
            progress.info(f"embed (ray): merging {len(pending)} finished shard(s) of an "
                          f"earlier job in {job.base}")
        for name in pending:
            self._merge(job, name, expected)
            merged.append(name)
        keep = [i for i, m in enumerate(rows.column("meme_id").to_pylist()) if m in expected]
        rows = rows.take(pa.array(keep, pa.int64()))
        with progress.bar(total=rows.num_rows, desc=f"embed {self.space} (ray)",
                          unit=self.kind) as bar:
            self.bar = bar
            if rows.num_rows:
                shard_size = round_to_batches(opts.shard_size or chunk, self.cfg.batch_size)
                n_in = job.write_inputs(rows, shard_size)
                progress.info(f"embed (ray): {rows.num_rows} {self.kind}(s) in {n_in} shard(s) "
                              f"on {self.res['workers']} worker(s) ({job.base})")
                spec = {"worker": worker_cfg, "job": job.spec(), "run_id": self.run_tag,
                        "wrap_backend": opts.wrap_backend}
                ds = from_shards(ray, job.inputs())
                ds = ds.map_batches(
                    EmbedWorker, fn_constructor_kwargs={"spec": spec}, batch_size=1,
                    batch_format="pyarrow", num_cpus=self.res["num_cpus"],
                    num_gpus=self.res["num_gpus"] or None,
                    **actor_pool_args(ray, self.res["workers"]))
                for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                    for name in batch.column("shard").to_pylist():
                        self._merge(job, name, expected)
                        merged.append(name)
        if not opts.keep_shards:
            job.remove_inputs()
            job.remove_results(merged)

    def _prepare(self, meta: dict[str, Any]) -> None:
        from memeatlas.corpus.spaces import prepare_space

        w = meta.get("encoder", {})
        if self.kind == "text":
            params = self.params_fn(self.cfg, w.get("max_seq_length"), w.get("device"))
        else:
            params = self.params_fn(self.cfg, w.get("backend"), w.get("device"))
        params["engine"] = {"name": "ray", **self.opts.provenance(),
                            "workers": self.res.get("workers"),
                            "gpus_per_worker": self.res.get("num_gpus")}
        prepare_space(self.store, space=self.space, kind=self.kind, model=self.model_name,
                      dim=int(w["dim"]), recipe=self.recipe, params=params,
                      software=self.software, force=self.cfg.force,
                      replace=self.cfg.replace_space)
        self.summary.dim = int(w["dim"])
        self.prepared = True

    def _merge(self, job: JobDir, name: str, expected: dict[str, str]) -> None:
        """Store one result shard's vectors (rows whose input is still the one to embed)."""
        from memeatlas.corpus.spaces import write_vectors

        table, meta = job.read_result(name)
        s = self.summary
        ids, hashes, vecs = [], [], []
        n_failed = 0
        for r in table.to_pylist():
            m = r["meme_id"]
            if expected.get(m) != r["input_hash"]:  # merged already, or its input changed
                continue
            del expected[m]
            if r["vector"] is None:
                n_failed += 1
                s.failed += 1
                if len(s.failures) < _MAX_FAILURES_KEPT:
                    s.failures.append((m, r.get("error") or "unreadable"))
                continue
            ids.append(m)
            hashes.append(r["input_hash"])
            vecs.append(r["vector"])
        if ids and not self.prepared:
            self._prepare(meta)
        t = time.perf_counter()
        if ids:
            # write_vectors replaces the ids' rows (delete + insert), so merging a shard a
            # second time after a crash between these two commits changes nothing.
            write_vectors(self.store, space=self.space, model=self.model_name, ids=ids,
                          vectors=np.asarray(vecs, dtype=np.float32), input_hashes=hashes,
                          annotator=self.summary.annotator if self.kind == "text" else None)
        with self.store.transaction():
            record_shard(self.store, job_id=job.job_id, shard=name, step="embed",
                         run_id=meta.get("run_id"), merged_by=self.run_tag, n_rows=len(ids),
                         n_failed=n_failed, worker=meta.get("worker", {}))
        s.write_seconds += time.perf_counter() - t
        s.encode_seconds += float(meta.get("encode_seconds", 0.0))  # worker-seconds
        s.truncated += int(meta.get("truncated", 0))
        s.embedded += len(ids)
        if getattr(self, "bar", None) is not None:
            self.bar.update(len(ids) + n_failed)


class EmbedWorker:
    """A Ray Data actor: loads the encoder once, embeds an input shard, writes the result."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        w = spec["worker"]
        self.kind = w["kind"]
        if self.kind == "text":
            from memeatlas.embed.text import TextEncoder

            self.enc = TextEncoder(w["model"], device=w["device"])
            self.describe = {"dim": self.enc.dim, "max_seq_length": self.enc.max_seq_length,
                             "device": self.enc.device}
        else:
            from memeatlas.embed.image import ImageEncoder

            self.enc = ImageEncoder(w["model"], backend=w["backend"], device=w["device"])
            self.describe = {"dim": self.enc.dim, "backend": self.enc.backend,
                             "device": self.enc.device}
        if spec.get("wrap_backend"):
            self.enc = resolve(spec["wrap_backend"])(self.enc)
        self.job = JobDir(**spec["job"])

    def __call__(self, batch: pa.Table) -> pa.Table:
        return pa.table({"shard": [self._one(n) for n in batch.column("input").to_pylist()]})

    def _one(self, input_name: str) -> str:
        w = self.spec["worker"]
        block = self.job.read_input(input_name)
        ids = block.column("meme_id").to_pylist()
        errors: list[str | None] = [None] * len(ids)
        t = time.perf_counter()
        truncated = 0
        if self.kind == "text":
            texts = block.column("text").to_pylist()
            vecs = self.enc.encode(texts, batch_size=w["batch_size"])
            truncated = self.enc.count_truncated(texts)
            vectors: list[Any] = list(vecs)
        else:
            from memeatlas.distributed.uri import load_any
            from memeatlas.errors import InputError

            imgs, ok = [], []
            for i, p in enumerate(block.column("path").to_pylist()):
                try:
                    imgs.append(load_any(p, w["max_pixels"]))
                    ok.append(i)
                except InputError as exc:
                    errors[i] = str(exc)
            vectors = [None] * len(ids)
            if imgs:
                for i, v in zip(ok, self.enc.encode(imgs, batch_size=w["batch_size"]),
                                strict=True):
                    vectors[i] = v
        dt = time.perf_counter() - t
        dim = self.describe["dim"]
        out = pa.table({
            "meme_id": pa.array(ids, pa.string()),
            "input_hash": block.column("input_hash"),
            "vector": pa.array([None if v is None else np.asarray(v, np.float32).tolist()
                                for v in vectors], pa.list_(pa.float32(), dim)),
            "error": pa.array(errors, pa.string()),
        })
        name = f"{self.spec['run_id']}-{short_hash(ids, 16)}.parquet"
        self.job.write_result(name, out, {
            "run_id": self.spec["run_id"], "encoder": self.describe,
            "worker": worker_info(device=self.describe["device"]), "encode_seconds": dt,
            "truncated": truncated, "input": input_name})
        return name
