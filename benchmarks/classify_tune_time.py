"""Benchmark: metric-learning time per 1,000 examples (bundled MiniLM, CPU).

    python benchmarks/classify_tune_time.py [--n 1000] [--batch-size 32] [--loss mnrl] [--threads 2]

N ImgFlip captions (seeded, stratified over the 88 templates; box text as in classify_imgflip.py),
one epoch of `memeatlas.classify.metric.fine_tune`; prints wall seconds, process CPU seconds
and both per 1,000 examples. Model load is excluded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MEMEATLAS_NO_PROGRESS", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--loss", default="mnrl")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    import torch
    from classify_imgflip import load

    from memeatlas.classify.metric import fine_tune

    torch.set_num_threads(a.threads)
    per = max(2, a.n // 88 + 1)
    train, _, _ = load(per, 0, 0, 0)
    train = train[: a.n]
    c0, t0 = time.process_time(), time.perf_counter()
    _, steps, sec = fine_tune([x for x, _ in train], [t for _, t in train], loss=a.loss, epochs=1,
                              batch_size=a.batch_size, seed=0)
    cpu = time.process_time() - c0
    print(json.dumps({"examples": len(train), "loss": a.loss, "batch_size": a.batch_size, "threads": a.threads,
                      "steps": steps, "train_seconds": round(sec, 1), "cpu_seconds_incl_load": round(cpu, 1),
                      "seconds_per_1000": round(1000 * sec / len(train), 1),
                      "wall_incl_load": round(time.perf_counter() - t0, 1)}))


if __name__ == "__main__":
    main()
