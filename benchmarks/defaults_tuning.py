"""Tune the default clustering (granularity + noise floor) on real data (issue 22).

    python benchmarks/defaults_tuning.py reduce  --sets imgflip-all-title-box,stsb,sick,memecap
    python benchmarks/defaults_tuning.py sweep   --sets ... [--sub 6000] [--out FILE]
    python benchmarks/defaults_tuning.py floors  --sets ...

Data: benchmarks/granularity_data.py (embedded once, cached; `--cache`). Every clustering here
starts from memeatlas's own default UMAP reduction of a set (k-NN 15, 5-D, min_dist 0, 200
epochs, seed 42 and, for stability, seeds 43 … 46), made once by `memeatlas.cluster.run`
(`layout=False`) and cached under `--work` (default /tmp/memeatlas-tuning), so the variants of
HDBSCAN (criterion, min_samples, candidate grid, selection method) and of the noise floor are
compared on exactly the coordinates a default run clusters.

Measures, each with k (clusters) and the noise share beside it:
- ImgFlip (template labels): ARI / NMI where a noise meme is assigned to its soft cluster when
  its soft membership is ≥ the floor, else counts as a singleton (what `evaluate labels` does);
  floor 0 = every noise meme assigned (the old `--noise assigned`), floor ∞ = noise apart;
- STS-B / SICK: Grimmer & King CQ with the same floor rule (a pair with a noise sentence is
  apart), the coverage (share of sentences in a cluster) and k-means CQ at the same k;
- MemeCap: mean pairwise ARI across 5 seeds (noise as singletons after the floor).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from granularity_data import load  # noqa: E402

WORK = Path("/tmp/memeatlas-tuning")
FLOORS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, float("inf"))


# --------------------------------------------------------------------------- reductions

def reduction(name: str, cache: Path, work: Path, seed: int = 42, sub: int = 0,
              neighbors: int = 15, dims: int = 5) -> tuple[dict, np.ndarray]:
    """(data set, memeatlas's default UMAP reduction of it), cached on disk."""
    d = load(cache, name)
    if sub and sub < len(d["vectors"]):
        pick = np.sort(np.random.default_rng(0).choice(len(d["vectors"]), sub, replace=False))
        d = {k: (v[pick] if k in ("vectors", "texts", "labels") else v) for k, v in d.items()}
        assert "pairs" not in d, "subsample only labelled sets"
    tag = f"{name}-sub{sub}-s{seed}-nn{neighbors}-d{dims}"
    path = work / "red" / f"{tag}.npy"
    if path.exists():
        return d, np.load(path)
    from granularity import _store_with

    from memeatlas.cluster import ClusterConfig, run
    from memeatlas.corpus.runs import load_model

    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="memeatlas-tune-") as tmp:
        store, ids = _store_with(Path(tmp) / "s.duckdb", d["vectors"])
        [rid] = run(store, ClusterConfig(spaces=["text:bench"], layout=False, seed=seed,
                                         umap_neighbors=neighbors, umap_dims=dims))
        m = load_model(store, rid)
        pos = {mid: i for i, mid in enumerate(m["ids"])}
        xr = np.asarray(m["reduced"])[[pos[i] for i in ids]]
        store.close()
    np.save(path, xr)
    print(f"reduced {tag} ({len(xr)} points) in {time.perf_counter() - t0:.0f}s", flush=True)
    return d, xr


# --------------------------------------------------------------------------- HDBSCAN variants

@dataclass
class Fit:
    size: int
    min_samples: int
    selection: str
    labels: np.ndarray
    persistence: np.ndarray
    model: object

    @property
    def k(self) -> int:
        return int(self.labels.max() + 1)

    @property
    def noise(self) -> float:
        return float((self.labels < 0).mean())


