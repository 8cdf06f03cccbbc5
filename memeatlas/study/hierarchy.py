"""`memeatlas hierarchy`: a cluster tree per run, stored as parent/child/level rows.

Two ways to build it:
- `condensed_tree` (HDBSCAN runs with a stored model): HDBSCAN's condensed tree, cut down to the
  selected clusters and their ancestors; inner nodes with a single kept child are folded away, so
  every inner node is a real split of the density hierarchy. A node's height is 1/λ at its birth
  (the distance scale at which it split off).
- `centroid_ward` (every other run, curated ones included): Ward linkage of the clusters'
  centroids in the run's space (unit-normalised means), a binary tree; height is the merge
  distance.

Leaves are the run's clusters (node = cluster number); inner nodes are numbered
INNER_BASE + k from the root down. `level` is the depth from the root (0). Noise is not in the
tree. Keywords per node: c-TF-IDF (Grootendorst 2022: term frequency in the class, normalised by
the class's length, times log(1 + mean class length / the term's frequency over all classes))
computed over the partition at the node's own level, so a coarse node is described against its
siblings at that level; a leaf keeps its cluster's label keywords when the run is labelled.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from memeatlas.errors import InputError
from memeatlas.provenance import new_run_id, software, stable_json, utcnow

METHODS = ("auto", "condensed_tree", "centroid_ward")
INNER_BASE = 100_000
N_KEYWORDS = 8


@dataclass
class HierarchySummary:
    """What `hierarchy` did."""

    run_id: str
    method: str
    n_leaves: int
    n_inner: int
    depth: int
    top_split: list[list[int]]      # the clusters under each child of the root
    seconds: float
    skipped: bool = False


@dataclass
class _Tree:
    parent: dict[int, int | None]   # node -> parent
    height: dict[int, float]


def _condensed(store, run_id: str, info: dict) -> _Tree | None:
    """The tree from the run's HDBSCAN condensed tree, or None when there is none."""
    from memeatlas.corpus.runs import load_model
    from memeatlas.errors import NotFoundError

    if info.get("algorithm") != "hdbscan" or info.get("kind") not in ("cluster", None):
        return None
    try:
        state = load_model(store, run_id)
    except NotFoundError:
        return None
    model = state.get("clusterer")
    if model is None or not hasattr(model, "condensed_tree_"):
        return None
    raw = model.condensed_tree_.to_numpy()
    labels = np.asarray(model.labels_)
    n = labels.size
    par = raw["parent"].astype(np.int64)
    child = raw["child"].astype(np.int64)
    lam = raw["lambda_val"].astype(np.float64)
    is_cl = child >= n
    cl_parent = dict(zip(child[is_cl].tolist(), par[is_cl].tolist(), strict=True))
    birth = dict(zip(child[is_cl].tolist(), lam[is_cl].tolist(), strict=True))
    root = n
    pt_parent = np.full(n, root, dtype=np.int64)
    pt_parent[child[~is_cl]] = par[~is_cl]

    def path(node: int) -> list[int]:
        out = [node]
        while node in cl_parent:
            node = cl_parent[node]
            out.append(node)
        return out[::-1]  # root first

    # Each label's node: the lowest common ancestor of where its points fell out.
    selected: dict[int, int] = {}
    for c in sorted(set(labels.tolist()) - {-1}):
        paths = [path(int(p)) for p in np.unique(pt_parent[labels == c])]
        lca = root
        for nodes in zip(*paths, strict=False):
            if all(x == nodes[0] for x in nodes):
                lca = nodes[0]
            else:
                break
        selected[int(c)] = lca
    if len(set(selected.values())) != len(selected):
        return None  # labels not separable in the tree (should not happen): fall back
    kept_children: dict[int, list[int]] = {}
    parent: dict[int, int | None] = {}
    node_of = {v: k for k, v in selected.items()}
    for node in selected.values():
        p = path(node)
        for a, b in zip(p[:-1], p[1:], strict=True):
            kept_children.setdefault(a, [])
            if b not in kept_children[a]:
                kept_children[a].append(b)

    height: dict[int, float] = {}

    def lam_h(node: int) -> float:
        v = birth.get(node, 0.0)
        return float(1.0 / v) if v > 0 else float("inf")

    # Fold chains: an unselected node with one kept child is replaced by that child.
    def fold(node: int) -> int:
        while node not in node_of and len(kept_children.get(node, [])) == 1:
            node = kept_children[node][0]
        return node

    def build(node: int, up: int | None) -> None:
        node = fold(node)
        if node in node_of:
            leaf = node_of[node]
            parent[leaf] = up
            height[leaf] = 0.0
            return
        key = ("inner", node)
        parent[key] = up  # type: ignore[index]
        height[key] = lam_h(node)  # type: ignore[index]
        for ch in kept_children.get(node, []):
            build(ch, key)  # type: ignore[arg-type]

    build(root, None)
    finite = [h for h in height.values() if np.isfinite(h)]
    top = max(finite) * 1.05 if finite else 1.0
    height = {k: (top if not np.isfinite(h) else h) for k, h in height.items()}
    return _Tree(parent, height)  # type: ignore[arg-type]


