"""The job directory: input shards the driver writes, result shards the workers write.

    <job_dir>/<job_id>/in/part-00000.parquet     the to-do set, `shard_size` rows each
    <job_dir>/<job_id>/out/<run>-<hash>.parquet  one result shard per input block

`job_dir` is a local/shared path or a URI pyarrow understands (s3://, gs://, hdfs://). Result
shards appear atomically: on a filesystem a worker writes `.tmp` and renames; object stores
publish an object only when its upload completes. A half-written `.tmp` of a killed worker is
ignored and removed by the next run.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

META_KEY = b"memeatlas"


def _fs(uri: str):
    """(pyarrow filesystem, path inside it) for a local path or a URI."""
    from pyarrow import fs

    if "://" in uri and not uri.startswith("file://"):
        return fs.FileSystem.from_uri(uri)
    path = uri[len("file://"):] if uri.startswith("file://") else uri
    return fs.LocalFileSystem(), os.path.abspath(path)


class JobDir:
    """Input and result shards of one job (`job_id`) under `root` (path or URI)."""

    def __init__(self, root: str, job_id: str) -> None:
        self.root = root.rstrip("/")
        self.job_id = job_id
        self.fs, base = _fs(self.root)
        self.base = f"{base.rstrip('/')}/{job_id}"
        self.in_dir = f"{self.base}/in"
        self.out_dir = f"{self.base}/out"
        self.is_local = type(self.fs).__name__ == "LocalFileSystem"

    def uri(self, path: str) -> str:
        """A path inside this job as Ray/pyarrow readers take it (scheme kept for URIs)."""
        if self.is_local:
            return path
        scheme = self.root.split("://", 1)[0]
        return f"{scheme}://{path}"

    def spec(self) -> dict[str, str]:
        """What a worker needs to reopen this job directory."""
        return {"root": self.root, "job_id": self.job_id}

    # -- inputs --------------------------------------------------------------------------
    def write_inputs(self, table: pa.Table, shard_size: int) -> int:
        """Replace the input shards with `table` cut into `shard_size` rows; returns shards."""
        self.fs.create_dir(self.in_dir, recursive=True)
        self.fs.delete_dir_contents(self.in_dir, missing_dir_ok=True)
        n = 0
        for n, start in enumerate(range(0, table.num_rows, shard_size)):
            part = table.slice(start, shard_size)
            pq.write_table(part, f"{self.in_dir}/part-{n:05d}.parquet", filesystem=self.fs)
        return n + 1 if table.num_rows else 0

    def inputs(self) -> list[str]:
        """File names of the input shards, in order."""
        from pyarrow import fs

        sel = fs.FileSelector(self.in_dir, allow_not_found=True)
        return sorted(i.path.rsplit("/", 1)[-1] for i in self.fs.get_file_info(sel)
                      if i.path.endswith(".parquet"))

    def read_input(self, name: str) -> pa.Table:
        return pq.read_table(f"{self.in_dir}/{name}", filesystem=self.fs)

    # -- results -------------------------------------------------------------------------
    def write_result(self, name: str, table: pa.Table, meta: dict[str, Any]) -> str:
        """Publish one result shard atomically; returns its file name."""
        self.fs.create_dir(self.out_dir, recursive=True)
        table = table.replace_schema_metadata({META_KEY: json.dumps(meta, default=str).encode()})
        final = f"{self.out_dir}/{name}"
        if self.is_local:
            tmp = f"{final}.{os.getpid()}.tmp"
            pq.write_table(table, tmp, filesystem=self.fs)
            self.fs.move(tmp, final)
        else:  # object stores: the object exists only once its upload completed
            pq.write_table(table, final, filesystem=self.fs)
        return name

    def results(self) -> list[str]:
        """File names of the finished result shards, sorted (temporary files removed)."""
        from pyarrow import fs

        sel = fs.FileSelector(self.out_dir, allow_not_found=True)
        names = []
        for info in self.fs.get_file_info(sel):
            name = info.path.rsplit("/", 1)[-1]
            if name.endswith(".tmp"):
                self.fs.delete_file(info.path)  # a worker killed mid-write
            elif name.endswith(".parquet"):
                names.append(name)
        return sorted(names)

    def read_result(self, name: str) -> tuple[pa.Table, dict[str, Any]]:
        """A result shard and the metadata its worker stored with it."""
        t = pq.read_table(f"{self.out_dir}/{name}", filesystem=self.fs)
        meta = json.loads((t.schema.metadata or {}).get(META_KEY, b"{}"))
        return t, meta

    def remove_results(self, names: list[str]) -> None:
        for name in names:
            try:
                self.fs.delete_file(f"{self.out_dir}/{name}")
            except FileNotFoundError:
                pass

    def remove_inputs(self) -> None:
        self.fs.delete_dir_contents(self.in_dir, missing_dir_ok=True)


def merged_shards(store, job_id: str) -> set[str]:
    """Result shards of `job_id` already merged into this store."""
    return {r[0] for r in store.fetchall("SELECT shard FROM engine_shards WHERE job_id = ?",
                                         [job_id])}


def record_shard(store, *, job_id: str, shard: str, step: str, run_id: str | None,
                 merged_by: str | None, n_rows: int, n_failed: int, worker: dict[str, Any]
                 ) -> None:
    """The `engine_shards` row of a merged shard (call inside the merge's transaction)."""
    from memeatlas.provenance import stable_json, utcnow

    store.execute(
        "INSERT INTO engine_shards (job_id, shard, step, engine, run_id, merged_by, n_rows, "
        "n_failed, worker, merged_at) VALUES (?, ?, ?, 'ray', ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        [job_id, shard, step, run_id, merged_by, n_rows, n_failed, stable_json(worker),
         utcnow()])


def worker_info(**extra: Any) -> dict[str, Any]:
    """Host and process of the worker writing a shard (stored with the shard)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), **extra}
