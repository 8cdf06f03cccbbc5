"""Ingest throughput: images/s of `memeatlas ingest` on N generated image macros.

    python benchmarks/ingest.py --n 1000

Writes the images once (not timed), then times a first ingest (all new) and a
second one (all present) in fresh processes through the real CLI.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--out", type=Path, help="write JSON results here")
    args = ap.parse_args()

    from memeatlas.demo.corpus import TEMPLATES, draw_meme

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "imgs"
        folder.mkdir()
        templates = sorted(TEMPLATES)
        for i in range(args.n):
            img = draw_meme(f"TOP TEXT {i}", f"BOTTOM TEXT {i * 7}", templates[i % 3], seed=i)
            img.save(folder / f"m{i:05d}.{'png' if i % 2 else 'jpg'}")
        db = Path(tmp) / "bench.duckdb"
        env = {**os.environ, "MEMEATLAS_NO_PROGRESS": "1"}
        results = {}
        for label in ("first (all new)", "second (all present)"):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "memeatlas.cli", "ingest", str(folder),
                            "--db", str(db)], check=True, env=env, capture_output=True)
            wall = time.perf_counter() - t0
            results[label] = {"seconds": round(wall, 2), "images_per_s": round(args.n / wall, 1)}
            print(f"{label:22s} {args.n} images in {wall:6.2f} s  = {args.n / wall:7.1f} images/s "
                  f"(whole command, process start included)")
        results["load_average"] = os.getloadavg()
        if args.out:
            args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