def _centroid(store, run_id: str, info: dict, assignment: dict[str, int]) -> _Tree:
    from scipy.cluster.hierarchy import linkage

    from memeatlas.study.vectors import run_vectors

    ids, x = run_vectors(store, info, meme_ids=sorted(assignment))
    lab = np.array([assignment[m] for m in ids])
    clusters = sorted(set(lab.tolist()) - {-1})
    keep = lab >= 0
    pos = np.searchsorted(np.asarray(clusters), lab[keep])
    import scipy.sparse as sp

    # Sums per cluster as one sparse product (no boolean mask per cluster).
    onehot = sp.csr_matrix((np.ones(pos.size), (pos, np.arange(pos.size))),
                           shape=(len(clusters), pos.size))
    cent = np.asarray(onehot @ x[keep].astype(np.float64))
    cent /= np.maximum(np.linalg.norm(cent, axis=1, keepdims=True), 1e-12)
    z = linkage(cent.astype(np.float64), method="ward")
    k = len(clusters)
    parent: dict[Any, Any] = {}
    height: dict[Any, float] = {c: 0.0 for c in clusters}
    node = {i: clusters[i] for i in range(k)}
    for i, (a, b, d, _n) in enumerate(z):
        key = ("inner", i)
        parent[node[int(a)]] = key
        parent[node[int(b)]] = key
        height[key] = float(d)
        node[k + i] = key
    parent[node[2 * k - 2]] = None
    return _Tree(parent, height)


def _number(tree: _Tree) -> tuple[dict[int, int | None], dict[int, float], dict[int, int]]:
    """Inner nodes → INNER_BASE + k in breadth-first order from the root; depths."""
    children: dict[Any, list[Any]] = {}
    root = None
    for n, p in tree.parent.items():
        if p is None:
            root = n
        else:
            children.setdefault(p, []).append(n)
    ids: dict[Any, int] = {}
    depth: dict[int, int] = {}
    queue = [(root, 0)]
    k = 0
    order = []
    while queue:
        n, d = queue.pop(0)
        if isinstance(n, tuple):
            ids[n] = INNER_BASE + k
            k += 1
        else:
            ids[n] = int(n)
        depth[ids[n]] = d
        order.append(n)
        # children in a stable order: leaves by number, inner nodes by their smallest leaf
        kids = children.get(n, [])
        kids.sort(key=lambda c: _min_leaf(c, children))
        queue.extend((c, d + 1) for c in kids)
    parent = {ids[n]: (ids[p] if p is not None else None) for n, p in tree.parent.items()}
    height = {ids[n]: h for n, h in tree.height.items()}
    return parent, height, depth


def _min_leaf(n: Any, children: dict[Any, list[Any]]) -> int:
    if not isinstance(n, tuple):
        return int(n)
    return min(_min_leaf(c, children) for c in children.get(n, []))


