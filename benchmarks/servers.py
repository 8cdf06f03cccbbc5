"""Against llama-cpp-python's server: constrained decoding per schema form, and concurrency.

1. Tokens/s of constrained decoding with the annotation schema in its strict form (bound
   `pattern`s) and its server-friendly form (minLength/maxLength), both sent the way this
   server takes a schema (`response_format: {"type": "json_object", "schema": ...}`), plus
   JSON mode without a schema as the reference. One request at a time, text-only prompt.
2. Captions/s of the real caption loop (`memeatlas.caption.run`) with adaptive concurrency
   vs a fixed 8 in flight, on the same server (which computes one request at a time).

The model is a tiny random Qwen2 written as GGUF (`memeatlas.testing.tiny_gguf`); with
`--vocab` (default: llama.cpp's vocab-only `models/ggml-vocab-qwen2.gguf` from the
llama-cpp-python source, when found) it has Qwen2's real 151,936-token vocabulary, so the
grammar sampler does the per-token work it does for a real Qwen model.

    python benchmarks/servers.py --n-tokens 48 --n-memes 8 --out benchmarks/results/servers.json
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
DEFAULT_VOCAB = (Path.home() / ".cache/memeatlas/src/llama_cpp_python-0.3.36/vendor/llama.cpp/"
                 "models/ggml-vocab-qwen2.gguf")
PROMPT = ("Annotate this meme as JSON: a cat sits on a keyboard, top text 'when the "
          "deadline is tomorrow', bottom text 'me: still napping'.")


def _decode(url: str, schema, n_tokens: int, reps: int, timeout: float) -> dict:
    import httpx

    rf = {"type": "json_object"} if schema is None else {"type": "json_object", "schema": schema}
    runs = []
    for _ in range(reps):
        t0 = time.perf_counter()
        try:
            r = httpx.post(url + "/chat/completions", timeout=timeout, json={
                "model": "m", "max_tokens": n_tokens, "temperature": 0.0,
                "messages": [{"role": "user", "content": PROMPT}], "response_format": rf})
            dt = time.perf_counter() - t0
            toks = r.json()["usage"]["completion_tokens"] if r.status_code == 200 else 0
            runs.append({"status": r.status_code, "tokens": toks, "seconds": round(dt, 3)})
        except httpx.TimeoutException:
            runs.append({"status": "timeout", "tokens": None,
                         "seconds": round(time.perf_counter() - t0, 3)})
            break  # one timeout says enough; do not queue more work on the server
    done = [r for r in runs if r["tokens"]]
    toks = sum(r["tokens"] for r in done)
    secs = sum(r["seconds"] for r in done)
    return {"runs": runs, "tokens_per_s": round(toks / secs, 2) if secs else None,
            "timed_out": any(r["status"] == "timeout" for r in runs)}


def _captions(url: str, n: int, adaptive: bool, max_new_tokens: int, timeout: float) -> dict:
    from PIL import Image

    from memeatlas.caption import CaptionConfig, run
    from memeatlas.caption.backends import create
    from memeatlas.store import Store

    with tempfile.TemporaryDirectory() as d:
        st = Store.open(Path(d) / "b.duckdb")
        with st.transaction():
            for i in range(n):
                p = Path(d) / f"m{i}.png"
                Image.new("RGB", (64, 48), (i * 30 % 255, 120, 200)).save(p)
                st.execute("INSERT INTO memes (meme_id, path, source, has_image) VALUES "
                           "(?, ?, 'folder', true)",
                           [hashlib.sha256(p.read_bytes()).hexdigest(), str(p)])
        b = create("openai", model="m", base_url=url, concurrency=8, adaptive=adaptive,
                   timeout=timeout, max_retries=0)
        try:
            t0 = time.perf_counter()
            s = run(st, CaptionConfig(backend="openai", batch_size=8, retries=0,
                                      max_new_tokens=max_new_tokens, max_pixels=3000,
                                      vision_check=False), backend=b)
            dt = time.perf_counter() - t0
        finally:
            b.close()
            st.close()
        return {"adaptive": adaptive, "memes": n, "annotated": s.n_done, "failed": s.n_failed,
                "failures": s.failures, "seconds": round(dt, 2),
                "captions_per_s": round(s.n_done / dt, 3) if dt else None,
                "limit_history": b.limit.history, "requests_sent": b.n_requests}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vocab", default=str(DEFAULT_VOCAB),
                    help="vocab-only GGUF to take the tokenizer from ('' for the tiny BPE)")
    ap.add_argument("--n-tokens", type=int, default=48, help="max_tokens per decoding request")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--strict-timeout", type=float, default=240.0,
                    help="give the strict form at most this long per request")
    ap.add_argument("--n-memes", type=int, default=8)
    ap.add_argument("--caption-tokens", type=int, default=160)
    ap.add_argument("--caption-timeout", type=float, default=60.0)
    ap.add_argument("--threads", type=int, default=1, help="llama.cpp threads")
    ap.add_argument("--parts", default="decode,captions",
                    help="which measurements: decode, captions (comma-separated)")
    ap.add_argument("--out", default=None, help="JSON file; parts not run are kept from it")
    args = ap.parse_args(argv)

    import llama_cpp

    from memeatlas.caption.backends.openai_format import friendly_schema
    from memeatlas.caption.schema import core_json_schema
    from memeatlas.testing.llama_server import llama_server, stop
    from memeatlas.testing.tiny_gguf import build_tiny_gguf

    vocab = args.vocab if args.vocab and Path(args.vocab).exists() else None
    with tempfile.TemporaryDirectory() as d:
        gguf = build_tiny_gguf(Path(d) / "tiny.gguf", vocab_from=vocab)
        proc, url = llama_server(gguf, n_ctx=8192, threads=args.threads,
                                 log=Path(d) / "server.log")
        try:
            strict = core_json_schema()
            parts = {p.strip() for p in args.parts.split(",")}
            res = {}
            if args.out and Path(args.out).exists():
                res = json.loads(Path(args.out).read_text())
            env = {"python": platform.python_version(), "llama_cpp_python":
                   llama_cpp.__version__, "cpu_count": os.cpu_count(),
                   "load_avg": os.getloadavg(), "vocab": "qwen2 (151,936)" if vocab
                   else "tiny BPE", "threads": args.threads}
            if "decode" in parts:
                res["decode_env"] = env
                res["decode"] = {
                    "json_mode_no_schema": _decode(url, None, args.n_tokens, args.reps, 120),
                    "friendly": _decode(url, friendly_schema(strict), args.n_tokens, args.reps,
                                        120),
                    "strict": _decode(url, strict, args.n_tokens, args.reps,
                                      args.strict_timeout),
                }
                # A strict request the client gave up on may still be computing: a fresh
                # server keeps it out of the concurrency figures.
                stop(proc)
                proc, url = llama_server(gguf, n_ctx=8192, threads=args.threads,
                                         log=Path(d) / "server2.log")
            if "captions" in parts:
                res["captions_env"] = {**env, "load_avg": os.getloadavg()}
                res["captions"] = [
                    _captions(url, args.n_memes, adaptive, args.caption_tokens,
                              args.caption_timeout)
                    for adaptive in (False, True)]
        finally:
            stop(proc)
    text = json.dumps(res, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return res


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
