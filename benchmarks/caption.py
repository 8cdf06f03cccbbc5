"""Caption throughput: images/s, tokens/s and the share of time spent outside the model.

Runs the real caption loop (`memeatlas.caption.run`: image loading, preprocessing,
generation, validation, DuckDB writes) over synthetic memes at several batch sizes,
with one backend instance (model loaded once, grammar compiled once, one warm-up
batch not counted).

    # CPU, tiny random Qwen2.5-VL (what CI machines can run)
    python benchmarks/caption.py --size tiny --batch-sizes 1,4,8 --n-images 16 --device cpu

    # GPU, random-initialised real-size Qwen2.5-VL-3B (no weights download)
    python benchmarks/caption.py --size 3b --device cuda --dtype bfloat16 \
        --batch-sizes 1,8,32 --n-images 64 --max-new-tokens 512 --out results/caption_gpu.json

    # A real model directory
    python benchmarks/caption.py --model /models/Qwen2.5-VL-3B-Instruct --device cuda

"Outside model" = everything but the backend's generate call: setup, image
loading + resizing, validation, DuckDB writes; the transformers backend also
reports its input preparation (chat template, qwen-vl-utils resize, processor
patchify), which is shown separately ("prepare") and counted inside the model
call in the main figure, plus in a stricter second figure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MEMEATLAS_NO_PROGRESS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _images(out: Path, n: int) -> list[Path]:
    try:
        from memeatlas.demo.corpus import write_corpus

        return [it.path for it in write_corpus(out, n=n, seed=0)]
    except ImportError:  # demo corpus not available: plain coloured images
        from PIL import Image

        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for i in range(n):
            p = out / f"m{i:04d}.png"
            Image.new("RGB", (480, 400), (i * 7 % 255, 120, 200)).save(p)
            paths.append(p)
        return paths


def _insert(store, paths: list[Path]) -> None:
    from PIL import Image

    with store.transaction():
        for p in paths:
            data = p.read_bytes()
            with Image.open(p) as im:
                w, h, fmt = im.width, im.height, im.format
            store.execute(
                "INSERT INTO memes (meme_id, path, source, has_image, width, height, format, "
                "n_bytes) VALUES (?, ?, 'folder', true, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [hashlib.sha256(data).hexdigest(), str(p.resolve()), w, h, fmt, len(data)])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", default="transformers", help="transformers, vllm, openai or ocr")
    ap.add_argument("--model", default=None, help="model id/dir; default: build a random one")
    ap.add_argument("--size", default="tiny", choices=["tiny", "3b"],
                    help="random model to build when --model is not given")
    ap.add_argument("--batch-sizes", default="1,4,8")
    ap.add_argument("--n-images", type=int, default=16, help="images per batch size")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--max-pixels", type=int, default=1024 * 28 * 28)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    ap.add_argument("--option", "-o", action="append", default=[], help="backend KEY=VALUE")
    ap.add_argument("--out", default=None, help="write the JSON results here")
    args = ap.parse_args(argv)

    import torch

    from memeatlas.caption import CaptionConfig, run
    from memeatlas.caption.backends import create
    from memeatlas.store import Store

    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="memeatlas-bench-caption-"))
    model = args.model
    t = time.perf_counter()
    if model is None and args.backend in ("transformers", "vllm"):
        from memeatlas.testing.tiny_qwen import build_tiny_qwen25vl

        model = str(build_tiny_qwen25vl(work / f"random-qwen25vl-{args.size}", size=args.size,
                                        dtype="bfloat16" if args.size == "3b" else "float32"))
    build_s = time.perf_counter() - t
    opts: dict = {}
    for kv in args.option:
        k, v = kv.split("=", 1)
        try:
            opts[k] = json.loads(v)
        except ValueError:
            opts[k] = v
    if args.backend == "transformers":
        opts.setdefault("device", args.device)
        opts.setdefault("dtype", args.dtype)
    t = time.perf_counter()
    backend = create(args.backend, model=model, **opts)
    load_s = time.perf_counter() - t

    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    paths = _images(work / "imgs", args.n_images + max(batch_sizes))
    warm, paths = paths[: max(batch_sizes)], paths[max(batch_sizes):]
    rows = []
    for bs in batch_sizes:
        db = work / f"bench_bs{bs}.duckdb"
        with Store.open(db) as store:
            _insert(store, warm[:bs])
            cfg = CaptionConfig(backend=args.backend, model=model, batch_size=bs, retries=0,
                                max_new_tokens=args.max_new_tokens, max_pixels=args.max_pixels)
            run(store, cfg, backend=backend)  # warm-up: grammar compile, kernels, caches
            _insert(store, paths)
            bt = dict(getattr(backend, "timings", {}) or {})
            s = run(store, cfg, backend=backend)
            at = dict(getattr(backend, "timings", {}) or {})
        prep = at.get("prepare", 0.0) - bt.get("prepare", 0.0)
        phases = {k: v for k, v in s.timings.items() if k != "backend_init"}
        total = sum(phases.values())
        outside = total - phases.get("model", 0.0)
        row = {
            "batch_size": bs, "images": s.n_selected, "done": s.n_done, "failed": s.n_failed,
            "seconds": round(s.seconds, 3),
            "images_per_s": round(s.n_selected / s.seconds, 3),
            "tokens_out": s.tokens_out, "tokens_in": s.tokens_in,
            "gen_tokens_per_s": round(s.tokens_out / s.seconds, 2),
            "outside_model_share": round(outside / total, 4),
            "outside_incl_prepare_share": round((outside + prep) / total, 4),
            "timings": s.timings, "prepare_s": round(prep, 4),
        }
        rows.append(row)
        print(f"bs={bs:>3}  {row['images_per_s']:8.2f} img/s  {row['gen_tokens_per_s']:9.1f} tok/s  "
              f"outside model {100 * row['outside_model_share']:5.2f}%  "
              f"(+prepare {100 * row['outside_incl_prepare_share']:5.2f}%)  "
              f"done {s.n_done}/{s.n_selected}", file=sys.stderr)
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    result = {
        "backend": args.backend, "model": model if args.model else f"random qwen2.5-vl {args.size}",
        "annotator": backend.annotator, "device": args.device, "gpu": gpu, "dtype": args.dtype,
        "max_new_tokens": args.max_new_tokens, "max_pixels": args.max_pixels,
        "build_model_s": round(build_s, 2), "load_model_s": round(load_s, 2),
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "loadavg_at_end": load, "python": platform.python_version(),
        "torch": torch.__version__, "rows": rows, "command": " ".join(sys.argv),
    }
    backend.close()
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
