"""Script for the ray tests' killed-driver case.

`python tests/helpers_ray.py caption DB MODEL_DIR ADDRESS JOB_DIR` joins the test's Ray
cluster at ADDRESS and captions with shard size 2; after merging its first shard it prints
MERGED and blocks (the workers go on writing shards) so the test can SIGKILL it.
"""

from __future__ import annotations

import os
import sys
import time


def _caption(db: str, model: str, address: str, job_dir: str) -> None:
    from memeatlas.caption import CaptionConfig, run
    from memeatlas.store import Store

    def on_batch(n: int, done: int) -> None:
        print(f"MERGED {n} {done}", flush=True)
        time.sleep(600)  # killed here

    store = Store.open(db)
    run(store, CaptionConfig(model=model, batch_size=2, retries=0, max_new_tokens=200,
                             backend_options={"device": "cpu", "threads": 1},
                             engine="ray", on_batch=on_batch,
                             engine_options={"address": address, "workers": 1,
                                             "shard_size": 2, "job_dir": job_dir}))


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("MEMEATLAS_NO_PROGRESS", "1")
    if sys.argv[1] == "caption":
        _caption(*sys.argv[2:6])
