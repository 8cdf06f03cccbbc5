"""Label interpretability task (Arminio et al. 2025): can people match memes to their cluster's label?

`export_label_task` writes, for each item, a few memes drawn at random from one cluster, and the list
of all cluster labels under neutral codes (L01, L02, … in shuffled order); items are shuffled too.
The key (item → cluster) is stored in the database, not in the files coders get (unless asked).
`score_label_task` reads the answers (item_id, answer[, coder]) and reports per-cluster precision and
recall (scikit-learn's definitions; a cluster nobody chose has precision 0) with macro averages,
accuracy and the chance level 1/K. Arminio et al. report 0.83 precision and recall over 32 clusters.
"""

from __future__ import annotations

import csv
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from memeatlas.errors import InputError, NotFoundError
from memeatlas.evaluate.common import (
    NOISE,
    load_assignments,
    new_eval_id,
    resolve_runs,
    store_evaluations,
)
from memeatlas.evaluate.ratings import MAX_ERRORS_SHOWN
from memeatlas.provenance import new_run_id, stable_json, utcnow
from memeatlas.userfiles import check_file


@dataclass
class LabelTaskExport:
    task_id: str
    run_id: str
    n_items: int
    n_clusters: int
    files: list[Path] = field(default_factory=list)
    skipped_clusters: list[int] = field(default_factory=list)


def _cluster_labels(store, run_id: str, source: str) -> dict[int, str]:
    rows = store.fetchall("SELECT cluster, label, keywords FROM latest_cluster_labels WHERE run_id = ? "
                          "AND cluster <> -1 ORDER BY cluster", [run_id])
    out = {}
    for c, label, kw in rows:
        text = label if source == "label" else None
        if not text and kw:
            text = ", ".join(list(kw)[:8])
        if text:
            out[int(c)] = str(text)
    return out


def export_label_task(store, run: str, out_dir: str | Path, *, memes_per_item: int = 4,
                      items_per_cluster: int = 3, seed: int = 0, labels_from: str = "label",
                      write_key: bool = False) -> LabelTaskExport:
    """Write items.csv, labels.csv and task.html under `out_dir`; store the task and its key."""
    if labels_from not in ("label", "keywords"):
        raise InputError(f"--labels-from must be 'label' or 'keywords', got {labels_from!r}")
    if memes_per_item < 1 or items_per_cluster < 1:
        raise InputError("--memes-per-item and --items-per-cluster must be at least 1")
    run_id = resolve_runs(store, run)[0]
    labels = _cluster_labels(store, run_id, labels_from)
    if not labels:
        raise NotFoundError(f"run {run_id} has no cluster labels; run `memeatlas cluster label --run "
                            f"{run_id}` first")
    assign = load_assignments(store, [run_id])[run_id]
    members: dict[int, list[str]] = {}
    for m, c in sorted(assign.items()):
        if c != NOISE and c in labels:
            members.setdefault(c, []).append(m)
    skipped = sorted(c for c in labels if c not in members)
    rng = np.random.default_rng(seed)
    clusters = sorted(members)
    opt_order = rng.permutation(len(clusters))
    options = {clusters[k]: f"L{i + 1:02d}" for i, k in enumerate(opt_order)}
    raw_items = []
    for c in clusters:
        pool = list(members[c])
        perm = list(rng.permutation(len(pool)))
        for _ in range(items_per_cluster):
            if len(perm) < min(memes_per_item, len(pool)):
                perm = list(rng.permutation(len(pool)))  # reuse memes only when the cluster runs out
            take = [pool[i] for i in perm[:memes_per_item]]
            perm = perm[memes_per_item:]
            raw_items.append((c, take))
    order = rng.permutation(len(raw_items))
    task_id = new_run_id("labeltask")
    items = [(f"I{i + 1:03d}", raw_items[k][0], raw_items[k][1]) for i, k in enumerate(order)]
    paths = dict(store.fetchall("SELECT meme_id, path FROM memes"))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    k = memes_per_item
    with (out / "items.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["item_id"] + [f"meme_{i + 1}" for i in range(k)] + [f"path_{i + 1}" for i in range(k)]
                   + ["answer"])
        for iid, _, ms in items:
            ms_pad = ms + [""] * (k - len(ms))
            w.writerow([iid] + ms_pad + [paths.get(m) or "" if m else "" for m in ms_pad] + [""])
    with (out / "labels.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["option", "label"])
        for c in sorted(options, key=options.get):
            w.writerow([options[c], labels[c]])
    (out / "task.html").write_text(_task_html(items, options, labels, paths), encoding="utf-8")
    files = [out / "items.csv", out / "labels.csv", out / "task.html"]
    if write_key:
        with (out / "key.csv").open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["item_id", "option", "cluster"])
            for iid, c, _ in items:
                w.writerow([iid, options[c], c])
        files.append(out / "key.csv")
    params = {"memes_per_item": memes_per_item, "items_per_cluster": items_per_cluster, "seed": seed,
              "labels_from": labels_from, "out_dir": str(out)}
    with store.transaction():
        store.execute("INSERT INTO label_tasks (task_id, run_id, params, created_at) VALUES (?,?,?,?)",
                      [task_id, run_id, stable_json(params), utcnow()])
        store.insert_rows("label_task_options", ("task_id", "option", "cluster", "label"),
                    [(task_id, options[c], c, labels[c]) for c in clusters])
        store.insert_rows("label_task_items", ("task_id", "item_id", "cluster", "meme_ids"),
                    [(task_id, iid, c, json.dumps(ms)) for iid, c, ms in items])
    return LabelTaskExport(task_id=task_id, run_id=run_id, n_items=len(items), n_clusters=len(clusters),
                           files=files, skipped_clusters=skipped)