def term_counts(class_docs: list[str]):
    """(sparse class × term counts, vocabulary) of the class documents (None when no words)."""
    from sklearn.feature_extraction.text import CountVectorizer

    if not any(d.strip() for d in class_docs):
        return None, None
    vec = CountVectorizer(stop_words="english",
                          token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z0-9'-]+\b")
    try:
        tf = vec.fit_transform(class_docs).astype(np.float64)
    except ValueError:  # only stop words
        return None, None
    return tf, np.asarray(vec.get_feature_names_out())


def top_words(tf, words, n_words: int = N_KEYWORDS) -> list[list[str]]:
    """Top c-TF-IDF words per row of a class × term count matrix (formula: module docstring).

    Sparse throughout, so a thousand classes over a large vocabulary stay small.
    """
    import scipy.sparse as sp

    tf = sp.csr_matrix(tf, dtype=np.float64)
    lengths = np.asarray(tf.sum(axis=1)).ravel()
    avg = float(lengths.mean()) if lengths.size else 0.0
    idf = np.log1p(avg / np.maximum(np.asarray(tf.sum(axis=0)).ravel(), 1))
    w = sp.diags(1.0 / np.maximum(lengths, 1)) @ tf @ sp.diags(idf)
    w = sp.csr_matrix(w)
    out = []
    for r in range(w.shape[0]):
        lo, hi = w.indptr[r], w.indptr[r + 1]
        vals, idx = w.data[lo:hi], w.indices[lo:hi]
        order = np.lexsort((idx, -vals))[:n_words]  # score, then vocabulary order for ties
        out.append([str(words[idx[i]]) for i in order if vals[i] > 0])
    return out


def ctfidf(class_docs: list[str], n_words: int = N_KEYWORDS) -> list[list[str]]:
    """Top c-TF-IDF words per class document."""
    tf, words = term_counts(class_docs)
    if tf is None:
        return [[] for _ in class_docs]
    return top_words(tf, words, n_words)


def _docs(store, run_id: str, info: dict, ids: list[str]) -> dict[str, str]:
    """meme_id → annotation text, chosen the way the run's labels were (empty without text)."""
    from memeatlas.cluster.config import LabelConfig
    from memeatlas.cluster.labeling import label_texts
    from memeatlas.errors import NotFoundError

    p = json.loads(store.scalar("SELECT params FROM latest_cluster_labels WHERE run_id = ? AND "
                                "cluster >= 0 LIMIT 1", [run_id]) or "{}")
    text = p.get("text") or {}
    cfg = LabelConfig(run_id=run_id, annotator=text.get("annotator"), fields=text.get("fields"))
    spaces = [s["space"] for s in info.get("spaces") or [{"space": info["space"]}]]
    try:
        return label_texts(store, cfg, spaces, ids)[0]
    except (NotFoundError, InputError):
        return {}


def hierarchy(store, run_id: str, *, method: str = "auto", force: bool = False
              ) -> HierarchySummary:
    """Build and store run `run_id`'s cluster tree (see the module docstring).

    A stored tree is kept (skipped) unless `force`, which derives a new tree beside it (older
    trees stay in `cluster_tree`; `latest_cluster_tree` holds the newest).
    """
    from memeatlas.corpus.runs import get_run_info

    t0 = time.perf_counter()
    if method not in METHODS:
        raise InputError(f"unknown --method {method!r}; choose one of {', '.join(METHODS)}")
    info = get_run_info(store, run_id)
    if store.scalar("SELECT count(*) FROM latest_cluster_tree WHERE run_id = ?", [run_id]) \
            and not force:
        return _stored(store, run_id, t0, skipped=True)
    # Sizes under the run's one membership (core + assigned), as the report counts them.
    assignment = dict(store.fetchall("SELECT meme_id, cluster FROM cluster_membership WHERE "
                                     "run_id = ?", [run_id]))
    sizes: dict[int, int] = {}
    for c in assignment.values():
        if c >= 0:
            sizes[c] = sizes.get(c, 0) + 1
    if len(sizes) < 2:
        raise InputError(f"run {run_id} has {len(sizes)} cluster(s); a hierarchy needs at "
                         f"least 2")
    tree = None
    if method in ("auto", "condensed_tree"):
        tree = _condensed(store, run_id, info)
        if tree is not None and set(k for k in tree.parent if not isinstance(k, tuple)) \
                != set(sizes):
            tree = None  # the run's clusters are not the model's (e.g. reassigned): rebuild
        if tree is None and method == "condensed_tree":
            raise InputError(f"run {run_id} has no HDBSCAN condensed tree (algorithm "
                             f"{info['algorithm']}, kind {info['kind']}); use --method "
                             f"centroid_ward or auto")
    used = "condensed_tree" if tree is not None else "centroid_ward"
    if tree is None:
        tree = _centroid(store, run_id, info, assignment)
    parent, height, depth = _number(tree)
    children: dict[int, list[int]] = {}
    for n, p in parent.items():
        if p is not None:
            children.setdefault(p, []).append(n)

    def leaves(n: int) -> list[int]:
        return [n] if n < INNER_BASE else [x for c in children[n] for x in leaves(c)]

    under = {n: leaves(n) for n in parent}
    size = {n: sum(sizes[c] for c in under[n]) for n in parent}
    # Keywords per level: the partition at depth d (a leaf above d stands for itself).
    docs = _docs(store, run_id, info, sorted(assignment))
    by_cluster: dict[int, list[str]] = {}
    for m, c in assignment.items():
        if c >= 0 and docs.get(m):
            by_cluster.setdefault(c, []).append(docs[m])
    keywords: dict[int, list[str]] = {}
    # Count terms once per cluster; a level's class counts are sums of its leaves' rows.
    leaf_order = sorted(sizes)
    tf, words = term_counts([" ".join(by_cluster.get(c, [])) for c in leaf_order])
    if tf is not None:
        import scipy.sparse as sp

        col = {c: j for j, c in enumerate(leaf_order)}
        for d in range(max(depth.values()) + 1):
            part = [n for n in parent if depth[n] == d or (n < INNER_BASE and depth[n] < d)]
            rows = [k for k, n in enumerate(part) for _ in under[n]]
            cols = [col[c] for n in part for c in under[n]]
            member = sp.csr_matrix((np.ones(len(rows)), (rows, cols)),
                                   shape=(len(part), len(leaf_order)))
            for n, kw in zip(part, top_words(member @ tf, words), strict=True):
                if depth[n] == d:
                    keywords[n] = kw
    leaf_labels = {int(c): (lab, list(kw or [])) for c, lab, kw in store.fetchall(
        "SELECT cluster, label, keywords FROM latest_cluster_labels WHERE run_id = ?", [run_id])}
    params = {"method": used, "requested": method, "keywords": "ctfidf-per-level",
              "n_keywords": N_KEYWORDS, "software": software("hdbscan", "scipy", "scikit-learn")}
    rows = []
    now = utcnow()
    tree_id = new_run_id("tree")
    for n in sorted(parent, key=lambda n: (depth[n], n)):
        leaf = n < INNER_BASE
        kw = keywords.get(n, [])
        label = None
        if leaf and n in leaf_labels:
            label, lkw = leaf_labels[n]
            kw = lkw[:N_KEYWORDS] or kw
        if label is None:
            label = ", ".join(kw[:3]) or (f"cluster {n}" if leaf else f"group {n - INNER_BASE}")
        rows.append((run_id, n, parent[n], depth[n], leaf, n if leaf else None, size[n],
                     float(height.get(n, 0.0)), kw, label, used, stable_json(params), now,
                     tree_id))
    with store.transaction():  # a new tree beside the older ones, never a DELETE
        store.insert_rows("cluster_tree", ("run_id", "node", "parent", "level", "is_leaf",
                                           "cluster", "size", "height", "keywords", "label",
                                           "method", "params", "created_at", "tree_id"), rows)
    return _stored(store, run_id, t0)


def _stored(store, run_id: str, t0: float, skipped: bool | None = None) -> HierarchySummary:
    rows = store.fetchall("SELECT node, parent, level, is_leaf, method FROM latest_cluster_tree WHERE "
                          "run_id = ?", [run_id])
    children: dict[int | None, list[int]] = {}
    for node, par, _lvl, _leaf, _m in rows:
        children.setdefault(par, []).append(node)

    def leaves(n: int) -> list[int]:
        return [n] if n not in children else sorted(x for c in children[n] for x in leaves(c))

    root = children[None][0]
    top = sorted((leaves(c) for c in children.get(root, [])), key=lambda v: v[0])
    n_leaves = sum(1 for r in rows if r[3])
    return HierarchySummary(run_id, rows[0][4], n_leaves, len(rows) - n_leaves,
                            max(r[2] for r in rows), top, time.perf_counter() - t0,
                            skipped=bool(skipped) if skipped is not None else False)


def load_tree(store, run_id: str) -> list[dict[str, Any]]:
    """The stored tree of a run as dicts (empty when `hierarchy` has not run)."""
    if not store.table_exists("cluster_tree"):
        return []
    cur = store.execute("SELECT node, parent, level, is_leaf, cluster, size, height, keywords, "
                        "label, method FROM latest_cluster_tree WHERE run_id = ? ORDER BY level, node",
                        [run_id])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
