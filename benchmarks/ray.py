"""Benchmark the ray engine against a local run: items/s of caption and embed text.

    python benchmarks/ray.py [--caption-n 200] [--embed-n 1000] [--workers 1 2]
                             [--out benchmarks/results/scale.md]

caption: N generated meme images (320×240) through the tiny random Qwen2.5-VL (transformers,
CPU, one torch thread per worker), batch 4; embed text: N synthetic annotations through the
bundled all-MiniLM-L6-v2, batch 32. Each mode gets its own fresh DuckDB file with the same
rows: local (this process), then ray with 1 and 2 actors on a local cluster started once
(`ray.init(num_cpus=2)`, its start time reported apart). A mode's time is the whole
`run` / `embed_text` call: selection, actor start and model load, shards, merge. The ratio
ray/local is the engine's overhead on one machine (it cannot show multi-node speed-up).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# This file is named ray.py: keep its folder off the path so `import ray` finds Ray.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MEMEATLAS_NO_PROGRESS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def caption_db(path: Path, img_dir: Path, n: int) -> None:
    from helpers_caption import draw_meme, insert_memes

    from memeatlas.store import Store

    img_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = img_dir / f"m{i:05d}.jpg"
        if not p.exists():
            draw_meme(f"TOP {i}", f"BOTTOM {i}", size=(320, 240),
                      bg=(37 * i % 255, 120, 200 - i % 150)).save(p, quality=85)
        paths.append(p)
    with Store.open(path) as s:
        insert_memes(s, paths)


def embed_db(path: Path, n: int) -> None:
    from helpers_embed import add_annotation, add_meme, meme_id_for

    from memeatlas.store import Store

    words = ("cat dog politics stock market election football cheese rain office monday "
             "coffee code bug deploy friday pizza").split()
    with Store.open(path) as s, s.transaction():
        for i in range(n):
            m = meme_id_for(f"e{i}")
            add_meme(s, m, None, has_image=False)
            text = " ".join(words[(i * 7 + j) % len(words)] for j in range(8 + i % 40))
            add_annotation(s, m, "vlm:bench", description=f"A meme about {text}.",
                           intent=f"Mocks {words[i % len(words)]}.")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--caption-n", type=int, default=200)
    ap.add_argument("--embed-n", type=int, default=1000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--local-threads", type=int, default=None,
                    help="torch threads of the local runs (Ray actors get 1 each: Ray sets "
                         "OMP_NUM_THREADS to the actor's num_cpus)")
    ap.add_argument("--ray-first", action="store_true",
                    help="run the ray modes before the local one (the machine's load drifts; "
                         "run both orders to see it)")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    if a.local_threads:
        import torch

        torch.set_num_threads(a.local_threads)

    import ray

    from memeatlas.caption import CaptionConfig, run
    from memeatlas.embed import TextEmbedConfig, embed_text
    from memeatlas.store import Store
    from memeatlas.testing.tiny_qwen import build_tiny_qwen25vl

    work = Path(tempfile.mkdtemp(prefix="memeatlas-raybench-"))
    model = build_tiny_qwen25vl(work / "tiny-qwen25vl")
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    t_init = time.perf_counter() - t0
    rows = []
    modes = [("local", None)] + [(f"ray, {w} worker{'s' if w > 1 else ''}", w)
                                 for w in a.workers]
    if a.ray_first:
        modes = modes[1:] + modes[:1]
    if a.caption_n:
        for label, w in modes:
            db = work / f"cap-{w}.duckdb"
            caption_db(db, work / "imgs", a.caption_n)
            cfg = CaptionConfig(model=str(model), batch_size=4, max_new_tokens=200,
                                backend_options={"device": "cpu", "threads": 1})
            if w:
                cfg.engine, cfg.engine_options = "ray", {"workers": w, "shard_size": 16}
            with Store.open(db) as s:
                t0 = time.perf_counter()
                summ = run(s, cfg)
                dt = time.perf_counter() - t0
            assert summ.n_done + summ.n_failed == a.caption_n, summ
            rows.append(("caption (tiny Qwen2.5-VL)", label, a.caption_n, dt))
            print(rows[-1], flush=True)
    if a.embed_n:
        for label, w in modes:
            db = work / f"emb-{w}.duckdb"
            embed_db(db, a.embed_n)
            cfg = TextEmbedConfig(batch_size=32, commit_every=128)
            if w:
                cfg.engine, cfg.engine_options = "ray", {"workers": w}
            with Store.open(db) as s:
                t0 = time.perf_counter()
                summ = embed_text(s, cfg)
                dt = time.perf_counter() - t0
            assert summ.embedded == a.embed_n, summ
            rows.append(("embed text (MiniLM)", label, a.embed_n, dt))
            print(rows[-1], flush=True)
    ray.shutdown()
    shutil.rmtree(work, ignore_errors=True)

    load = os.getloadavg()[0]
    local = {r[0]: r[3] for r in rows if r[1] == "local"}
    lines = [f"### Ray engine vs local ({platform.machine()}, {os.cpu_count()} cores, "
             f"load average {load:.1f} at the end)", "",
             f"`python benchmarks/ray.py --caption-n {a.caption_n} --embed-n {a.embed_n} "
             f"--workers {' '.join(map(str, a.workers))}"
             f"{f' --local-threads {a.local_threads}' if a.local_threads else ''}"
             f"{' --ray-first' if a.ray_first else ''}`; "
             f"`ray.init(num_cpus=2)` took {t_init:.1f} s (not in the times below).", "",
             "| step | engine | items | seconds | items/s | time vs local |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for step, label, n, dt in rows:
        lines.append(f"| {step} | {label} | {n} | {dt:.1f} | {n / dt:.2f} | "
                     f"{dt / local[step]:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        with a.out.open("a") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
