"""Fixtures for the report/rate-page tests: a store filled directly with SQL.

The rows are what the caption, embed, cluster and evaluate steps write, made by hand
so these tests do not depend on (or wait for) those steps. Images are real files.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from memeatlas.evaluate.pairs import pair_id  # the real id function, as import checks it
from memeatlas.store import Store

XSS_TEXTS = [
    '<script>window.__xss = 1; alert("xss")</script>',
    '"><img src=x onerror="window.__xss=2;alert(2)">',
    "</script><script>window.__xss=3</script>",
    "<svg onload=alert(4)> & ' \" \u2028 line",
]
XSS_FILE_NAME = '"><img src=x onerror=alert(5)>.png'

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_available() -> bool:
    """Debian's chromium is what the browser tests drive (never a Playwright download)."""
    return os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)


def launch_browser(playwright):
    """Headless Debian chromium via Playwright."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def _image(path: Path, k: int, cluster: int) -> None:
    colours = [(220, 80, 60), (60, 120, 220), (60, 170, 90), (200, 170, 40), (130, 80, 180)]
    img = Image.new("RGB", (240 + 7 * (k % 5), 200), colours[cluster % len(colours)])
    d = ImageDraw.Draw(img)
    d.rectangle([10 + k % 30, 10, 90 + k % 30, 90], fill=(255, 255, 255))
    d.text((12, 150), f"MEME {k}", fill=(0, 0, 0))
    img.save(path)


def fill_store(store: Store, img_dir: Path, *, n_clusters: int = 3, per_cluster: int = 6,
               n_noise: int = 3, xss: bool = True, sweep: bool = True, pair_set: str | None = "ps1",
               n_pairs: int = 6, seed: int = 0) -> dict:
    """Memes with images and annotations, one cluster run (plus a second run to compare),
    labels, evaluations (a CQ sweep) and a pair set. Returns ids for the tests."""
    rng = np.random.default_rng(seed)
    img_dir.mkdir(parents=True, exist_ok=True)
    memes = []
    k = 0
    layout = []
    for c in list(range(n_clusters)) + [-1]:
        n = per_cluster if c >= 0 else n_noise
        cx, cy = (c * 5.0, (c % 2) * 4.0) if c >= 0 else (2.0, 8.0)
        for _ in range(n):
            name = f"meme_{k:03d}.png"
            if xss and k == 0:
                name = XSS_FILE_NAME
            path = img_dir / name
            _image(path, k, max(c, 0))
            mid = hashlib.sha256(path.read_bytes()).hexdigest()
            memes.append((mid, str(path), c))
            layout.append((float(cx + rng.normal(0, 0.6)), float(cy + rng.normal(0, 0.6))))
            k += 1
    run_a, run_b = "cluster-test-a", "cluster-test-b"
    with store.transaction():
        for i, (mid, path, c) in enumerate(memes):
            store.execute("INSERT INTO memes (meme_id, path, source, has_image, width, height, format, n_bytes)"
                          " VALUES (?,?,?,?,?,?,?,?)", [mid, path, "folder", True, 240, 200, "PNG",
                                                       os.path.getsize(path)])
            ocr = XSS_TEXTS[i % len(XSS_TEXTS)] if xss and i < len(XSS_TEXTS) else f"top text {i} bottom text"
            desc = (XSS_TEXTS[(i + 1) % len(XSS_TEXTS)] if xss and i < len(XSS_TEXTS)
                    else f"a coloured card number {i} of group {c}")
            ents = json.dumps([{"name": XSS_TEXTS[1] if xss and i == 0 else f"thing {i}",
                                "role": "hero", "stands_for": "the poster"}])
            store.execute(
                "INSERT INTO annotations (meme_id, annotator, prompt_hash, schema_hash, description,"
                " ocr_text, intent, template, tone, entities, raw) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [mid, "test-vlm@1", "p1", "s1", desc, ocr, f"says thing {c}", None, "humorous", ents,
                 json.dumps({"ocr_text": ocr})])
        params = json.dumps({"min_cluster_size": 5, "umap": {"n_neighbors": 15}})
        for rid, pm in ((run_a, params), (run_b, json.dumps({"n_clusters": 2}))):
            store.execute(
                "INSERT INTO cluster_runs (run_id, space, algorithm, params, seed, n_items, n_clusters,"
                " noise_fraction, fingerprint, software) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [rid, "text:description+intent", "hdbscan" if rid == run_a else "kmeans", pm, 0,
                 len(memes), n_clusters if rid == run_a else 2,
                 n_noise / len(memes) if rid == run_a else 0.0, "fp-" + rid,
                 json.dumps({"memeatlas": "0.1.0"})])
        for (mid, _p, c), (x, y) in zip(memes, layout, strict=False):
            store.execute("INSERT INTO cluster_assignments (run_id, meme_id, cluster, probability, x, y)"
                          " VALUES (?,?,?,?,?,?)", [run_a, mid, c, 1.0 if c >= 0 else 0.0, x, y])
            store.execute("INSERT INTO cluster_assignments (run_id, meme_id, cluster, probability, x, y)"
                          " VALUES (?,?,?,?,?,?)", [run_b, mid, 0 if x < 5 else 1, 1.0, x, y])
        by_cluster: dict[int, list[str]] = {}
        for mid, _p, c in memes:
            by_cluster.setdefault(c, []).append(mid)
        for c in range(n_clusters):
            label = XSS_TEXTS[0] if xss and c == 0 else f"theme {c}"
            store.execute(
                "INSERT INTO cluster_labels (run_id, cluster, size, keywords, keyword_scores, label,"
                " representatives, representation, labeler) VALUES (?,?,?,?,?,?,?,?,?)",
                [run_a, c, len(by_cluster[c]), [f"kw{c}a", f"kw{c}b", XSS_TEXTS[1] if xss else "kw"],
                 [0.5, 0.4, 0.1], label, by_cluster[c][:2], "ctfidf", "bertopic"])
        # A CQ sweep over min_cluster_size: runs on the same space, evaluated.
        if sweep:
            for j, mcs in enumerate((3, 5, 10, 20)):
                rid = run_a if mcs == 5 else f"cluster-sweep-{mcs}"
                if rid != run_a:
                    store.execute(
                        "INSERT INTO cluster_runs (run_id, space, algorithm, params, n_items, n_clusters)"
                        " VALUES (?,?,?,?,?,?)",
                        [rid, "text:description+intent", "hdbscan",
                         json.dumps({"min_cluster_size": mcs}), len(memes), max(1, 6 - j)])
                for dim, base in (("connotative", 0.6), ("denotative", 0.8)):
                    v = base - 0.1 * j
                    store.execute(
                        "INSERT INTO evaluations (eval_id, run_id, metric, value, ci_low, ci_high, n, details)"
                        " VALUES (?,?,?,?,?,?,?,?)",
                        [f"ev{j}{dim}", rid, "cq", v, v - 0.15, v + 0.15, 40,
                         json.dumps({"dimension": dim, "pair_set": pair_set or "x"})])
        if pair_set:
            store.execute("INSERT INTO pair_sets (pair_set, strategy, runs, seed, params) VALUES (?,?,?,?,?)",
                          [pair_set, "random", json.dumps([run_a]), 0,
                           json.dumps({"n": n_pairs, "dimensions": ["connotative", "denotative"]})])
            ids = [m[0] for m in memes]
            seen = set()
            pos = 0
            while len(seen) < n_pairs:
                a, b = rng.choice(len(ids), 2, replace=False)
                pid = pair_id(ids[a], ids[b])
                if pid in seen:
                    continue
                seen.add(pid)
                pos += 1
                store.execute("INSERT INTO rating_pairs (pair_set, pair_id, meme_a, meme_b, stratum, position)"
                              " VALUES (?,?,?,?,?,?)", [pair_set, pid, ids[a], ids[b], "random", pos])
            store.execute(
                "INSERT INTO evaluations (eval_id, run_id, metric, value, ci_low, ci_high, n, details)"
                " VALUES (?,?,?,?,?,?,?,?)",
                ["alpha1", None, "alpha_ordinal", 0.71, 0.6, 0.8, n_pairs,
                 json.dumps({"pair_set": pair_set, "dimension": "connotative"})])
    return {"run_a": run_a, "run_b": run_b, "memes": memes, "pair_set": pair_set}


