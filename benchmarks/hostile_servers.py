"""caption and label against hostile model servers: peak memory and time, as real processes.

Issue 23's targets: against a server that answers without end, drips, stalls or sends garbage,
the peak memory of `memeatlas caption` and `memeatlas label` stays below 500 MB and each request
ends within its deadline + 5 s. Each case runs the command as a subprocess against
`memeatlas.testing.hostile_server.HostileServer` (127.0.0.1) and records:

- peak RSS of the command (ru_maxrss of the process, measured from a small launcher),
- its wall time and exit code, the first `Error:` line,
- the longest time the server saw one request held open (per-request time, server side).

A guard kills a command whose RSS passes `--kill-mb` (default 1500) or that runs past
`--kill-s`, so the "before" measurement (`--code /path/to/old/checkout`) cannot exhaust the
machine's memory.

    python benchmarks/hostile_servers.py --out benchmarks/results/hostile_servers.json
    python benchmarks/hostile_servers.py --code /work/main --cases caption:chat:endless \\
        caption:chat:drip --out /tmp/before.json      # the code before the fix
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODES = ["ok", "endless", "endless_sse", "huge_json", "many_objects", "gzip_bomb", "big_length",
         "deep", "garbage", "drip", "drip_headers", "stall"]
TIMEOUT = 5  # the deadline given to every command (s)


def _stores(tmp: Path) -> tuple[Path, Path, str]:
    """A caption store (2 memes with images) and a label store (3 clusters); returns the
    paths and the cluster run's id."""
    sys.path.insert(0, str(ROOT))
    import hashlib

    import numpy as np
    from PIL import Image, ImageDraw

    from memeatlas.cluster import ClusterConfig, run
    from memeatlas.store import Store

    cap = tmp / "caption.duckdb"
    st = Store.open(cap)
    for i in range(2):
        img = Image.new("RGB", (320, 240), (40 * i, 120, 200))
        ImageDraw.Draw(img).text((20, 20), f"MEME {i}", fill=(0, 0, 0))
        p = tmp / f"m{i}.png"
        img.save(p)
        data = p.read_bytes()
        st.execute("INSERT INTO memes (meme_id, path, source, has_image, width, height, format, "
                   "n_bytes) VALUES (?, ?, 'folder', true, 320, 240, 'PNG', ?)",
                   [hashlib.sha256(data).hexdigest(), str(p), len(data)])
    st.close()

    lab = tmp / "label.duckdb"
    st = Store.open(lab)
    rng = np.random.default_rng(0)
    words = ["cat kitten meow box", "car traffic engine road", "pizza cheese slice oven"]
    centres = rng.normal(size=(3, 16))
    ids, vecs = [], []
    for i in range(18):
        c = i % 3
        mid = hashlib.sha256(f"meme-{i}".encode()).hexdigest()
        ids.append(mid)
        v = centres[c] + 0.05 * rng.normal(size=16)
        vecs.append((v / np.linalg.norm(v)).astype(np.float32).tolist())
        st.execute("INSERT INTO memes (meme_id, path, source, has_image) VALUES "
                   "(?, ?, 'folder', false)", [mid, f"/tmp/{mid[:8]}.png"])
        st.execute("INSERT INTO annotations (meme_id, annotator, prompt_hash, schema_hash, "
                   "description, intent, ocr_text) VALUES (?, 'human:bench', '', '', ?, '', '')",
                   [mid, f"{words[c]} number {i}"])
    st.execute("INSERT INTO embedding_spaces (space, kind, model, dim, params) VALUES "
               "('text:description', 'text', 'synthetic', 16, ?)", [json.dumps(
                   {"recipe": {"annotator": "human:bench", "fields": ["description"],
                               "template": None}})])
    for mid, v in zip(ids, vecs, strict=True):
        st.execute("INSERT INTO embeddings (meme_id, space, model, dim, vector, annotator) "
                   "VALUES (?, 'text:description', 'synthetic', 16, ?::FLOAT[], 'human:bench')",
                   [mid, v])
    [rid] = run(st, ClusterConfig(spaces=["text:description"], algorithm="kmeans", k=3,
                                  layout=False))
    st.close()
    return cap, lab, rid