def _img_src(path: str | None) -> str:
    """A file URI for a stored path (relative paths resolved; URLs kept), '' when there is none."""
    if not path:
        return ""
    if "://" in path:
        return path
    return Path(path).resolve().as_uri()


def _task_html(items, options, labels, paths) -> str:
    opts = "".join(f"<li><b>{o}</b> {html.escape(labels[c])}</li>"
                   for c, o in sorted(options.items(), key=lambda t: t[1]))
    blocks = []
    for iid, _, ms in items:
        imgs = "".join(f'<img src="{html.escape(_img_src(paths.get(m)))}" '
                       f'alt="{html.escape(m[:12])}" loading="lazy">' for m in ms)
        blocks.append(f'<section><h3>{iid}</h3><div class="row">{imgs}</div></section>')
    return ("<!doctype html><meta charset='utf-8'><title>Label matching task</title>"
            "<style>body{font-family:sans-serif;margin:1em 2em}.row img{height:160px;margin:4px;"
            "object-fit:contain;border:1px solid #ccc}aside{position:sticky;top:0;background:#fff;"
            "border-bottom:1px solid #ccc;max-height:30vh;overflow:auto}</style>"
            "<h1>Which label describes each group of memes?</h1>"
            "<p>For every item, write the option code (e.g. L07) of the label that fits best in the "
            "<code>answer</code> column of items.csv.</p>"
            f"<aside><ol style='list-style:none'>{opts}</ol></aside>" + "".join(blocks))


@dataclass
class LabelScore:
    task_id: str
    run_id: str
    rows: list[dict[str, Any]] = field(default_factory=list)     # per cluster
    summary: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    eval_id: str | None = None
    columns: tuple[str, ...] = ("cluster", "option", "label", "items", "chosen", "correct", "precision",
                                "recall")


