"""Real-data sets for benchmarks/granularity.py, embedded once and cached on disk.

    python benchmarks/granularity_data.py [--cache DIR] [--imgflip 4000] [--pairs 1500]
                                          [--memecap 2000]

Reads ../shared/data (memeatlas.testing.shared_data) and writes, per data set, `NAME.npz` with
`texts`, `vectors` (bundled all-MiniLM-L6-v2, L2-normalised), and `labels` (ImgFlip template)
or `pairs` (index pairs + rating mapped onto 1–3, for CQ). Subsamples are seeded (seed 0):

- imgflip-box / imgflip-title-box: N ImgFlip captions (box text; title + box text), template
  labels;
- stsb / sick: the distinct sentences of N random pairs of STS-B train / SICK, with the pairs;
- memecap: N MemeCap memes (test first, then trainval), image caption + meme caption (the
  description + intent a caption step writes); no labels;
- imgflip-all-title-box (`--imgflip-all`): every ImgFlip caption with box text (26,374), title +
  box text, template labels (issue 22's default tuning confirms on these; `--imgflip 0` skips the
  4,000-caption subsets).

The default cache is ~/.cache/memeatlas-bench/granularity (never inside the repository).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import time
from pathlib import Path

import numpy as np

DEFAULT_CACHE = Path.home() / ".cache" / "memeatlas-bench" / "granularity"


def _imgflip(n: int, seed: int) -> tuple[list[dict], list[str]]:
    from memeatlas.testing.shared_data import shared_path

    p = shared_path("imgflip", "captions.jsonl.gz")
    if p is None:
        raise SystemExit("needs ../shared/data/imgflip/captions.jsonl.gz")
    with gzip.open(p, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    rows = [r for r in rows if any((b or "").strip() for b in r.get("boxes") or [])]
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(rows), size=min(n, len(rows)), replace=False).tolist())
    rows = [rows[i] for i in pick]
    return rows, [r["template"] for r in rows]


def _pairs_sentences(pairs: list[tuple[str, str, float]], n: int, seed: int, lo: float, hi: float):
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(pairs), size=min(n, len(pairs)), replace=False)
    sents: dict[str, int] = {}
    out = []
    for i in sorted(pick.tolist()):
        a, b, score = pairs[i]
        if a == b:
            continue
        ia = sents.setdefault(a, len(sents))
        ib = sents.setdefault(b, len(sents))
        out.append((ia, ib, 1.0 + 2.0 * (score - lo) / (hi - lo)))  # onto 1–3 as CQ expects
    return list(sents), np.array(out, dtype=np.float64)


def _stsb() -> list[tuple[str, str, float]]:
    from memeatlas.testing.shared_data import shared_path

    p = shared_path("stsb", "sts-train.csv")
    if p is None:
        raise SystemExit("needs ../shared/data/stsb/sts-train.csv")
    out = []
    with open(p, encoding="utf-8") as f:
        for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if len(row) >= 7:
                out.append((row[5].strip(), row[6].strip(), float(row[4])))
    return out


def _sick() -> list[tuple[str, str, float]]:
    from memeatlas.testing.shared_data import shared_path

    p = shared_path("sick", "SICK.txt")
    if p is None:
        raise SystemExit("needs ../shared/data/sick/SICK.txt")
    out = []
    with open(p, encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            out.append((row["sentence_A"].strip(), row["sentence_B"].strip(),
                        float(row["relatedness_score"])))
    return out


def _memecap(n: int) -> list[str]:
    from memeatlas.testing.shared_data import shared_path

    test = shared_path("memecap", "memes-test.json")
    tv = shared_path("memecap", "memes-trainval.reconstructed.jsonl")
    if test is None or tv is None:
        raise SystemExit("needs ../shared/data/memecap/")
    rows = json.loads(test.read_text(encoding="utf-8"))
    with open(tv, encoding="utf-8") as f:
        rows += [json.loads(line) for line in f if line.strip()]
    texts = []
    for r in rows:
        desc = (r.get("img_captions") or [r.get("img_captions_flat") or ""])[0]
        intent = (r.get("meme_captions") or [r.get("meme_captions_flat") or ""])[0]
        t = "\n".join(s for s in (desc, intent) if s and s.strip())
        if t:
            texts.append(t)
        if len(texts) >= n:
            break
    return texts


def build(cache: Path, n_imgflip: int, n_pairs: int, n_memecap: int, seed: int = 0,
          imgflip_all: bool = False) -> None:
    """Write the cached sets that are missing."""
    from memeatlas.embed.text import get_text_encoder

    cache.mkdir(parents=True, exist_ok=True)
    enc = None

    def embed(name: str, texts: list[str], **extra) -> None:
        nonlocal enc
        path = cache / f"{name}.npz"
        if path.exists():
            print(f"{name}: cached ({path})", flush=True)
            return
        enc = enc or get_text_encoder(None)
        t0 = time.perf_counter()
        vec = enc.encode(texts, batch_size=64)
        dt = time.perf_counter() - t0
        np.savez_compressed(path, texts=np.array(texts, dtype=object), vectors=vec, **extra)
        print(f"{name}: {len(texts)} texts embedded in {dt:.0f}s ({len(texts) / dt:.0f}/s)",
              flush=True)

    def title_box(rows: list[dict]) -> list[str]:
        box = ["\n".join(b for b in r["boxes"] if b) for r in rows]
        return [f"{r.get('title') or ''}\n{b}".strip() for r, b in zip(rows, box, strict=True)]

    if imgflip_all:
        rows, templates = _imgflip(10**9, seed)  # all rows, in file order
        embed("imgflip-all-title-box", title_box(rows), labels=np.array(templates, dtype=object))
    if n_imgflip:
        rows, templates = _imgflip(n_imgflip, seed)
        box = ["\n".join(b for b in r["boxes"] if b) for r in rows]
        embed("imgflip-box", box, labels=np.array(templates, dtype=object))
        embed("imgflip-title-box", title_box(rows), labels=np.array(templates, dtype=object))
    s, p = _pairs_sentences(_stsb(), n_pairs, seed, 0.0, 5.0)
    embed("stsb", s, pairs=p)
    s, p = _pairs_sentences(_sick(), n_pairs, seed, 1.0, 5.0)
    embed("sick", s, pairs=p)
    embed("memecap", _memecap(n_memecap))


def load(cache: Path, name: str) -> dict:
    """One cached set as a dict of arrays (texts, vectors, labels | pairs)."""
    with np.load(cache / f"{name}.npz", allow_pickle=True) as z:
        return {k: z[k] for k in z.files}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--imgflip", type=int, default=4000)
    ap.add_argument("--pairs", type=int, default=1500)
    ap.add_argument("--memecap", type=int, default=2000)
    ap.add_argument("--imgflip-all", action="store_true",
                    help="also embed every ImgFlip caption (title + box text)")
    a = ap.parse_args()
    build(a.cache, a.imgflip, a.pairs, a.memecap, imgflip_all=a.imgflip_all)


if __name__ == "__main__":
    main()
