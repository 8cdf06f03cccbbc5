"""Benchmark: `memeatlas embed text` against a bare SentenceTransformer.encode, and load_space.

    python benchmarks/embed.py [--n 1000] [--batch-size 32] [--repeats 3] [--load-n 100000]

Part 1 stores N synthetic annotations (descriptions of 6-70 words) in a temp DuckDB file and
times, interleaved over R repeats, (a) `SentenceTransformer.encode(texts, batch_size,
normalize_embeddings=True)` on exactly the texts memeatlas builds, and (b)
`memeatlas.embed.embed_text(store, TextEmbedConfig(..., force=True))`, which is what
`memeatlas embed text` calls: reading annotations, building texts, hashing, encoding,
counting truncations and committing vectors every 512 texts. Both use the same loaded
all-MiniLM-L6-v2 instance (bundled weights) on the same device; load time is excluded from
both, and the order alternates (ABBA) between repeats.
Both sort by length the same way: encode() sorts its input longest first internally;
memeatlas sorts its work list longest first and cuts commit chunks at whole batches, so the
batches are identical. Reported: items/s (median over repeats) and the ratio.

Part 2 writes a space of M × 384 random unit vectors and times `load_space` (median of 3).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MEMEATLAS_NO_PROGRESS", "1")

import numpy as np  # noqa: E402

WORDS = ("cat dog man woman boss student exam coffee monday weekend office meeting code bug "
         "deadline pizza cartoon frog drake button sweat choice distracted boyfriend girlfriend "
         "approve reject politics election tax money rent landlord phone battery wifi internet "
         "game player winner loser teacher homework sleep alarm morning night party friend "
         "family mother father brother sister car traffic bus train rain sun summer winter "
         "shows points looks smiles cries laughs ignores chooses refuses holds wears sits "
         "stands runs while under over beside in front of behind with without the a an and "
         "but because so meme caption text reads says bottom top panel left right").split()


def synthetic_texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = int(rng.integers(6, 71))
        words = rng.choice(WORDS, size=k)
        out.append(" ".join(words).capitalize() + ".")
    return out


def machine() -> str:
    load = os.getloadavg()
    return (f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
            f"torch threads {__import__('torch').get_num_threads()}")


def bench_text(n: int, batch_size: int, repeats: int, cli: bool) -> dict:
    import hashlib

    from memeatlas.corpus.texts import annotation_texts
    from memeatlas.embed import TextEmbedConfig, embed_text, load_space
    from memeatlas.embed.text import get_text_encoder
    from memeatlas.store import Store

    tmp = Path(tempfile.mkdtemp(prefix="memeatlas-bench-embed-"))
    db = tmp / "bench.duckdb"
    store = Store.open(db)
    texts = synthetic_texts(n)
    ids = [hashlib.sha256(f"bench:{i}".encode()).hexdigest() for i in range(n)]
    store.execute("INSERT INTO memes (meme_id, source, has_image) "
                  "SELECT unnest(?::VARCHAR[]), 'bench', false", [ids])
    store.execute("INSERT INTO annotations (meme_id, annotator, prompt_hash, schema_hash, "
                  "description) SELECT unnest(?::VARCHAR[]), 'vlm:bench', 'p', 's', "
                  "unnest(?::VARCHAR[])", [ids, texts])
    rows, _ = annotation_texts(store, "vlm:bench", ("description",))
    built = [t for _, t in rows]

    t = time.perf_counter()
    enc = get_text_encoder(None, device="cpu")  # the object memeatlas uses (cached)
    bare_load = time.perf_counter() - t
    # The bare call uses the very same SentenceTransformer instance, so the comparison is the
    # memeatlas wrapper (SQL, texts, hashing, writes) and nothing else.
    bare = enc.model
    bare.encode(built[:64], batch_size=batch_size)  # warm-up

    bare_rates, ma_rates, ma_wall, overhead = [], [], [], []
    cfg = TextEmbedConfig(fields=("description",), batch_size=batch_size, device="cpu",
                          force=True)
    bare_cpu, ma_cpu = [], []
    def run_bare():
        t, c = time.perf_counter(), time.process_time()
        out = bare.encode(built, batch_size=batch_size, normalize_embeddings=True,
                          convert_to_numpy=True, show_progress_bar=False)
        bare_rates.append(n / (time.perf_counter() - t))
        bare_cpu.append(n / (time.process_time() - c))
        return out

    for r in range(repeats):
        # ABBA order: a drift in machine load does not favour whichever always runs first.
        if r % 2 == 0:
            ref = run_bare()
        t, c = time.perf_counter(), time.process_time()
        s = embed_text(store, cfg)
        wall = time.perf_counter() - t
        ma_cpu.append(n / (time.process_time() - c))
        if r % 2 == 1:
            ref = run_bare()
        assert s.embedded == n and s.load_seconds < 0.5, s
        ma_rates.append(n / wall)
        ma_wall.append(wall)
        overhead.append((wall - s.encode_seconds) / wall)
        print(f"  repeat {r + 1}: bare {bare_rates[-1]:.1f}/s  memeatlas {ma_rates[-1]:.1f}/s "
              f"(encode {s.encode_seconds:.2f}s write {s.write_seconds:.3f}s "
              f"other {wall - s.encode_seconds - s.write_seconds:.3f}s)", file=sys.stderr)
    got, X = load_space(store, "text:description")
    order = {m: i for i, m in enumerate(got)}
    max_diff = float(np.abs(X[[order[m] for m, _ in rows]] - ref).max())
    store.close()

    cli_rate = None
    if cli:
        out = subprocess.run(
            [sys.executable, "-m", "memeatlas.cli", "embed", "text", "--db", str(db), "--fields",
             "description", "--space", "text:cli", "--batch-size", str(batch_size),
             "--device", "cpu", "--json"], capture_output=True, text=True, check=True)
        import json
        js = json.loads(out.stdout[out.stdout.index("{"):])
        cli_rate = (js["items_per_s"], js["load_seconds"], js["seconds"])
    b, m = statistics.median(bare_rates), statistics.median(ma_rates)
    paired = statistics.median(x / y for x, y in zip(ma_rates, bare_rates, strict=True))
    return {"paired_ratio": paired, "overhead": overhead, "bare_cpu": bare_cpu, "ma_cpu": ma_cpu,
            "cpu_ratio": statistics.median(ma_cpu) / statistics.median(bare_cpu), "n": n, "batch_size": batch_size, "repeats": repeats, "bare_rates": bare_rates,
            "memeatlas_rates": ma_rates, "bare": b, "memeatlas": m, "ratio": m / b,
            "max_abs_diff": max_diff, "bare_load_s": bare_load, "cli": cli_rate,
            "device": enc.device}


def bench_load(m: int, dim: int = 384) -> dict:
    from memeatlas.corpus.spaces import prepare_space, write_vectors
    from memeatlas.embed import load_space
    from memeatlas.store import Store

    tmp = Path(tempfile.mkdtemp(prefix="memeatlas-bench-load-"))
    store = Store.open(tmp / "load.duckdb")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((m, dim)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    ids = [f"{i:064x}" for i in rng.permutation(m)]
    prepare_space(store, space="bench", kind="text", model="bench", dim=dim, recipe={},
                  params={}, software={})
    t = time.perf_counter()
    for a in range(0, m, 10_000):
        write_vectors(store, space="bench", model="bench", ids=ids[a:a + 10_000],
                      vectors=X[a:a + 10_000], input_hashes=[None] * len(ids[a:a + 10_000]))
    write_s = time.perf_counter() - t
    store.close()
    store = Store.open(tmp / "load.duckdb", read_only=True)  # cold-ish: a fresh connection
    times = []
    for _ in range(3):
        t = time.perf_counter()
        got, Y = load_space(store, "bench")
        times.append(time.perf_counter() - t)
    assert Y.shape == (m, dim) and Y.dtype == np.float32
    assert np.array_equal(Y, X[np.argsort(ids)])
    store.close()
    return {"m": m, "dim": dim, "write_s": write_s, "load_s": times,
            "load_median_s": statistics.median(times)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="texts to embed")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--load-n", type=int, default=100_000, help="vectors for the load_space test")
    ap.add_argument("--no-cli", action="store_true", help="skip the CLI subprocess run")
    args = ap.parse_args()

    print(f"machine: {machine()}")
    t = bench_text(args.n, args.batch_size, args.repeats, not args.no_cli)
    print(f"embed text, {t['n']} texts, batch {t['batch_size']}, {t['repeats']} repeats "
          f"interleaved, device {t['device']}:")
    print(f"  bare SentenceTransformer.encode  {t['bare']:8.1f} texts/s  "
          f"(runs: {', '.join(f'{x:.1f}' for x in t['bare_rates'])})")
    print(f"  memeatlas embed_text             {t['memeatlas']:8.1f} texts/s  "
          f"(runs: {', '.join(f'{x:.1f}' for x in t['memeatlas_rates'])})")
    print(f"  ratio memeatlas/bare             {t['ratio']:8.3f}  (ratio of medians; median of "
          f"per-repeat ratios {t['paired_ratio']:.3f})")
    print(f"  per CPU-second (process_time, less sensitive to other processes): bare "
          f"{statistics.median(t['bare_cpu']):.1f}, memeatlas {statistics.median(t['ma_cpu']):.1f} "
          f"texts/CPU-s, ratio {t['cpu_ratio']:.3f}")
    print(f"  time outside encode() in embed_text: "
          f"{', '.join(f'{100 * x:.2f} %' for x in t['overhead'])} of its wall time per repeat "
          f"(reading annotations, building + hashing texts, writing vectors, counting "
          f"truncations)")
    print(f"  max |stored - bare| over vectors {t['max_abs_diff']:.2e}")
    if t["cli"]:
        rate, load_s, secs = t["cli"]
        print(f"  CLI `memeatlas embed text` (separate process): {rate:.1f} texts/s after a "
              f"{load_s:.1f} s model load; {secs:.1f} s in the command")
    lo = bench_load(args.load_n)
    print(f"load_space {lo['m']} x {lo['dim']}: median {lo['load_median_s']:.3f} s "
          f"(runs: {', '.join(f'{x:.3f}' for x in lo['load_s'])}); writing it took "
          f"{lo['write_s']:.1f} s in 10k batches")
    print(f"machine after: {machine()}")


if __name__ == "__main__":
    main()
