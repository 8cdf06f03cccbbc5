"""Time to fail when a model id is neither cached nor reachable (issue 16, defect 14).

For each loader behind `caption` (transformers backend), `embed text` (sentence-transformers)
and `embed image` (transformers CLIP), a fresh subprocess imports the libraries first and
then times only the load of a hub id that is not in the (empty) cache, with HF_HUB_OFFLINE
unset: so the figure is the time spent on the hub and the cache, not Python and torch
start-up, which on a busy machine dwarfs it. It also counts the lines the load printed
(retry warnings). Run on a machine without access to huggingface.co:

    python benchmarks/offline_load.py                          # this tree's memeatlas
    python benchmarks/offline_load.py --pythonpath /old/tree   # another tree (before/after)
    python benchmarks/offline_load.py --offline                # with HF_HUB_OFFLINE=1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOADERS = {
    "caption (transformers)": ("Qwen/Qwen2.5-VL-3B-Instruct",
                               "from memeatlas.caption.backends.transformers import "
                               "TransformersBackend as L; load = lambda m: L(model=m, device='cpu')"),
    "embed text (sentence-transformers)": ("sentence-transformers/paraphrase-MiniLM-L3-v2",
                                           "from memeatlas.embed.text import TextEncoder as L; "
                                           "load = lambda m: L(m, device='cpu')"),
    "embed image (transformers CLIP)": ("openai/clip-vit-base-patch32",
                                        "from memeatlas.embed.image import ImageEncoder as L; "
                                        "load = lambda m: L(m, backend='transformers', "
                                        "device='cpu')"),
}
CHILD = """
import json, sys, time
import torch, transformers, sentence_transformers  # imported before the clock starts
{setup}
t0 = time.perf_counter()
try:
    load({model!r})
    err = None
except Exception as exc:
    err = type(exc).__name__ + ': ' + (str(exc).splitlines() or [''])[0]
print(json.dumps({{"seconds": time.perf_counter() - t0, "error": err}}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pythonpath", default=str(ROOT), help="tree whose memeatlas to run")
    ap.add_argument("--offline", action="store_true", help="also set HF_HUB_OFFLINE=1")
    args = ap.parse_args()
    print("| loader | model | seconds to the error | lines printed | error |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items()
               if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
        env.update(PYTHONPATH=args.pythonpath, HF_HOME=str(Path(tmp) / "hf"),
                   MEMEATLAS_NO_PROGRESS="1")
        if args.offline:
            env["HF_HUB_OFFLINE"] = "1"
        for name, (model, setup) in LOADERS.items():
            # cwd outside any tree: `python -c` puts the working directory first on sys.path.
            p = subprocess.run([sys.executable, "-c", CHILD.format(setup=setup, model=model)],
                               capture_output=True, text=True, env=env, cwd=tmp)
            lines = p.stdout.strip().splitlines()
            try:
                res = json.loads(lines[-1])
            except (IndexError, json.JSONDecodeError):
                print(f"| {name} | `{model}` | – | – | child failed: {p.stderr[-300:]!r} |")
                continue
            printed = len(lines) - 1 + len(p.stderr.strip().splitlines())
            err = (res["error"] or "loaded")[:150].replace("|", "\\|")
            print(f"| {name} | `{model}` | {res['seconds']:.1f} | {printed} | {err} |", flush=True)


if __name__ == "__main__":
    main()
