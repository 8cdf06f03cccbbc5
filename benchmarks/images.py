"""Benchmark: CNN image spaces, near-duplicate grouping, and the thresholds' calibration.

    python benchmarks/images.py embed [--n 128] [--batch-size 32] [--repeats 3]
    python benchmarks/images.py neardup [--sizes 10000,100000] [--add 1000]
    python benchmarks/images.py calibrate        # needs ../shared/data/template-images
    python benchmarks/images.py text             # needs ../shared/data/imgflip/captions

embed: images/s of `embed_image(ImageEmbedConfig(model="torchvision:mobilenet_v2"))` (what
`memeatlas embed image --model torchvision:mobilenet_v2` calls: reading the store, decoding on
worker threads, the weights' transforms, the forward pass, L2 normalisation, committing
vectors) against a bare torchvision loop over the same files and batch size (PIL open +
convert, `weights.transforms()`, `torch.stack`, forward under inference_mode, normalise).
Model load excluded from both (memeatlas: `items_per_s` = embedded / (seconds - load));
one untimed warm-up pass of each, then repeats alternating ABBA. The images are the real ImgFlip template images (cycled to N).

neardup: a store of N memes whose pHashes are random 64-bit values with 2 % planted near
duplicates (1-6 bits flipped); times `group_near_duplicates(space="none")` from scratch, then
the incremental addition of `--add` new memes (half of them near duplicates of stored ones).

calibrate: the real template images of both galleries and five variants of each ImgFlip one
(JPEG q30, 50 % resize, 10 % crop, caption bar, watermark): pHash distances and MobileNetV2
cosines of variant pairs against pairs of distinct ImgFlip templates, the pair recall and
precision of the groups at the default thresholds, and template-matching top-1 across the two
galleries (the 15 shared templates). These figures chose the defaults in
memeatlas/images/neardup.py; docs/images.md quotes them.

text: the same-image / same-template text threshold: OCR-text similarity of two different
user captions on one ImgFlip template, against a caption and a copy of it with simulated OCR
errors (characters dropped or replaced).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MEMEATLAS_NO_PROGRESS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def machine() -> str:
    import torch

    load = os.getloadavg()
    return (f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
            f"torch threads {torch.get_num_threads()}")


def _template_files() -> list[Path]:
    from memeatlas.testing.shared_data import shared_path

    base = shared_path("template-images", "imgflip")
    if base is None:
        sys.exit("needs ../shared/data/template-images/imgflip")
    return sorted(base.iterdir())


# ---- embed ----------------------------------------------------------------------------------
def bench_embed(n: int, batch_size: int, repeats: int) -> None:
    import shutil

    import torch
    from PIL import Image

    from memeatlas.embed import ImageEmbedConfig, embed_image
    from memeatlas.embed import torchvision_models as tv
    from memeatlas.ingest import ingest_paths
    from memeatlas.store import Store

    src = _template_files()
    tmp = Path(tempfile.mkdtemp(prefix="bench-images-"))
    files = []
    for i in range(n):  # distinct bytes per copy, so ingest keeps n memes
        f = src[i % len(src)]
        dst = tmp / "imgs" / f"{i:05d}{f.suffix}"
        dst.parent.mkdir(exist_ok=True)
        shutil.copy(f, dst)
        if i >= len(src):
            with open(dst, "ab") as fh:
                fh.write(b"\0" * (i // len(src)))
        files.append(dst)
    store = Store.open(tmp / "b.duckdb")
    ingest_paths(store, [tmp / "imgs"])
    cnn = tv.load("torchvision:mobilenet_v2")

    def bare() -> float:
        t = time.perf_counter()
        out = []
        for a in range(0, len(files), batch_size):
            batch = torch.stack([cnn.transform(Image.open(f).convert("RGB"))
                                 for f in files[a:a + batch_size]])
            with torch.inference_mode():
                out.append(torch.nn.functional.normalize(cnn.model(batch), dim=-1).numpy())
        assert sum(len(o) for o in out) == len(files)
        return len(files) / (time.perf_counter() - t)

    def ours() -> float:
        s = embed_image(store, ImageEmbedConfig(model="torchvision:mobilenet_v2",
                                                batch_size=batch_size, force=True))
        assert s.embedded == len(files), s
        return s.items_per_s

    # warm-up: the first forward passes allocate and pick kernels; neither side pays for it
    with torch.inference_mode():
        cnn.model(torch.stack([cnn.transform(Image.open(f).convert("RGB"))
                               for f in files[:batch_size]]))
    ours()
    res: dict[str, list[float]] = {"bare": [], "memeatlas": []}
    for r in range(repeats):
        order = [("bare", bare), ("memeatlas", ours)]
        for name, fn in (order if r % 2 == 0 else order[::-1]):
            res[name].append(fn())
            print(f"  repeat {r}: {name} {res[name][-1]:.2f} img/s", flush=True)
    b, m = statistics.median(res["bare"]), statistics.median(res["memeatlas"])
    print(f"machine: {machine()}")
    print(f"embed torchvision:mobilenet_v2, {n} images, batch {batch_size}, {repeats} repeats")
    print(f"| bare torchvision loop | {b:.2f} img/s |")
    print(f"| memeatlas embed_image | {m:.2f} img/s |")
    print(f"| ratio memeatlas / bare | {m / b:.3f} |")
    store.close()
    shutil.rmtree(tmp, ignore_errors=True)


# ---- near-duplicates ------------------------------------------------------------------------
def _planted_hashes(n: int, rng: np.random.Generator, base: np.ndarray | None = None
                    ) -> np.ndarray:
    h = rng.integers(0, 2**63, n, dtype=np.uint64) | (
        rng.integers(0, 2, n, dtype=np.uint64) << np.uint64(63))
    src = base if base is not None else h
    k = n // 50 if base is None else n // 2
    idx = rng.choice(n, k, replace=False)
    for i in idx:
        j = rng.integers(len(src))
        flips = rng.choice(64, rng.integers(1, 7), replace=False)
        mask = np.uint64(sum(1 << int(b) for b in flips))
        h[i] = src[j] ^ mask
    return h


def _insert_memes(store, start: int, hashes: np.ndarray) -> None:
    import pyarrow as pa

    ids = [f"{start + i:064x}" for i in range(len(hashes))]
    tbl = pa.table({"meme_id": ids, "phash": [f"{int(h):016x}" for h in hashes]})
    with store.registered("_bench", tbl), store.transaction() as con:
        con.execute("INSERT INTO memes (meme_id, path, source, has_image, phash) "
                    "SELECT meme_id, '/bench/' || meme_id, 'folder', true, phash FROM _bench")


def bench_neardup(sizes: list[int], add: int) -> None:
    from memeatlas.images import NearDupConfig, group_near_duplicates
    from memeatlas.store import Store

    print(f"machine: {machine()}")
    print("| stored hashes | from scratch (s) | pairs | groups | + new memes | "
          "incremental (s) | of it search (s) |")
    print("|---|---|---|---|---|---|---|")
    for n in sizes:
        rng = np.random.default_rng(n)
        with tempfile.TemporaryDirectory() as d:
            store = Store.open(Path(d) / "nd.duckdb")
            base = _planted_hashes(n, rng)
            _insert_memes(store, 0, base)
            cfg = NearDupConfig(space="none")
            t = time.perf_counter()
            s = group_near_duplicates(store, cfg)
            full = time.perf_counter() - t
            _insert_memes(store, n, _planted_hashes(add, rng, base))
            t = time.perf_counter()
            s2 = group_near_duplicates(store, cfg)
            inc = time.perf_counter() - t
            assert s2.n_new == add
            print(f"| {n:,} | {full:.2f} | {s.n_pairs:,} | {s.n_groups:,} | {add:,} | "
                  f"{inc:.2f} | {s2.search_seconds:.2f} |", flush=True)
            store.close()


# ---- calibration ----------------------------------------------------------------------------
def calibrate() -> None:
    import imagehash

    from memeatlas.embed.image import ImageEncoder
    from memeatlas.images.neardup import CALIBRATED_MIN_COSINE, DEFAULT_MAX_HASH_DISTANCE
    from memeatlas.images.templates import calibrate as cal_threshold
    from memeatlas.images.templates import template_scores
    from memeatlas.imaging import load_image
    from memeatlas.testing.shared_data import shared_path
    from memeatlas.testing.variants import VARIANTS, make_variants

    imgflip = _template_files()
    wang_dir = shared_path("template-images", "wang_wen_2015")
    imgs, tmpl, var = [], [], []
    for f in imgflip:
        im = load_image(f)
        imgs.append(im), tmpl.append(f.stem), var.append("orig")
        for k, v in make_variants(im).items():
            imgs.append(v), tmpl.append(f.stem), var.append(k)
    tmpl_a, var_a = np.array(tmpl), np.array(var)
    H = np.array([int(str(imagehash.phash(i)), 16) for i in imgs], dtype=np.uint64)
    enc = ImageEncoder("torchvision:mobilenet_v2", device="cpu")
    t = time.perf_counter()
    X = enc.encode([enc.preprocess(i) for i in imgs])
    print(f"machine: {machine()}; embedded {len(imgs)} images in {time.perf_counter() - t:.0f}s")
    D = np.bitwise_count(H[:, None] ^ H[None, :])
    S = X @ X.T
    iu = np.triu_indices(len(imgs), 1)
    same = (tmpl_a[:, None] == tmpl_a[None, :])[iu]
    Dv, Sv = D[iu], S[iu]
    orig = {t: i for i, (t, v) in enumerate(zip(tmpl, var, strict=True)) if v == "orig"}
    print("\n| variant vs original | pHash bits: median / max | cosine: min / median |")
    print("|---|---|---|")
    for v in VARIANTS:
        idx = np.nonzero(var_a == v)[0]
        dd = np.array([D[i, orig[tmpl[i]]] for i in idx])
        ss = np.array([S[i, orig[tmpl[i]]] for i in idx])
        print(f"| {v} | {np.median(dd):.0f} / {dd.max()} | {ss.min():.3f} / "
              f"{np.median(ss):.3f} |")
    neg = ~same
    print(f"\ndistinct-template pairs ({neg.sum():,}): pHash min {Dv[neg].min()} bits, "
          f"0.1 % quantile {np.quantile(Dv[neg], 0.001):.0f}; cosine max {Sv[neg].max():.3f}, "
          f"99.9 % quantile {np.quantile(Sv[neg], 0.999):.3f}")
    print("\n| pHash radius | distinct pairs within | variant pairs within |")
    print("|---|---|---|")
    for T in (6, 8, 10, 12, 14, 16):
        print(f"| {T} | {(Dv[neg] <= T).sum()} | {(Dv[same] <= T).mean():.3f} |")
    print("\n| min cosine | distinct pairs above | variant pairs above |")
    print("|---|---|---|")
    for C in (0.75, 0.8, 0.82, 0.85, 0.88, 0.9):
        print(f"| {C} | {(Sv[neg] >= C).sum()} | {(Sv[same] >= C).mean():.3f} |")

    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    def groups(A: np.ndarray) -> tuple[float, float]:
        A = A.copy()
        np.fill_diagonal(A, False)
        _, lab = connected_components(sp.csr_matrix(A), directed=False)
        g = (lab[:, None] == lab[None, :])[iu]
        tp, fp, fn = (g & same).sum(), (g & neg).sum(), (~g & same).sum()
        return tp / (tp + fn), (tp / (tp + fp) if tp + fp else 1.0)

    T, C = DEFAULT_MAX_HASH_DISTANCE, CALIBRATED_MIN_COSINE["image:mobilenet_v2"]
    print("\n| signals (defaults) | pair recall | pair precision |")
    print("|---|---|---|")
    r, p = groups(D <= T)
    print(f"| pHash <= {T} | {r:.3f} | {p:.3f} |")
    r, p = groups((D <= T) | (S >= C))
    print(f"| pHash <= {T} or cosine >= {C} | {r:.3f} | {p:.3f} |")
    for v in VARIANTS:  # recall per variant kind: original-variant pair grouped
        idx = [i for i in range(len(imgs)) if var[i] == v]
        A = (D <= T) | (S >= C)
        hit = np.mean([A[i, orig[tmpl[i]]] for i in idx])
        hit_h = np.mean([D[i, orig[tmpl[i]]] <= T for i in idx])
        print(f"|   {v}: linked to its original | hash {hit_h:.2f} | both {hit:.2f} |")

    # template matching: imgflip originals are the gallery, wang_wen files the memes
    if wang_dir is None:
        return
    G = X[var_a == "orig"]
    glabels = list(tmpl_a[var_a == "orig"])
    thr, info = cal_threshold(G, glabels, 0.95)
    wang = {f.stem.lower(): f for f in sorted(wang_dir.iterdir()) if f.suffix == ".jpg"}
    shared = [(g, g.lower()) for g in glabels if g.lower() in wang] + [
        ("Bad-Luck-Brian", "bad-luck-brian-meme")]
    wimgs = [enc.preprocess(load_image(wang[w])) for _, w in shared]
    names, sc = template_scores(enc.encode(wimgs), G, glabels)
    best = [names[i] for i in sc.argmax(axis=1)]
    top1 = sum(b == g for b, (g, _) in zip(best, shared, strict=True))
    above = int((sc.max(axis=1) >= thr).sum())
    print(f"\ntemplate matching, gallery imgflip (100), memes = the {len(shared)} shared "
          f"templates from wang_wen_2015: top-1 {top1}/{len(shared)}; calibrated threshold "
          f"{thr:.3f} ({info}); {above}/{len(shared)} at or above it")
    for b, (g, w), s in zip(best, shared, sc.max(axis=1), strict=True):
        if b != g:
            print(f"  miss: {w} -> {b} ({s:.3f})")
    # impostors: wang_wen templates not in imgflip (by name) — how many are called known
    others = [f for k, f in wang.items() if k not in {w for _, w in shared}]
    osc = template_scores(enc.encode([enc.preprocess(load_image(f)) for f in others]), G,
                          glabels)[1].max(axis=1)
    print(f"wang_wen_2015 files whose name is not an imgflip template ({len(others)}; some are "
          f"the same picture under another name): {(osc >= thr).sum()} at or above the "
          f"threshold, median best score {np.median(osc):.3f}")


def calibrate_text(threshold: float | None = None) -> None:
    """Same image vs same template: OCR-text similarity of different captions on one template
    (ImgFlip575K) against one caption and a copy with simulated OCR errors."""
    import gzip
    import json
    import random

    from memeatlas.images.neardup import DEFAULT_MIN_TEXT_SIMILARITY, _norm_text, text_similarity
    from memeatlas.testing.shared_data import shared_path

    path = shared_path("imgflip", "captions.jsonl.gz")
    if path is None:
        sys.exit("needs ../shared/data/imgflip/captions.jsonl.gz")
    thr = threshold if threshold is not None else DEFAULT_MIN_TEXT_SIMILARITY
    by: dict[str, list[str]] = {}
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            by.setdefault(r["template"], []).append(_norm_text(" ".join(r["boxes"])))
    rng = random.Random(0)
    neg = []
    for caps in by.values():
        caps = [c for c in caps if c]
        for _ in range(60):
            a, b = rng.sample(caps, 2)
            if a != b:
                neg.append(text_similarity(a, b))
    neg_a = np.array(neg)

    def noisy(s: str, cer: float) -> str:
        out = []
        for ch in s:
            u = rng.random()
            if u < cer / 2:
                continue  # dropped character
            out.append(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789 ") if u < cer else ch)
        return _norm_text("".join(out))

    print(f"different captions on one template ({len(neg_a):,} pairs, 88 templates): "
          f"similarity median {np.median(neg_a):.3f}, 99 % quantile "
          f"{np.quantile(neg_a, 0.99):.3f}; at or above {thr}: {(neg_a >= thr).mean():.3f}")
    texts = [c for caps in by.values() for c in caps if len(c) > 10]
    print(f"\n| OCR character error rate | same text at or above {thr} | 1 % quantile |")
    print("|---|---|---|")
    for cer in (0.05, 0.1, 0.2):
        pos = np.array([text_similarity(c, noisy(c, cer)) for c in rng.sample(texts, 2000)])
        print(f"| {cer:.0%} | {(pos >= thr).mean():.3f} | {np.quantile(pos, 0.01):.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("part", choices=("embed", "neardup", "calibrate", "text"))
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--add", type=int, default=1000)
    a = ap.parse_args()
    if a.part == "embed":
        bench_embed(a.n, a.batch_size, a.repeats)
    elif a.part == "neardup":
        bench_neardup([int(x) for x in a.sizes.split(",")], a.add)
    elif a.part == "text":
        calibrate_text()
    else:
        calibrate()


if __name__ == "__main__":
    main()
