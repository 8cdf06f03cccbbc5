"""Time to fail when a model id is neither cached nor reachable (issue 16, defect 14).

Runs `caption`, `embed text` and `embed image` with hub model ids that are not in the
cache, in subprocesses with HF_HUB_OFFLINE unset and an empty HF_HOME, on a one-meme
store, and reports wall time, exit code, the number of output lines and the error line.
Each command also runs once with an empty local directory as the model (`control`): it
imports the same libraries and fails at once, so `seconds - control` is the time spent
on the hub and cache, free of Python and torch start-up (large on a busy machine).
Run it on a machine without access to huggingface.co (or pass --endpoint to point the
hub at an address that refuses connections):

    python benchmarks/offline_load.py                       # this tree's memeatlas
    python benchmarks/offline_load.py --pythonpath /old/tree  # another tree, for a before/after
    python benchmarks/offline_load.py --offline             # with HF_HUB_OFFLINE=1 as well
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = [
    ["caption", "--model", "Qwen/Qwen2.5-VL-3B-Instruct"],
    ["embed", "text", "--model", "sentence-transformers/paraphrase-MiniLM-L3-v2"],
    ["embed", "image", "--model", "openai/clip-vit-base-patch32"],
]


def _store(path: Path, pythonpath: str) -> None:
    code = (
        "import sys; from PIL import Image; from memeatlas.store import Store; "
        "from memeatlas.ingest import ingest_paths; "
        f"d = {str(path.parent)!r}; Image.new('RGB', (64, 48), (200, 30, 30)).save(d + '/a.png'); "
        f"s = Store.open({str(path)!r}); ingest_paths(s, [d + '/a.png']); "
        "s.execute(\"INSERT INTO annotations (meme_id, annotator, prompt_hash, schema_hash, "
        "description, intent) SELECT meme_id, 'human:x', '', '', 'a cat', 'joke' FROM memes\"); "
        "s.close()")
    # cwd outside any tree: `python -m` puts the working directory first on sys.path.
    subprocess.run([sys.executable, "-c", code], check=True, cwd=path.parent,
                   env=dict(os.environ, PYTHONPATH=pythonpath, MEMEATLAS_NO_PROGRESS="1"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pythonpath", default=str(ROOT), help="tree whose memeatlas to run")
    ap.add_argument("--endpoint", default=None, help="HF_ENDPOINT to use (default: the real hub)")
    ap.add_argument("--offline", action="store_true", help="also set HF_HUB_OFFLINE=1")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        db = t / "s.duckdb"
        _store(db, args.pythonpath)
        env = {k: v for k, v in os.environ.items()
               if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
        env.update(PYTHONPATH=args.pythonpath, HF_HOME=str(t / "hf"))
        if args.endpoint:
            env["HF_ENDPOINT"] = args.endpoint
        if args.offline:
            env["HF_HUB_OFFLINE"] = "1"
        empty = t / "empty-model"
        empty.mkdir()

        def timed(cmd: list[str]) -> tuple[int, float, list[str]]:
            run_db = t / "run.duckdb"
            shutil.copy(db, run_db)
            t0 = time.perf_counter()
            p = subprocess.run([sys.executable, "-m", "memeatlas.cli", *cmd, "--db", str(run_db)],
                               capture_output=True, text=True, env=env, cwd=tmp)
            return p.returncode, time.perf_counter() - t0, (p.stdout + p.stderr).strip().splitlines()

        print("| command | exit | seconds | control s | hub/cache s | output lines | error |\n"
              "|---|---|---|---|---|---|---|")
        for cmd in COMMANDS:
            rc, dt, out = timed(cmd)
            _, ctl, _ = timed(cmd[:-1] + [str(empty)])
            last = (out[-1] if out else "")[:140].replace("|", "\\|")
            print(f"| `{' '.join(cmd)}` | {rc} | {dt:.1f} | {ctl:.1f} | {dt - ctl:.1f} | "
                  f"{len(out)} | {last} |", flush=True)


if __name__ == "__main__":
    main()