def score_label_task(store, task_id: str, answers: str | Path, *, coder: str | None = None,
                     save: bool = True) -> LabelScore:
    """Per-cluster precision/recall and macro averages from an answers CSV (item_id, answer[, coder]).

    An answer is an option code (L07), the label text, or `cluster:<n>`. Bad rows raise InputError with
    line numbers and nothing is stored. Blank answers are counted as unanswered and reported.
    """
    from sklearn.metrics import precision_recall_fscore_support

    task = store.fetchone("SELECT run_id FROM label_tasks WHERE task_id = ?", [task_id])
    if task is None:
        known = [r[0] for r in store.fetchall("SELECT task_id FROM label_tasks ORDER BY created_at")]
        raise NotFoundError(f"label task {task_id!r} not found; tasks: {', '.join(known) or '(none)'}")
    run_id = task[0]
    opts = store.fetchall("SELECT option, cluster, label FROM label_task_options WHERE task_id = ?", [task_id])
    by_code = {o.lower(): c for o, c, _ in opts}
    by_label: dict[str, set[int]] = {}
    for _, c, lab in opts:
        by_label.setdefault(lab.strip().lower(), set()).add(c)
    key = dict(store.fetchall("SELECT item_id, cluster FROM label_task_items WHERE task_id = ?", [task_id]))
    path = check_file(answers, "answers file")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            fields = [f.strip().lower() for f in (reader.fieldnames or [])]
            if "item_id" not in fields or "answer" not in fields:
                raise InputError(f"{path}: needs columns item_id and answer; found {', '.join(fields)}")
            # Cells beyond the header (DictReader key None) are ignored, not a crash.
            rows = [{k.strip().lower(): (v or "").strip() for k, v in r.items() if k is not None}
                    for r in reader]
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text ({exc}); save it as UTF-8 CSV") from None
    except csv.Error as exc:  # e.g. a cell over the csv module's field limit
        raise InputError(f"answers file {path}: line {reader.line_num}: cannot parse as CSV "
                         f"({exc})") from None
    errors: list[tuple[int, str]] = []
    seen: dict[tuple[str, str], int] = {}
    y_true, y_pred, who = [], [], []
    blank = 0
    for i, r in enumerate(rows):
        line = i + 2
        iid, ans = r.get("item_id", ""), r.get("answer", "")
        c_name = r.get("coder") or coder or "coder"
        if not iid and not ans:
            continue
        if iid not in key:
            errors.append((line, f"unknown item_id {iid!r}"))
            continue
        if not ans:
            blank += 1
            continue
        low = ans.lower()
        if low in by_code:
            pred = by_code[low]
        elif low.startswith("cluster:") and low[8:].lstrip("-").isdigit() and int(low[8:]) in by_code.values():
            pred = int(low[8:])
        elif low in by_label and len(by_label[low]) == 1:
            pred = next(iter(by_label[low]))
        else:
            errors.append((line, f"answer {ans!r} is not an option code (L01..L{len(opts):02d}) or a label"))
            continue
        if (c_name, iid) in seen:
            errors.append((line, f"item {iid} answered twice by {c_name!r} (first on line {seen[(c_name, iid)]})"))
            continue
        seen[(c_name, iid)] = line
        y_true.append(key[iid])
        y_pred.append(pred)
        who.append(c_name)
    if errors:
        shown = "\n".join(f"  line {ln}: {m}" for ln, m in errors[:MAX_ERRORS_SHOWN])
        more = f"\n  ... and {len(errors) - MAX_ERRORS_SHOWN} more" if len(errors) > MAX_ERRORS_SHOWN else ""
        raise InputError(f"{path}: {len(errors)} problem(s); nothing was scored:\n{shown}{more}")
    if not y_true:
        raise InputError(f"{path}: no answers found")
    clusters = sorted(c for _, c, _ in opts)
    p, rc, _, support = precision_recall_fscore_support(y_true, y_pred, labels=clusters, zero_division=0)
    res = LabelScore(task_id=task_id, run_id=run_id)
    code_of = {c: o for o, c, _ in opts}
    label_of = {c: lab for _, c, lab in opts}
    yt, yp = np.array(y_true), np.array(y_pred)
    for j, c in enumerate(clusters):
        res.rows.append({"cluster": c, "option": code_of[c], "label": label_of[c], "items": int(support[j]),
                         "chosen": int((yp == c).sum()), "correct": int(((yp == c) & (yt == c)).sum()),
                         "precision": float(p[j]), "recall": float(rc[j])})
    acc = float((yt == yp).mean())
    res.summary = {"precision_macro": float(np.mean(p)), "recall_macro": float(np.mean(rc)),
                   "accuracy": acc, "chance": 1.0 / len(clusters), "clusters": len(clusters),
                   "answers": len(y_true), "coders": len(set(who)), "unanswered": blank}
    per_coder = {c: float(np.mean([t == q for t, q, w in zip(y_true, y_pred, who, strict=True) if w == c]))
                 for c in sorted(set(who))}
    if len(per_coder) > 1:
        res.notes.append("accuracy per coder: " + ", ".join(f"{c} {a:.3f}" for c, a in per_coder.items()))
    if blank:
        res.notes.append(f"{blank} item(s) left unanswered are not counted")
    res.notes.append("precision of a cluster nobody chose is 0 (scikit-learn zero_division=0); answers "
                     "of all coders are pooled")
    if save:
        res.eval_id = new_eval_id("labeltask")
        base = {"task_id": task_id, "answers": str(path)}
        srows = []
        for r in res.rows:
            srows.append({"run_id": run_id, "metric": "label_precision", "value": r["precision"],
                          "n": r["chosen"], "details": {**base, "cluster": r["cluster"], "label": r["label"]}})
            srows.append({"run_id": run_id, "metric": "label_recall", "value": r["recall"],
                          "n": r["items"], "details": {**base, "cluster": r["cluster"], "label": r["label"]}})
        for m in ("precision_macro", "recall_macro", "accuracy"):
            srows.append({"run_id": run_id, "metric": f"label_{m}", "value": res.summary[m],
                          "n": len(y_true), "details": {**base, **res.summary, "per_coder": per_coder}})
        store_evaluations(store, res.eval_id, "label-task", srows)
    return res
