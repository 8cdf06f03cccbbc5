"""Worked evaluation study with simulated coders: sample pairs → two coders rate → import → agreement → quality.

On a database with at least two clustering runs and known categories (e.g. the demo corpus, whose
manifest gives every meme a `theme` — what the text is about — and a `template` — what the picture
looks like):

    python benchmarks/evaluate_demo.py --db demo.duckdb
    python benchmarks/evaluate_demo.py --db demo.duckdb --runs RUN_TEXT,RUN_IMAGE \
        --truth connotative=theme --truth denotative=template --n 500

Each simulated coder rates a pair 3 (closely related) when the two memes share the category that the
dimension follows, else 1, and with probability --flip (per coder, per rating) gives 2 instead; so
the coders agree imperfectly, like people. The ratings go through the same rating sheet and
`import_ratings` path that real coders' sheets take. Without a database, `--synthetic` builds one
with planted runs (no models) to show the flow. Prints markdown: agreement, quality table, known labels.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from memeatlas.evaluate import agreement, import_ratings, labels, quality, sample_pairs
from memeatlas.evaluate.common import render
from memeatlas.evaluate.external import load_truth
from memeatlas.store import Store


def default_runs(store) -> list[str]:
    """The newest plain clustering run of every space (at least two needed)."""
    rows = store.fetchall(
        "SELECT run_id, space FROM cluster_runs WHERE coalesce(kind, 'cluster') = 'cluster' "
        "QUALIFY row_number() OVER (PARTITION BY space ORDER BY created_at DESC, run_id DESC) = 1 "
        "ORDER BY space DESC")
    return [r[0] for r in rows]


def simulate(sheet: Path, out: Path, truths: dict[str, dict[str, str]], flips: dict[str, float],
             rng: np.random.Generator) -> Path:
    """Fill a rating sheet as one coder would, from the planted truth of each dimension."""
    with sheet.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    with out.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for row in rows[1:]:
            a, b = row[1], row[2]
            for dim, truth in truths.items():
                ta, tb = truth.get(a), truth.get(b)
                if ta is None or tb is None:
                    continue  # unknown truth: the coder leaves it blank
                r = 3 if ta == tb else 1
                if rng.random() < flips[dim]:
                    r = 2
                row[header.index(dim)] = str(r)
            w.writerow(row)
    return out


def build_synthetic(db: Path, n: int = 300, seed: int = 0) -> list[str]:
    """A database with memes in 5 themes x 3 templates and two planted runs (no images, no models).

    'text' recovers themes (10 % of memes misplaced, 8 % noise); 'image' recovers templates
    (same error rates): the contrast of the demo corpus, without running the pipeline.
    """
    rng = np.random.default_rng(seed)
    store = Store.open(db)
    themes = [f"theme{i}" for i in range(5)]
    templates = [f"template{i}" for i in range(3)]
    ids = [f"{i:064x}" for i in range(n)]
    meta = [{"theme": themes[i % 5], "template": templates[(i // 5) % 3]} for i in range(n)]
    store.insert_rows("memes", ("meme_id", "path", "source", "source_id", "has_image", "meta"),
                [(mid, f"/synthetic/meme_{i:04d}.png", "manifest", f"s{i}", True, json.dumps(meta[i]))
                 for i, mid in enumerate(ids)])
    for name, key, values in (("text", "theme", themes), ("image", "template", templates)):
        lab = np.array([values.index(m[key]) for m in meta])
        wrong = rng.random(n) < 0.10
        lab[wrong] = rng.integers(0, len(values), wrong.sum())
        lab[rng.random(n) < 0.08] = -1
        space = "text:description+intent" if name == "text" else "image:clip"
        run_id = f"synthetic-{name}"
        store.execute("INSERT INTO cluster_runs (run_id, space, algorithm, params, n_items, n_clusters, "
                      "noise_fraction) VALUES (?,?,?,?,?,?,?)",
                      [run_id, space, "planted", json.dumps({"min_cluster_size": 10}), n, len(values),
                       float((lab == -1).mean())])
        store.insert_rows("cluster_assignments", ("run_id", "meme_id", "cluster"),
                    [(run_id, mid, int(c)) for mid, c in zip(ids, lab, strict=True)])
    store.close()
    return ["synthetic-text", "synthetic-image"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", type=Path, help="memeatlas database with >= 2 clustering runs")
    ap.add_argument("--synthetic", action="store_true", help="build a planted database in a temp dir")
    ap.add_argument("--runs", help="comma-separated run ids (default: newest run of every space)")
    ap.add_argument("--truth", action="append", default=None, metavar="DIM=SPEC",
                    help="dimension=truth spec (memes column, meta key, annotation.<col> or SQL); "
                         "default connotative=theme, denotative=template")
    ap.add_argument("--n", type=int, default=500, help="pairs to sample (default 500, as Arminio et al.)")
    ap.add_argument("--strategy", default="stratified", choices=["stratified", "random"])
    ap.add_argument("--flip", type=float, nargs=2, default=[0.25, 0.15], metavar=("CONN", "DEN"),
                    help="per-rating chance a coder says 2 instead, connotative then other dimensions")
    ap.add_argument("--bootstrap", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pair-set", default="demo-simulated")
    ap.add_argument("--workdir", type=Path, help="where sheets go (default: a temp dir)")
    args = ap.parse_args(argv)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="memeatlas-evaluate-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.synthetic:
        db = work / "synthetic.duckdb"
        if db.exists():
            db.unlink()
        runs = build_synthetic(db, seed=args.seed)
    elif args.db:
        db = args.db
        runs = None
    else:
        ap.error("give --db or --synthetic")
    t0 = time.perf_counter()
    store = Store.open(db)
    runs = args.runs.split(",") if args.runs else (runs or default_runs(store))
    if len(runs) < 2:
        print(f"need at least two clustering runs to compare, found {runs}. Add e.g. an image run:\n"
              f"  python -c \"from memeatlas.testing.tiny_clip import build_tiny_clip; "
              f"build_tiny_clip('tinyclip')\"   # offline; or a real CLIP id\n"
              f"  memeatlas embed image --db {db} --model tinyclip\n"
              f"  memeatlas cluster --db {db} --space image:tinyclip --algorithm kmeans --k 3",
              file=sys.stderr)
        return 1
    specs = dict(s.split("=", 1) for s in (args.truth or ["connotative=theme", "denotative=template"]))
    truths = {dim: load_truth(store, spec) for dim, spec in specs.items()}
    flips = {dim: (args.flip[0] if dim == "connotative" else args.flip[1]) for dim in specs}

    summary = sample_pairs(store, runs, n=args.n, strategy=args.strategy, seed=args.seed,
                           pair_set=args.pair_set, force=True, sheet=work / "sheet.csv",
                           dimensions=list(specs))
    rng = np.random.default_rng(args.seed + 1)
    for coder in ("coder1", "coder2"):
        filled = simulate(work / "sheet.csv", work / f"{coder}.csv", truths, flips, rng)
        import_ratings(store, filled, pair_set=args.pair_set, coder=coder)
    agr = agreement(store, args.pair_set, bootstrap=1000, seed=args.seed)
    q = quality(store, runs, args.pair_set, bootstrap=args.bootstrap, seed=args.seed)
    lab_rows = []
    for spec in specs.values():
        lab = labels(store, runs, spec)
        lab_rows += [{"truth": spec, **r} for r in lab.rows]
    seconds = time.perf_counter() - t0
    spaces = dict(store.fetchall("SELECT run_id, space FROM cluster_runs"))
    store.close()

    try:
        load = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        load = ["?"]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print("# Evaluation study with simulated coders\n")
    print(f"database `{db}`, runs: " + ", ".join(f"`{r}` ({spaces.get(r, '?')})" for r in runs))
    print(f"pairs: {summary.n_pairs} ({summary.strategy}, seed {args.seed}) over {summary.n_memes} memes; "
          f"two simulated coders, truth " + ", ".join(f"{d} = `{s}`" for d, s in specs.items())
          + ", chance of a 2 instead: " + ", ".join(f"{d} {flips[d]}" for d in specs))
    print(f"\nstrata (T/A = together/apart per run, in the order above):\n\n```\n"
          f"{render(summary.rows(), ('stratum', 'population', 'sampled'))}```")
    print(f"\n## Agreement (Krippendorff's alpha, ordinal)\n\n```\n{render(agr.rows, agr.columns)}```")
    cols = ("metric", "run", "space", "vs", "dimension", "value", "ci_low", "ci_high", "n", "n_within", "n_between",
            "mean_within", "mean_between")
    print(f"\n## Cluster quality (B={args.bootstrap})\n\n```\n{render(q.rows, cols)}```")
    print("\n" + "\n".join(f"- {n}" for n in q.notes))
    print(f"\n## Known labels\n\n```\n"
          f"{render(lab_rows, ('truth', 'run', 'scope', 'n', 'clusters', 'ari', 'nmi', 'v_measure', 'purity'))}```")
    print(f"\n{seconds:.1f} s for the whole study (sampling, 2 imports, agreement, quality, labels); "
          f"load average {' '.join(load)}; commit {commit or '?'}; sheets in {work}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
