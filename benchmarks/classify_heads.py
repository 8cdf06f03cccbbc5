"""Benchmark: training time, peak memory and prediction throughput of each classify head.

    python benchmarks/classify_heads.py [--n 10000] [--classes 20] [--predict 10000]

Synthetic L2-normalised vectors with planted classes: one space of 384 dimensions (MiniLM's size),
and two spaces of 384 + 1,280 (MiniLM text + an EfficientNet/MobileNetV2-sized image vector).
Each head runs in a fresh subprocess so its peak RSS (ru_maxrss, includes the Python + numpy/torch
import baseline, printed separately) is its own. Training = one `fit` with default parameters
(no cross-validation); prediction = `predict_proba` on --predict new vectors.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("MEMEATLAS_NO_PROGRESS", "1")
ROOT = Path(__file__).resolve().parent.parent
HEADS = ("knn", "linear", "adapter", "mlp")


def _data(n: int, dims: list[int], C: int, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, n)
    out = []
    for d in dims:
        centres = rng.normal(size=(C, d))
        X = centres[y] + 3.0 * rng.normal(size=(n, d))
        out.append((X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32))
    return out, y


def child(head: str, n: int, dims: list[int], C: int, n_pred: int) -> None:
    sys.path.insert(0, str(ROOT))
    import numpy as np  # noqa: F401

    if head != "baseline":
        from memeatlas.classify.heads import make_head
        from memeatlas.classify.metrics import score
    All, yall = _data(n + n_pred, dims, C, 0)  # same centres; the last n_pred rows are new memes
    Xs, y = [a[:n] for a in All], yall[:n]
    Qs, yq = [a[n:] for a in All], yall[n:]
    if head == "baseline":
        import sklearn.linear_model  # noqa: F401
        import torch  # noqa: F401

        print(json.dumps({"head": "baseline", "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
        return
    h = make_head(head)
    t0 = time.perf_counter()
    h.fit(Xs, y, C, seed=0)
    t_fit = time.perf_counter() - t0
    t1 = time.perf_counter()
    P = h.predict_proba(Qs)
    t_pred = time.perf_counter() - t1
    f1 = score(yq, P.argmax(1), [str(i) for i in range(C)], bootstrap=0).macro_f1
    print(json.dumps({"head": head, "dims": dims, "n": n, "fit_s": round(t_fit, 2),
                      "predict_per_s": round(n_pred / t_pred), "macro_f1": round(f1, 3),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--classes", type=int, default=20)
    ap.add_argument("--predict", type=int, default=10000)
    ap.add_argument("--heads", default=",".join(HEADS))
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        head, n, dims, C, n_pred = a.child
        child(head, int(n), [int(d) for d in dims.split("+")], int(C), int(n_pred))
        return
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for dims in ("384", "384+1280"):
        for head in ["baseline", *a.heads.split(",")]:
            r = subprocess.run([sys.executable, __file__, "--child", head, str(a.n), dims, str(a.classes),
                                str(a.predict)], capture_output=True, text=True, env=env)
            print(r.stdout.strip() or r.stderr.strip()[-500:], flush=True)


if __name__ == "__main__":
    main()