# Run in a small launcher process: a child's peak RSS starts from its parent's at fork/exec
# (Linux copies the high-water mark), so measuring from this process, which holds DuckDB and
# the cluster code, would add its own few hundred MB to every figure.
LAUNCHER = r"""
import json, resource, subprocess, sys, threading, time
kill_mb, kill_s, cmd = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
t0 = time.monotonic()
p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
killed = []
def guard():
    while p.poll() is None:
        try:
            status = open(f"/proc/{p.pid}/status").read()
        except OSError:
            return
        rss = next((int(x.split()[1]) / 1024 for x in status.splitlines()
                    if x.startswith("VmRSS:")), 0.0)
        if rss > kill_mb or time.monotonic() - t0 > kill_s:
            killed.append(f"killed at {rss:.0f} MB after {time.monotonic() - t0:.1f} s")
            p.kill()
            return
        time.sleep(0.1)
threading.Thread(target=guard, daemon=True).start()
out = p.communicate()[0].decode("utf-8", "replace")
err = next((ln for ln in out.splitlines() if ln.startswith("Error:")), None)
print(json.dumps({"exit": p.returncode, "seconds": round(time.monotonic() - t0, 2),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
                                       / 1024, 1),
                  "killed": killed[0] if killed else None, "error": err and err[:240]}))
"""


def _measure(cmd: list[str], env: dict[str, str], kill_mb: float, kill_s: float,
             cwd: str) -> dict:
    """Run `cmd` in `cwd`; its exit code, peak RSS (MB), wall time and first error line
    (killed past the guard)."""
    # cwd matters: `python -m memeatlas.cli` imports memeatlas from the working directory first.
    out = subprocess.run([sys.executable, "-c", LAUNCHER, str(kill_mb), str(kill_s), *cmd],
                         env=env, capture_output=True, text=True, cwd=cwd)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--code", default=str(ROOT), help="checkout whose memeatlas is measured")
    ap.add_argument("--cases", nargs="*", help="command:where:mode, e.g. caption:chat:drip "
                    "(default: every mode for caption models/chat/stream and label chat)")
    ap.add_argument("--kill-mb", type=float, default=1500.0)
    ap.add_argument("--kill-s", type=float, default=120.0)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    cases = a.cases or ([f"caption:{w}:{m}" for w in ("models", "chat", "stream") for m in MODES]
                        + [f"label:chat:{m}" for m in MODES])
    from memeatlas.testing.hostile_server import HostileServer

    env = {**os.environ, "PYTHONPATH": a.code, "MEMEATLAS_NO_PROGRESS": "1"}
    exe = [sys.executable, "-m", "memeatlas.cli"]
    results = []
    with tempfile.TemporaryDirectory() as d:
        cap_db, lab_db, rid = _stores(Path(d))
        for case in cases:
            cmd_name, where, mode = case.split(":")
            chat, models = ("ok", mode) if where == "models" else (mode, "ok")
            name_answers = [json.dumps({"name": n}) for n in ("Cats", "Cars", "Pizza")]
            with HostileServer(chat, models, limit_s=a.kill_s, answer=name_answers
                               if cmd_name == "label" else '{"ok": true}') as srv:
                if cmd_name == "caption":
                    db = Path(d) / f"c-{len(results)}.duckdb"
                    db.write_bytes(cap_db.read_bytes())
                    cmd = [*exe, "caption", "--db", str(db), "--backend", "openai", "--model",
                           "hostile", "--base-url", srv.url, "--api-key-env", "NO_KEY",
                           "--no-vision-check", "--retries", "0", "-o", f"timeout={TIMEOUT}"]
                    if where == "stream":
                        cmd += ["-o", "stream=true"]
                else:
                    db = Path(d) / f"l-{len(results)}.duckdb"
                    db.write_bytes(lab_db.read_bytes())
                    cmd = [*exe, "label", "--db", str(db), "--run", rid, "--base-url", srv.url,
                           "--llm-model", "hostile", "--api-key-env", "NO_KEY", "--force"]
                    if a.code == str(ROOT):
                        cmd += ["--timeout", str(TIMEOUT)]
                r = _measure(cmd, env, a.kill_mb, a.kill_s, a.code)
                time.sleep(1.0)  # a dripping handler notices the client left at its next write
                r.update(case=case, requests=srv.n_requests,
                         longest_request_s=round(max(srv.held_s, default=0.0), 2))
            results.append(r)
            print(json.dumps(r), flush=True)
    doc = {"code": a.code, "deadline_s": TIMEOUT, "python": platform.python_version(),
           "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
           "results": results}
    if a.out:
        a.out.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
