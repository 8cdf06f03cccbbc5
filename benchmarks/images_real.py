"""Benchmark: template matching and near-duplicate groups on the real template images.

    python benchmarks/images_real.py templates   # ImgFlip 100 as memes, Wang & Wen 2015 as gallery
    python benchmarks/images_real.py neardup [--set panels|templates|both] [--variants heldout|all]

Both need ../shared/data/template-images and the offline MobileNetV2 weights.

templates: ingests the 100 ImgFlip template images into a temporary store, embeds them with
`torchvision:mobilenet_v2` and runs `match_templates` against the Wang & Wen (2015) gallery
(117 files). TRUTH below lists, for the 30 ImgFlip templates the gallery holds, the gallery
names that are that template; it was made by looking at every ImgFlip image beside its two
best-scoring gallery images (and the gallery files of a similar name). The other 70 are
templates the gallery lacks (same character but another template, such as Evil-Kermit vs
Kermit-the-frog, counts as lacking). Reported: in-gallery recall (memes of held templates
given a right name), precision (of all memes given a name, right ones), unknown rate on the
70 lacking, at the calibrated threshold, and the same for the calibration without alias
merging (the behaviour before issue 22).

neardup: two sets of real pictures, each written with variants (`heldout`: original, a
half-size JPEG at quality 50, and a 10 % crop with a caption bar, as the held-out character
set; `all` adds memeatlas.testing.variants' JPEG q30, 10 % crop, caption bar and watermark):
- panels: the panels of 20 multi-panel ImgFlip templates cut apart (45 distinct pictures,
  2-5 of one character or scene each: Drake, Harold, the seagull, the Rock in a car, ...),
  a visually homogeneous set. Monkey-Puppet and Who-Killed-Hannibal are left out: their
  panels are two frames of one static shot, one picture to any pixel test.
- templates: the 100 ImgFlip template images.
Pair recall and precision of `group_id` (template level) and `image_group_id` (same picture)
against the picture each file was made from, for the default `images near-dups` run, and for
the rule before issue 22 (connected components of pHash <= 10 or cosine >= 0.85).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MEMEATLAS_NO_PROGRESS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

# ImgFlip template -> the Wang & Wen gallery names that are that template (checked by eye).
TRUTH: dict[str, set[str]] = {
    "First-World-Problems": {"1st-World-Problems", "First-World-Problems",
                             "First-World-Problems-Ii"},
    "One-Does-Not-Simply": {"One-Does-Not-Simply-A"},
    "Bad-Luck-Brian": {"Bad-Luck-Brian-Meme", "Badluckbrian", "Unlucky-Brian-Strikes-Again"},
    "Success-Kid": {"Success-Kid"},
    "Conspiracy-Keanu": {"Conspiracy-Keanu"},
    "Philosoraptor": {"Philosoraptor"},
    "Scumbag-Steve": {"Scumbag-Steve"},
    "Y-U-No": {"Y-U-No", "Y-U-So"},
    "Disaster-Girl": {"Disaster-Girl"},
    "Yo-Dawg-Heard-You": {"Yo-Dawg"},
    "Creepy-Condescending-Wonka": {"Condescending-Wonka", "Willywonka"},
    "The-Most-Interesting-Man-In-The-World": {"The-Most-Interesting-Man-In-The-World",
                                              "I-Dont-Always"},
    "Futurama-Fry": {"Futurama-Fry"},
    "That-Would-Be-Great": {"That-Would-Be-Great"},
    "10-Guy": {"Really-High-Guy", "Really-Stoned-Guy", "Stoner-Stanley"},
    "Ancient-Aliens": {"Ancient-Alien-Guy"},
    "Brace-Yourselves-X-is-Coming": {"Prepare-Yourself"},
    "Grumpy-Cat": {"Grumpy-Cat"},
    "Doge": {"doge"},
    "And-everybody-loses-their-minds": {"Joker-Mind-Loss"},
    "Third-World-Success-Kid": {"African-Children-Dancing"},
    "X-All-The-Y": {"All-The-Things"},
    "Aaaaand-Its-Gone": {"South-Park-Aand-ItS-Gone"},
    "Imagination-Spongebob": {"Imagination"},
    "Matrix-Morpheus": {"What-If-I-Told-You-Meme"},
    "Batman-Slapping-Robin": {"Batman-Slap-Robin", "Batman-Slappp"},
    "Third-World-Skeptical-Kid": {"Skeptical-3rd-World-Kid", "Skeptical-African-Child",
                                  "Skeptical-African-Kid", "Skeptical-Black-Kid",
                                  "So-YouRe-Telling-Me"},
    "Dr-Evil-Laser": {"Dr-Evil-Meme"},
    "I-Should-Buy-A-Boat-Cat": {"I-Should-Buy-A-Boat-Cat"},  # framed in black there
    "Oprah-You-Get-A": {"Oprah-You-Get-A"},  # another photograph there
}

# name: (rows, columns, left edge of the picture column as a share of the width)
PANELS = {
    "American-Chopper-Argument": (5, 1, 0.0), "The-Rock-Driving": (3, 1, 0.0),
    "Expanding-Brain": (4, 1, 0.5), "The-Scroll-Of-Truth": (2, 2, 0.0),
    "UNO-Draw-25-Cards": (1, 2, 0.0), "Left-Exit-12-Off-Ramp": (2, 1, 0.0),
    "Boardroom-Meeting-Suggestion": (3, 1, 0.0), "Drake-Hotline-Bling": (2, 1, 0.0),
    "Inhaling-Seagull": (4, 1, 0.0), "Hide-the-Pain-Harold": (2, 1, 0.0),
    "Bad-Pun-Dog": (3, 1, 0.0), "Finding-Neverland": (3, 1, 0.0),
    "Running-Away-Balloon": (2, 1, 0.0), "Tuxedo-Winnie-The-Pooh": (2, 1, 0.0),
    "Ill-Just-Wait-Here": (2, 1, 0.0), "Put-It-Somewhere-Else-Patrick": (2, 1, 0.0),
    "This-Is-Where-Id-Put-My-Trophy-If-I-Had-One": (2, 1, 0.0),
    "See-Nobody-Cares": (2, 1, 0.0), "Two-Buttons": (2, 1, 0.0),
    "Hard-To-Swallow-Pills": (2, 1, 0.0),
}
CAPTIONS = ("WHEN THE CODE WORKS FIRST TRY", "ME ON MONDAY MORNING", "NOBODY: ABSOLUTELY NOBODY",
            "MY PLANS VS 2020", "WHEN YOU SEE THE BILL", "POV: YOU FORGOT THE DEADLINE")


def machine() -> str:
    load = os.getloadavg()
    return f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"


def _dir(*parts: str) -> Path:
    from memeatlas.testing.shared_data import shared_path

    p = shared_path(*parts)
    if p is None:
        sys.exit(f"needs ../shared/data/{'/'.join(parts)}")
    return p


# ---- templates ------------------------------------------------------------------------------
def _scores(pairs: list[tuple[str, str]]) -> dict[str, float]:
    """(imgflip name, given template or 'unknown') → recall, precision, unknown rate."""
    held = [(m, t) for m, t in pairs if m in TRUTH]
    lacking = [(m, t) for m, t in pairs if m not in TRUTH]
    right = sum(t in TRUTH[m] for m, t in held)
    named = [(m, t) for m, t in pairs if t != "unknown"]
    correct_named = sum(m in TRUTH and t in TRUTH[m] for m, t in named)
    return {"held": len(held), "lacking": len(lacking), "recall": right / len(held),
            "named": len(named), "precision": correct_named / len(named) if named else 1.0,
            "unknown_rate": sum(t == "unknown" for _, t in lacking) / len(lacking)}


def bench_templates() -> None:
    from memeatlas.embed import ImageEmbedConfig, embed_image
    from memeatlas.images import TemplateMatchConfig, match_templates
    from memeatlas.images.templates import _load_gallery, calibrate, read_gallery
    from memeatlas.ingest import ingest_paths
    from memeatlas.store import Store

    imgflip, wang = _dir("template-images", "imgflip"), _dir("template-images", "wang_wen_2015")
    with tempfile.TemporaryDirectory() as d:
        store = Store.open(Path(d) / "t.duckdb")
        ingest_paths(store, [imgflip])
        embed_image(store, ImageEmbedConfig(model="torchvision:mobilenet_v2"))
        t = time.perf_counter()
        s = match_templates(store, TemplateMatchConfig(gallery=wang))
        secs = time.perf_counter() - t
        rows = [(Path(p).stem, tmpl, best, score) for p, tmpl, best, score in store.fetchall(
            "SELECT m.path, t.template, t.best_template, t.score FROM template_matches t "
            "JOIN memes m USING (meme_id) WHERE t.run_id = ?", [s.run_id])]
        items = read_gallery(wang)
        cfg = TemplateMatchConfig(gallery=wang)
        _, G = _load_gallery(items, cfg)
        old_thr, old_cal = calibrate(G, [t for t, _ in items], 0.95, aliases=None)
        store.close()
    print(f"machine: {machine()}; match_templates {secs:.0f}s (gallery embedding, alias check)")
    top1 = sum(m in TRUTH and b in TRUTH[m] for m, _, b, _ in rows)
    print(f"ImgFlip 100 vs Wang & Wen 2015 (117 files): best match right for {top1} of "
          f"{len(TRUTH)} held templates")
    print(f"aliases found: {s.calibration.get('aliases')}")
    print("\n| calibration | threshold | matched | in-gallery recall | precision | "
          "unknown rate (lacking) |")
    print("|---|---|---|---|---|---|")
    for name, thr, cal in (("before: no alias merge", old_thr, old_cal),
                           ("aliases merged (default)", s.threshold, s.calibration)):
        given = [(m, b if sc >= thr else "unknown") for m, _, b, sc in rows]
        r = _scores(given)
        print(f"| {name} (impostor max {cal['impostor_max']}) | {thr:.3f} | {r['named']} | "
              f"{r['recall']:.3f} ({round(r['recall'] * r['held'])}/{r['held']}) | "
              f"{r['precision']:.3f} | {r['unknown_rate']:.3f} "
              f"({round(r['unknown_rate'] * r['lacking'])}/{r['lacking']}) |")
    stored = _scores([(m, t) for m, t, _, _ in rows])
    assert abs(stored["recall"] - _scores([(m, b if sc >= s.threshold else "unknown")
                                           for m, _, b, sc in rows])["recall"]) < 1e-9
    for m, t, b, sc in sorted(rows, key=lambda r: -r[3]):
        if (m in TRUTH) != (t != "unknown") or (m in TRUTH and t != "unknown"
                                                and t not in TRUTH[m]):
            print(f"  {'miss' if m in TRUTH else 'false match'}: {m} -> {t} (best {b}, {sc:.3f})")


# ---- near-duplicates ------------------------------------------------------------------------
def _panels() -> dict[str, object]:
    from memeatlas.imaging import load_image

    base = _dir("template-images", "imgflip")
    out = {}
    for name, (rows, cols, x0) in PANELS.items():
        (f,) = [p for p in base.iterdir() if p.stem == name]
        im = load_image(f)
        w, h = im.size
        for i in range(rows):
            for j in range(cols):
                left = x0 * w + w * (1 - x0) * j / cols
                right = x0 * w + w * (1 - x0) * (j + 1) / cols
                top, bottom = h * i / rows, h * (i + 1) / rows
                mx, my = 0.02 * (right - left), 0.02 * (bottom - top)  # off the panel borders
                out[f"{name}#{i}{j}"] = im.crop((int(left + mx), int(top + my),
                                                 int(right - mx), int(bottom - my)))
    return out


def _templates() -> dict[str, object]:
    from memeatlas.imaging import load_image

    return {f.stem: load_image(f) for f in sorted(_dir("template-images", "imgflip").iterdir())}


def _write_set(folder: Path, originals: dict, which: str) -> dict[str, str]:
    """Files for every picture and variant; file name → picture."""
    from memeatlas.testing.variants import caption_bar, crop10, half, jpeg, make_variants

    folder.mkdir(parents=True)
    truth = {}
    for k, (name, img) in enumerate(originals.items()):
        img = img.convert("RGB")
        stem = f"p{k:03d}"
        vs = {"orig": img, "half_jpeg": jpeg(half(img), 50),
              "crop_bar": caption_bar(crop10(img), CAPTIONS[k % len(CAPTIONS)])}
        if which == "all":
            vs.update(make_variants(img))
        for v, im in vs.items():
            fn = f"{stem}__{v}.{'jpg' if 'jpeg' in v else 'png'}"
            im.save(folder / fn, quality=95) if fn.endswith("jpg") else im.save(folder / fn)
            truth[fn] = name
    return truth


def _pair_scores(groups: dict[str, str], truth: dict[str, str]) -> tuple[float, float]:
    ids = sorted(truth)
    pic = np.array([truth[m] for m in ids])
    lab = np.array([groups[m] for m in ids])
    iu = np.triu_indices(len(ids), 1)
    same, g = (pic[:, None] == pic[None, :])[iu], (lab[:, None] == lab[None, :])[iu]
    tp, fp, fn = (g & same).sum(), (g & ~same).sum(), (~g & same).sum()
    return float(tp / (tp + fn)), float(tp / (tp + fp)) if tp + fp else 1.0


def bench_neardup(sets: list[str], which: str) -> None:
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    from memeatlas.embed import ImageEmbedConfig, embed_image, load_space
    from memeatlas.images import NearDupConfig, group_near_duplicates
    from memeatlas.ingest import ingest_paths
    from memeatlas.store import Store

    print(f"machine: {machine()}")
    print("\n| set | pictures | files | rule | template level: recall / precision | "
          "same picture: recall / precision |")
    print("|---|---|---|---|---|---|")
    for name in sets:
        originals = _panels() if name == "panels" else _templates()
        with tempfile.TemporaryDirectory() as d:
            truth_fn = _write_set(Path(d) / "imgs", originals, which)
            store = Store.open(Path(d) / "n.duckdb")
            ingest_paths(store, [Path(d) / "imgs"])
            embed_image(store, ImageEmbedConfig(model="torchvision:mobilenet_v2"))
            by_id = {m: Path(p).name for m, p in store.fetchall("SELECT meme_id, path FROM memes")}
            truth = {m: truth_fn[f] for m, f in by_id.items()}
            # before issue 22: components of pHash <= 10 or cosine >= 0.85
            ids, X = load_space(store, "image:mobilenet_v2")
            ph = dict(store.fetchall("SELECT meme_id, phash FROM memes"))
            H = np.array([int(ph[m], 16) for m in ids], dtype=np.uint64)
            A = (np.bitwise_count(H[:, None] ^ H[None, :]) <= 10) | (X @ X.T >= 0.85)
            _, lab = connected_components(sp.csr_matrix(A), directed=False)
            old = dict(zip(ids, lab.tolist(), strict=True))
            _, lab_h = connected_components(sp.csr_matrix(
                np.bitwise_count(H[:, None] ^ H[None, :]) <= 10), directed=False)
            old_img = dict(zip(ids, lab_h.tolist(), strict=True))
            t = time.perf_counter()
            s = group_near_duplicates(store, NearDupConfig())
            secs = time.perf_counter() - t
            grp = dict(store.fetchall("SELECT meme_id, group_id FROM dup_members WHERE run_id = ?",
                                      [s.run_id]))
            img = dict(store.fetchall("SELECT meme_id, image_group_id FROM dup_members "
                                      "WHERE run_id = ?", [s.run_id]))
            store.close()
        n_pic = len(originals)
        for rule, g1, g2 in (("before (pHash <= 10 or cos >= 0.85, single link)", old, old_img),
                             (f"verified (default; {secs:.0f}s, {s.n_verified} pairs "
                              f"checked, kinds {s.kinds})", grp, img)):
            r1, p1 = _pair_scores(g1, truth)
            r2, p2 = _pair_scores(g2, truth)
            print(f"| {name} | {n_pic} | {len(truth)} | {rule} | {r1:.3f} / {p1:.3f} | "
                  f"{r2:.3f} / {p2:.3f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("part", choices=("templates", "neardup"))
    ap.add_argument("--set", default="both", choices=("panels", "templates", "both"))
    ap.add_argument("--variants", default="heldout", choices=("heldout", "all"))
    a = ap.parse_args()
    if a.part == "templates":
        bench_templates()
    else:
        bench_neardup(["panels", "templates"] if a.set == "both" else [a.set], a.variants)


if __name__ == "__main__":
    main()