def grid(n: int, lo: int = 5, hi_div: int = 20, cap: int = 500, num: int = 8) -> list[int]:
    """A geometric grid lo … min(cap, n/hi_div), like granularity.candidate_sizes."""
    hi = int(min(cap, max(lo, n // hi_div)))
    return sorted({int(round(v)) for v in np.geomspace(lo, max(hi, lo), num=num)})


def fit_all(xr: np.ndarray, sizes: list[int], ms_rule, selection: str = "eom") -> list[Fit]:
    """HDBSCAN on xr for every size (min_samples = ms_rule(size)); MST shared per min_samples."""
    import hdbscan
    from joblib import Memory

    out = []
    with tempfile.TemporaryDirectory(prefix="memeatlas-tune-hdb-") as tmp:
        mem = Memory(tmp, verbose=0)
        for s in sizes:
            ms = int(ms_rule(s))
            m = hdbscan.HDBSCAN(min_cluster_size=s, min_samples=ms,
                                cluster_selection_method=selection, metric="euclidean",
                                core_dist_n_jobs=1, memory=mem)
            lab = m.fit_predict(np.asarray(xr, np.float64)).astype(np.int64)
            m.memory = None
            out.append(Fit(s, ms, selection, lab, np.asarray(m.cluster_persistence_), m))
    return out


def criterion_value(f: Fit, crit: str) -> float | None:
    """Internal criteria a granularity choice could maximise (None: fewer than 2 clusters)."""
    if f.k < 2:
        return None
    p = f.persistence
    sizes = np.bincount(f.labels[f.labels >= 0], minlength=f.k).astype(float)
    n = len(f.labels)
    if crit == "persistence":  # the current default: Σ persistence
        return float(p.sum())
    if crit == "persistence_covered":  # Σ persistence × share of memes clustered
        return float(p.sum() * (1 - f.noise))
    if crit == "persistence_sqrt":  # Σ persistence × √(size / mean size)
        return float((p * np.sqrt(sizes / sizes.mean())).sum())
    if crit == "persistence_mass":  # share of memes in persistent clusters
        return float((p * sizes).sum() / n)
    raise ValueError(crit)


CRITS = ("persistence", "persistence_covered", "persistence_sqrt", "persistence_mass")


def soft_of(f: Fit) -> tuple[np.ndarray, np.ndarray]:
    """memeatlas's stored soft cluster and soft probability for this fit."""
    from memeatlas.cluster.soft import soft_membership

    if not hasattr(f, "_soft"):
        f.model.prediction_data = True
        f.model.generate_prediction_data()
        f._soft = soft_membership(f.model, f.labels, f.model.probabilities_)
    return f._soft


def with_floor(f: Fit, floor: float) -> np.ndarray:
    """Hard labels with noise memes moved to their soft cluster when its membership ≥ floor."""
    soft, sp = soft_of(f)
    lab = f.labels.copy()
    move = (lab < 0) & (sp >= floor) & (soft >= 0)
    lab[move] = soft[move]
    return lab


# --------------------------------------------------------------------------- scores

def singletons(p: np.ndarray) -> np.ndarray:
    p = p.copy()
    m = p < 0
    p[m] = p.max() + 1 + np.arange(int(m.sum()))
    return p


def cq(lab: np.ndarray, pairs: np.ndarray) -> float:
    from memeatlas.evaluate.quality import cq_point

    i, j, y = pairs[:, 0].astype(int), pairs[:, 1].astype(int), pairs[:, 2]
    return cq_point(y, ((lab[i] == lab[j]) & (lab[i] >= 0)).astype(int))[0]


def score(d: dict, lab: np.ndarray) -> dict:
    from sklearn import metrics

    out = {"k": int(len(set(lab.tolist()) - {-1})), "noise": round(float((lab < 0).mean()), 4)}
    if "labels" in d:
        y = d["labels"]
        s = singletons(lab)
        out.update(ari=round(metrics.adjusted_rand_score(y, s), 4),
                   nmi=round(metrics.normalized_mutual_info_score(y, s), 4))
    if "pairs" in d:
        out["cq"] = round(cq(lab, d["pairs"]), 4)
    return out


def fmt(r: dict) -> str:
    keys = [k for k in ("ari", "nmi", "cq", "k", "noise") if k in r]
    return " ".join(f"{k}={r[k]}" for k in keys)


# --------------------------------------------------------------------------- commands

MS_RULES = {
    "min5": lambda s: min(5, s),       # the current default
    "1": lambda s: 1,
    "2": lambda s: min(2, s),
    "3": lambda s: min(3, s),
    "min10": lambda s: min(10, s),
    "size": lambda s: s,
    "half": lambda s: max(1, s // 2),
}


def cmd_sweep(a) -> list[dict]:
    """Every variant: ms rule × grid × selection → every candidate's scores + each criterion's pick."""
    results = []
    for name in a.sets:
        d, xr = reduction(name, a.cache, a.work, sub=a.sub)
        n = len(xr)
        grids = {"5-n/20x8": grid(n)}
        if a.wide:
            grids.update({"3-n/10x10": grid(n, lo=3, hi_div=10, cap=1000, num=10),
                          "5-n/20x12": grid(n, num=12)})
        for (ms_name, (g_name, sizes), sel) in itertools.product(a.ms, grids.items(), a.sel):
            t0 = time.perf_counter()
            fits = fit_all(xr, sizes, MS_RULES[ms_name], sel)
            rows = []
            for f in fits:
                row = {"size": f.size, "ms": f.min_samples,
                       **{c: criterion_value(f, c) for c in CRITS}}
                for fl in a.floors:
                    row[f"floor{fl}"] = score(d, with_floor(f, fl))
                rows.append(row)
            picks = {}
            for c in CRITS:
                vals = [(r[c], -r["size"]) for r in rows if r[c] is not None]
                if vals:
                    best = max(vals)
                    picks[c] = -best[1]
            res = {"set": name, "n": n, "ms": ms_name, "grid": g_name, "sel": sel,
                   "rows": rows, "picks": picks, "seconds": round(time.perf_counter() - t0, 1)}
            results.append(res)
            print(f"\n== {name} n={n} ms={ms_name} grid={g_name} sel={sel} "
                  f"({res['seconds']}s) picks={picks}", flush=True)
            for r in rows:
                crit = " ".join(f"{c[:14]}={r[c]:.2f}" if r[c] is not None else f"{c[:14]}=-"
                                for c in CRITS)
                print(f"  size {r['size']:4d} ms {r['ms']:3d} | {crit}", flush=True)
                for fl in a.floors:
                    print(f"      floor {fl:<5}: {fmt(r[f'floor{fl}'])}", flush=True)
            for f in fits:  # free the models
                f.model = None
    if a.out:
        a.out.write_text(json.dumps(results, default=str, indent=1))
    return results


def cmd_stability(a) -> None:
    """MemeCap (or any set): mean pairwise ARI across seeds for each variant's choice."""
    from sklearn.metrics import adjusted_rand_score

    for name in a.sets:
        reds = [reduction(name, a.cache, a.work, seed=42 + i, sub=a.sub)[1]
                for i in range(a.seeds)]
        d = load(a.cache, name)
        for ms_name, sel, crit in itertools.product(a.ms, a.sel, a.crits):
            labs = {fl: [] for fl in a.floors}
            picked = []
            for xr in reds:
                fits = fit_all(xr, grid(len(xr)), MS_RULES[ms_name], sel)
                scored = [(criterion_value(f, crit), -f.size, i) for i, f in enumerate(fits)
                          if criterion_value(f, crit) is not None]
                f = fits[max(scored)[2]] if scored else fits[0]
                picked.append((f.size, f.k, round(f.noise, 3)))
                for fl in a.floors:
                    labs[fl].append(with_floor(f, fl))
            out = {}
            for fl in a.floors:
                aris = [adjusted_rand_score(singletons(x), singletons(y))
                        for x, y in itertools.combinations(labs[fl], 2)]
                out[fl] = (round(float(np.mean(aris)), 4),
                           round(float(np.mean([(x < 0).mean() for x in labs[fl]])), 4))
                if "pairs" in d:
                    out[fl] += (round(float(np.mean([cq(x, d["pairs"]) for x in labs[fl]])), 4),)
            print(f"{name} ms={ms_name} sel={sel} crit={crit} picks={picked}", flush=True)
            for fl, v in out.items():
                print(f"    floor {fl:<5}: stability {v[0]} noise {v[1]}"
                      + (f" cq {v[2]}" if len(v) > 2 else ""), flush=True)


def main() -> None:
    from granularity_data import DEFAULT_CACHE

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("command", choices=("reduce", "sweep", "stability"))
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--work", type=Path, default=WORK)
    ap.add_argument("--sets", type=lambda s: s.split(","), default=["stsb"])
    ap.add_argument("--sub", type=int, default=0, help="subsample a labelled set (seed 0)")
    ap.add_argument("--ms", type=lambda s: s.split(","), default=["min5"])
    ap.add_argument("--sel", type=lambda s: s.split(","), default=["eom"])
    ap.add_argument("--crits", type=lambda s: s.split(","), default=["persistence"])
    ap.add_argument("--floors", type=lambda s: [float(v) for v in s.split(",")],
                    default=list(FLOORS))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--wide", action="store_true", help="also try wider candidate grids")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    if a.command == "reduce":
        for name in a.sets:
            reduction(name, a.cache, a.work, sub=a.sub)
    elif a.command == "sweep":
        cmd_sweep(a)
    else:
        cmd_stability(a)


if __name__ == "__main__":
    main()
