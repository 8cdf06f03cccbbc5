"""`memeatlas curate`: hand edits of a clustering, each written as a new, derived run.

An edit never changes the run it edits. Applying a list of edits to run R writes a new run
(kind `curated`, `parent_run` = R) holding R's assignments with the edits applied, one
`curation_edits` row per edit (who, when, what, and what it did), and cluster labels in which
untouched clusters keep R's rows and touched ones get keywords recomputed (the same c-TF-IDF
recipe R was labelled with). The edits are data: an edit file (YAML or JSON) holds the base
run (id and fingerprint) and the list; `apply_file` replays it, on this or a fresh database,
and checks the result against the SHA-256 of the assignments the file recorded.

Edits (clusters by number, memes by meme_id):
- merge:   {op: merge, clusters: [a, b, ...], into: a}   (into defaults to the smallest)
- split:   {op: split, cluster: c, k: 2, seed: 0}       (k-means on the members' vectors in the
           run's space; the largest part keeps c, the others get new numbers after the highest)
- move:    {op: move, memes: [id, ...], to: c}          (c an existing cluster, or -1 for noise)
- rename:  {op: rename, cluster: c, name: "..."}
- discard: {op: discard, clusters: [c, ...]}            (members become noise, −1)
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from memeatlas import progress
from memeatlas.errors import InputError, NotFoundError
from memeatlas.provenance import new_run_id, short_hash, software, stable_json, utcnow

OPS = ("merge", "split", "move", "rename", "discard")
EDIT_FILE_VERSION = 1
_ARGS = {"merge": {"clusters", "into"}, "split": {"cluster", "k", "seed"},
         "move": {"memes", "to"}, "rename": {"cluster", "name"}, "discard": {"clusters"}}
_COMMON = {"op", "note", "editor"}  # editor: who made this edit (edit files)
_FIELD_ORDER = ("clusters", "cluster", "memes", "into", "to", "k", "seed", "name", "note")


@dataclass
class CurateSummary:
    """What one `curate` call did."""

    run_id: str
    parent_run: str
    n_edits: int
    n_changed: int                    # memes whose cluster differs from the parent's
    n_clusters: int
    touched: list[int] = field(default_factory=list)
    relabelled: bool = False
    assignments_sha256: str = ""
    reproduced: bool | None = None    # apply_file: does the result match the file's hash?
    seconds: float = 0.0
    skipped: bool = False
    completed: bool = False           # a skipped run's missing labels were written


def default_editor() -> str:
    """Who edits: $MEMEATLAS_EDITOR, else the login name."""
    return os.environ.get("MEMEATLAS_EDITOR") or os.environ.get("USER") or "unknown"


def _int(v: Any, what: str, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise InputError(f"{where}: {what} must be a cluster number, got {v!r}")
    try:
        return int(v)
    except ValueError:
        raise InputError(f"{where}: {what} must be a cluster number, got {v!r}") from None


def normalise_edit(raw: Any, n: int) -> dict[str, Any]:
    """Check one edit's shape and types; returns it in canonical form (what the log stores)."""
    where = f"edit {n}"
    if not isinstance(raw, dict) or "op" not in raw:
        raise InputError(f"{where}: each edit is a mapping with an 'op' ({', '.join(OPS)})")
    op = raw["op"]
    if op not in OPS:
        raise InputError(f"{where}: unknown op {op!r}; choose one of {', '.join(OPS)}")
    where = f"edit {n} ({op})"
    extra = set(raw) - _ARGS[op] - _COMMON
    if extra:
        raise InputError(f"{where}: unknown field(s) {', '.join(sorted(extra))}; {op} takes "
                         f"{', '.join(sorted(_ARGS[op]))}")
    e: dict[str, Any] = {"op": op}
    if op in ("merge", "discard"):
        cl = raw.get("clusters")
        if not isinstance(cl, list) or not cl:
            raise InputError(f"{where}: 'clusters' must be a list of cluster numbers")
        e["clusters"] = sorted({_int(c, "clusters", where) for c in cl})
        if op == "merge":
            if len(e["clusters"]) < 2:
                raise InputError(f"{where}: merge needs at least two different clusters")
            into = raw.get("into", e["clusters"][0])
            e["into"] = _int(into, "into", where)
            if e["into"] not in e["clusters"]:
                raise InputError(f"{where}: 'into' {e['into']} is not one of the merged "
                                 f"clusters {e['clusters']}")
    elif op == "split":
        e["cluster"] = _int(raw.get("cluster"), "cluster", where)
        k = raw.get("k", 2)
        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            raise InputError(f"{where}: 'k' must be an integer of at least 2, got {k!r}")
        e["k"] = k
        seed = raw.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise InputError(f"{where}: 'seed' must be an integer, got {seed!r}")
        e["seed"] = seed
    elif op == "move":
        memes = raw.get("memes")
        if not isinstance(memes, list) or not memes or not all(isinstance(m, str) for m in memes):
            raise InputError(f"{where}: 'memes' must be a non-empty list of meme ids")
        e["memes"] = sorted(set(memes))
        e["to"] = _int(raw.get("to"), "to", where)
    elif op == "rename":
        e["cluster"] = _int(raw.get("cluster"), "cluster", where)
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"{where}: 'name' must be a non-empty string")
        e["name"] = name.strip()[:200]
    if raw.get("note") is not None:
        e["note"] = str(raw["note"])[:500]
    # `editor` is not part of the edit (the same edit by someone else is the same run); it is
    # checked here and read by `edit_editors`.
    if raw.get("editor") is not None and (not isinstance(raw["editor"], str)
                                          or not raw["editor"].strip()):
        raise InputError(f"{where}: 'editor' must be a non-empty string")
    return e


def edit_editors(edits: list[Any]) -> list[str | None]:
    """Per-edit editors of raw edits (an exported chain of sessions names them), else None."""
    return [(e.get("editor") or "").strip()[:200] or None if isinstance(e, dict) else None
            for e in edits]


class _State:
    """A run's assignments being edited (memes sorted by meme_id)."""

    def __init__(self, ids: list[str], labels: np.ndarray) -> None:
        self.ids = ids
        self.pos = {m: i for i, m in enumerate(ids)}
        self.labels = labels.copy()
        self.names: dict[int, str] = {}
        self.name_editor: dict[int, str] = {}  # who named a cluster, when not the run's editor
        self.touched: set[int] = set()

    def clusters(self) -> set[int]:
        return set(np.unique(self.labels).tolist()) - {-1}

    def need(self, c: int, where: str, run_id: str) -> None:
        if c == -1 or c not in self.clusters():
            have = sorted(self.clusters())
            span = (f"{have[0]}..{have[-1]}" if have == list(range(have[0], have[-1] + 1))
                    else ", ".join(map(str, have[:30]))) if have else "none"
            raise InputError(f"{where}: no cluster {c} in run {run_id} (after the edits "
                             f"before it); clusters: {span}")


def _apply(state: _State, edits: list[dict[str, Any]], run_id: str, store, info: dict
           ) -> list[dict[str, Any]]:
    """Apply the edits in order; returns one result dict per edit (for the log)."""
    results = []
    for n, e in enumerate(edits, 1):
        where = f"edit {n} ({e['op']})"
        before = state.labels.copy()
        res: dict[str, Any] = {}
        op = e["op"]
        if op == "merge":
            for c in e["clusters"]:
                state.need(c, where, run_id)
            mask = np.isin(state.labels, e["clusters"])
            state.labels[mask] = e["into"]
            state.touched.add(e["into"])
            for c in e["clusters"]:
                state.names.pop(c, None)
            res = {"into": e["into"], "removed": [c for c in e["clusters"] if c != e["into"]]}
        elif op == "discard":
            for c in e["clusters"]:
                state.need(c, where, run_id)
                state.names.pop(c, None)
            state.labels[np.isin(state.labels, e["clusters"])] = -1
            res = {"discarded": e["clusters"]}
        elif op == "rename":
            state.need(e["cluster"], where, run_id)
            state.names[e["cluster"]] = e["name"]
            res = {"cluster": e["cluster"], "name": e["name"]}
        elif op == "move":
            if e["to"] != -1:
                state.need(e["to"], where, run_id)
            missing = [m for m in e["memes"] if m not in state.pos]
            if missing:
                raise InputError(f"{where}: meme {_plain(missing[0])} is not in "
                                 f"run {run_id}"
                                 + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                                 + "; name memes by their meme_id (the report's CSV has them)")
            idx = np.array([state.pos[m] for m in e["memes"]], dtype=np.int64)
            state.touched.update(int(c) for c in np.unique(state.labels[idx]) if c != -1)
            state.labels[idx] = e["to"]
            if e["to"] != -1:
                state.touched.add(e["to"])
            res = {"to": e["to"]}
        elif op == "split":
            c = e["cluster"]
            state.need(c, where, run_id)
            members = np.nonzero(state.labels == c)[0]
            if members.size < e["k"]:
                raise InputError(f"{where}: cluster {c} has {members.size} memes, fewer than "
                                 f"k={e['k']}")
            parts = _split(store, info, [state.ids[i] for i in members], e["k"], e["seed"],
                           where)
            # Largest part keeps the number; ties by the part's first meme id, so the
            # numbering does not depend on k-means' arbitrary label order.
            order = sorted(range(e["k"]), key=lambda p: (-int((parts == p).sum()),
                                                         state.ids[members[parts == p][0]]))
            top = max(state.clusters())
            new_ids = [c] + [top + j for j in range(1, e["k"])]
            for p, cid in zip(order, new_ids, strict=True):
                state.labels[members[parts == p]] = cid
            state.touched.update(new_ids)
            res = {"clusters": new_ids,
                   "sizes": [int((parts == p).sum()) for p in order]}
        res["n_changed"] = int((before != state.labels).sum())
        results.append(res)
    return results


def _split(store, info: dict, member_ids: list[str], k: int, seed: int, where: str
           ) -> np.ndarray:
    from sklearn.cluster import KMeans

    from memeatlas.study.vectors import run_vectors

    ids, x = run_vectors(store, info, meme_ids=member_ids)
    if len(ids) != len(member_ids):
        raise InputError(f"{where}: {len(member_ids) - len(ids)} member(s) have no vectors in "
                         f"the run's space {info['space']}; embed them first")
    # run_vectors returns ids sorted; member_ids are sorted too (state ids are).
    return KMeans(n_clusters=k, random_state=seed, n_init=10).fit_predict(x).astype(np.int64)


def assignments_sha256(store, run_id: str) -> str:
    """SHA-256 over the run's (meme_id, cluster) pairs in meme_id order: the replay check."""
    h = hashlib.sha256()
    for mid, c in store.fetchall("SELECT meme_id, cluster FROM cluster_assignments WHERE "
                                 "run_id = ? ORDER BY meme_id", [run_id]):
        h.update(f"{mid}\t{c}\n".encode())
    return h.hexdigest()


def curate(store, run_id: str, edits: list[Any], *, editor: str | None = None,
           note: str | None = None, relabel: bool = True, force: bool = False
           ) -> CurateSummary:
    """Apply `edits` to run `run_id`, writing a new curated run; the parent is never changed.

    Every edit is checked before anything is written: an unknown op, cluster or meme is an
    InputError naming the edit, with nothing stored. The same edits on the same parent are
    skipped (returning the stored run) unless `force`.
    """
    from memeatlas.corpus.runs import get_run_info

    t0 = time.perf_counter()
    info = get_run_info(store, run_id)
    if not isinstance(edits, list) or not edits:
        raise InputError("no edits given")
    canon = [normalise_edit(e, n) for n, e in enumerate(edits, 1)]
    per_edit = edit_editors(edits)
    fp = short_hash({"parent": run_id, "parent_fingerprint": info.get("fingerprint"),
                     "edits": canon}, 32)
    found = store.scalar("SELECT run_id FROM cluster_runs WHERE kind = 'curated' AND "
                         "parent_run = ? AND fingerprint = ? ORDER BY created_at DESC LIMIT 1",
                         [run_id, fp])
    if found and not force:
        completed = _complete(store, found, run_id, info, canon, editor or default_editor(),
                              relabel)
        progress.info(f"run {found} already holds these edits of {run_id}; "
                      + ("completed the labels an interrupted earlier run left out; "
                         if completed else "") + "skipping (--force to write it again)")
        s = _stored_summary(store, found, skipped=True, t0=t0)
        s.completed = completed
        return s
    asg = store.df("SELECT meme_id, cluster, probability, x, y, assigned_by FROM "
                   "cluster_assignments WHERE run_id = ? ORDER BY meme_id", [run_id])
    ids = asg["meme_id"].tolist()
    old = asg["cluster"].to_numpy(dtype=np.int64)
    state = _State(ids, old)
    results = _apply(state, canon, run_id, store, info)
    new = state.labels
    changed = new != old
    new_run = new_run_id("curated")
    who = editor or default_editor()
    now = utcnow()
    n_clusters = len(set(new.tolist()) - {-1})
    params = {"curated_from": run_id, "edits": canon, "parent_params": info.get("params")}
    assigned_by = np.where(changed, "curate", asg["assigned_by"].to_numpy(dtype=object))
    prob = asg["probability"].to_numpy(dtype=np.float64).copy()
    prob[changed] = np.nan  # a hand-placed meme has no model membership strength
    import pyarrow as pa

    tbl = pa.table({"meme_id": pa.array(ids, pa.string()),
                    "cluster": pa.array(new.astype(np.int32)),
                    "probability": pa.array(prob, pa.float64(), from_pandas=True),
                    "x": pa.array(asg["x"].to_numpy(dtype=np.float64), from_pandas=True),
                    "y": pa.array(asg["y"].to_numpy(dtype=np.float64), from_pandas=True),
                    "assigned_by": pa.array(assigned_by.tolist(), pa.string())})
    present = set(np.unique(new).tolist())
    touched = sorted(c for c in state.touched if c in present)
    for e, ed in zip(canon, per_edit, strict=True):
        if e["op"] == "rename" and ed:
            state.name_editor[e["cluster"]] = ed
    # One transaction for the run, its assignments, its edit log and its labels (the
    # labelling's own transaction joins this one): a kill at any point leaves all or nothing.
    with store.registered("_curate_batch", tbl), store.transaction():
        store.execute(
            "INSERT INTO cluster_runs (run_id, name, space, spaces, algorithm, params, seed, "
            "n_items, n_clusters, noise_fraction, fingerprint, parent_run, kind, software, "
            "timings, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'curated', ?, ?, ?)",
            [new_run, (f"{info['name']} (curated)" if info.get("name") else None),
             info["space"], stable_json(info.get("spaces")), info["algorithm"],
             stable_json(params), info.get("seed"), len(ids), n_clusters,
             float((new < 0).mean()) if len(ids) else 0.0, fp, run_id,
             stable_json(software("scikit-learn")), stable_json({}), now])
        # NaN probabilities become NULL (a hand-placed meme has none).
        store.execute(
            "INSERT INTO cluster_assignments (run_id, meme_id, cluster, probability, x, y, "
            "assigned_by, assigned_at) SELECT ?, meme_id, cluster, CASE WHEN isnan(probability) "
            "THEN NULL ELSE probability END, x, y, assigned_by, ? FROM _curate_batch",
            [new_run, now])
        store.insert_rows("curation_edits", (
            "run_id", "seq", "parent_run", "op", "args", "result", "n_changed", "editor",
            "note", "edited_at"),
            [(new_run, n, run_id, e["op"], stable_json(e), stable_json(r), r["n_changed"],
              ed or who, e.get("note") or note, now)
             for n, (e, r, ed) in enumerate(zip(canon, results, per_edit, strict=True), 1)])
        relabelled = _labels(store, run_id, new_run, state, touched, who, relabel)
        t = time.perf_counter() - t0
        store.execute("UPDATE cluster_runs SET timings = ? WHERE run_id = ?",
                      [stable_json({"total": round(t, 4)}), new_run])
    return CurateSummary(new_run, run_id, len(canon), int(changed.sum()), n_clusters, touched,
                         relabelled, assignments_sha256(store, new_run), None, t)


def _label_gaps(store, run_id: str, parent: str) -> bool:
    """Does curated run `run_id` lack label rows it should have? (memeatlas 0.1 wrote
    them in transactions of their own after the run, so a kill could leave none or some)."""
    have = {c for (c,) in store.fetchall("SELECT cluster FROM cluster_labels WHERE run_id = ?",
                                         [run_id])}
    present = {c for (c,) in store.fetchall("SELECT DISTINCT cluster FROM cluster_assignments "
                                            "WHERE run_id = ?", [run_id])}
    if store.scalar("SELECT count(*) FROM cluster_labels WHERE run_id = ?", [parent]):
        return bool(present - have)
    renamed = {json.loads(a).get("cluster") for (a,) in store.fetchall(
        "SELECT args FROM curation_edits WHERE run_id = ? AND op = 'rename'", [run_id])}
    return bool(((renamed & present) | ({-1} & present)) - have)


def _complete(store, run_id: str, parent: str, info: dict, canon: list[dict[str, Any]],
              editor: str, relabel: bool) -> bool:
    """Write the labels a stored curated run lacks (left by a run killed under an older
    memeatlas); True when something was written. The edits are replayed on the parent for
    the touched clusters and names; when the replay no longer gives the stored assignments
    (the space's vectors changed since), every cluster counts as touched."""
    if not _label_gaps(store, run_id, parent):
        return False
    asg = store.df("SELECT meme_id, cluster FROM cluster_assignments WHERE run_id = ? "
                   "ORDER BY meme_id", [parent])
    state = _State(asg["meme_id"].tolist(), asg["cluster"].to_numpy(dtype=np.int64))
    _apply(state, canon, parent, store, info)
    stored = store.df("SELECT meme_id, cluster FROM cluster_assignments WHERE run_id = ? "
                      "ORDER BY meme_id", [run_id])
    mine = stored["cluster"].to_numpy(dtype=np.int64)
    if stored["meme_id"].tolist() != state.ids or not np.array_equal(mine, state.labels):
        names = state.names
        state = _State(stored["meme_id"].tolist(), mine)
        state.touched, state.names = state.clusters(), names
    for args, ed in store.fetchall("SELECT args, editor FROM curation_edits WHERE run_id = ? "
                                   "AND op = 'rename' ORDER BY seq", [run_id]):
        if ed:
            state.name_editor[json.loads(args)["cluster"]] = ed
    who = store.scalar("SELECT editor FROM curation_edits WHERE run_id = ? ORDER BY seq "
                       "LIMIT 1", [run_id]) or editor
    present = state.clusters()
    with store.transaction():
        store.execute("DELETE FROM cluster_labels WHERE run_id = ?", [run_id])
        _labels(store, parent, run_id, state, sorted(state.touched & present), who, relabel)
    return True


def _labels(store, parent: str, run_id: str, state: _State, touched: list[int], editor: str,
            relabel: bool) -> bool:
    """Labels of the curated run: untouched clusters copy the parent's rows, touched ones are
    recomputed with the parent's recipe, renamed ones carry the editor's name."""
    from memeatlas.cluster import LabelConfig, label

    has_parent = bool(store.scalar("SELECT count(*) FROM cluster_labels WHERE run_id = ?",
                                   [parent]))
    relabelled = False
    if has_parent and relabel and touched:
        p = json.loads(store.scalar("SELECT params FROM latest_cluster_labels WHERE run_id = ? AND "
                                    "cluster >= 0 LIMIT 1", [parent]) or "{}")
        text = p.get("text") or {}
        cfg = LabelConfig(run_id=run_id, representation=p.get("representation", "ctfidf"),
                          n_keywords=int(p.get("n_keywords", 10)),
                          annotator=text.get("annotator"), fields=text.get("fields"),
                          force=True)
        label(store, cfg)
        relabelled = True
    keep = sorted(set(state.clusters()) - set(touched)) + [-1]
    sizes = {int(c): int(n) for c, n in zip(*np.unique(state.labels, return_counts=True),
                                            strict=True)}
    with store.transaction():
        if has_parent:
            if not relabelled:  # no recompute: every cluster of the new run copies its row
                keep = sorted(sizes)
            store.execute("DELETE FROM cluster_labels WHERE run_id = ? AND cluster IN "
                          "(SELECT unnest(?::INTEGER[]))", [run_id, keep])
            # Every column but run_id, read from the schema so later migrations' columns copy too.
            cols = ", ".join(r[0] for r in store.fetchall(
                "SELECT column_name FROM information_schema.columns WHERE table_name = "
                "'cluster_labels' AND column_name <> 'run_id' ORDER BY ordinal_position"))
            store.execute(
                f"INSERT INTO cluster_labels (run_id, {cols}) SELECT ?, {cols} FROM "
                f"latest_cluster_labels WHERE run_id = ? AND cluster IN (SELECT unnest(?::INTEGER[]))",
                [run_id, parent, keep])
            for c, n in sizes.items():  # sizes of copied rows follow the edits
                store.execute("UPDATE cluster_labels SET size = ? WHERE run_id = ? AND "
                              "cluster = ?", [n, run_id, c])
        if -1 in sizes and not store.scalar("SELECT count(*) FROM cluster_labels WHERE "
                                            "run_id = ? AND cluster = -1", [run_id]):
            store.execute("INSERT INTO cluster_labels (run_id, cluster, size, keywords, "
                          "keyword_scores, label, representatives, labeler) VALUES "
                          "(?, -1, ?, [], [], 'noise', [], 'curate')", [run_id, sizes[-1]])
        for c, name in state.names.items():
            if c not in sizes:
                continue
            if store.scalar("SELECT count(*) FROM cluster_labels WHERE run_id = ? AND "
                            "cluster = ?", [run_id, c]):
                store.execute("UPDATE cluster_labels SET label = ?, labeler = ? WHERE "
                              "run_id = ? AND cluster = ?", [name, f"human:{state.name_editor.get(c, editor)}", run_id, c])
            else:
                store.execute("INSERT INTO cluster_labels (run_id, cluster, size, keywords, "
                              "keyword_scores, label, representatives, labeler) VALUES "
                              "(?, ?, ?, [], [], ?, [], ?)",
                              [run_id, c, sizes[c], name,
                               f"human:{state.name_editor.get(c, editor)}"])
    return relabelled


def _stored_summary(store, run_id: str, *, skipped: bool, t0: float) -> CurateSummary:
    row = store.fetch_dict("SELECT parent_run, n_clusters FROM cluster_runs WHERE run_id = ?",
                           [run_id])
    n_edits, n_changed = store.fetchone(
        "SELECT count(*), coalesce(sum(n_changed), 0) FROM curation_edits WHERE run_id = ?",
        [run_id])
    return CurateSummary(run_id, row["parent_run"], int(n_edits), int(n_changed),
                         int(row["n_clusters"]), [], False, assignments_sha256(store, run_id),
                         None, time.perf_counter() - t0, skipped)


# ---- edit files -------------------------------------------------------------------------


def read_edit_file(path: str | Path) -> dict[str, Any]:
    """An edit file (YAML or JSON by suffix; JSON is valid YAML, so others parse as YAML)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: edit file not found")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            doc = json.loads(text)
        else:
            import yaml

            doc = yaml.safe_load(text)
    except Exception as exc:  # noqa: BLE001 - yaml/json parse errors → one line
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: "
                         f"{first}") from None
    if isinstance(doc, list):
        doc = {"edits": doc}
    if not isinstance(doc, dict) or not isinstance(doc.get("edits"), list):
        raise InputError(f"{path}: an edit file holds a mapping with an 'edits' list (or is "
                         f"the list itself)")
    return doc


def _base_run(store, doc: dict[str, Any], run_id: str | None, path: Path) -> str:
    from memeatlas.corpus.runs import get_run_info

    if run_id:
        get_run_info(store, run_id)
        return run_id
    base = doc.get("base") or {}
    rid, fp = base.get("run_id"), base.get("fingerprint")
    if rid and store.scalar("SELECT count(*) FROM cluster_runs WHERE run_id = ?", [rid]):
        return rid
    if fp:
        # A fresh database clustered with the same inputs and parameters has a run with the
        # same fingerprint under another id.
        found = store.scalar("SELECT run_id FROM cluster_runs WHERE fingerprint = ? AND "
                             "kind <> 'curated' ORDER BY created_at DESC LIMIT 1", [fp])
        if found:
            return found
    raise NotFoundError(f"{path}: its base run {rid or '?'} (fingerprint {fp or '?'}) is not "
                        f"in {store.path}; cluster the same memes with the same parameters "
                        f"first, or pass --run")


def apply_file(store, path: str | Path, *, run_id: str | None = None,
               editor: str | None = None, relabel: bool = True, force: bool = False,
               keep_mismatch: bool = False, unchecked: bool = False) -> CurateSummary:
    """Replay an edit file onto its base run (or `run_id`) and check the result.

    The file's `result.assignments_sha256` is compared with the new run's before anything
    commits: a mismatch (a tampered file, another base run) raises MismatchError with nothing
    stored, unless `keep_mismatch`, which keeps the run with its name and params saying it does
    not reproduce the file. A file that records no result (hand-written, or cut short: its
    last lines are lost first) is refused unless `unchecked`; `reproduced` is then None.
    """
    from memeatlas.errors import MismatchError

    path = Path(path)
    doc = read_edit_file(path)
    version = doc.get("memeatlas_edits", EDIT_FILE_VERSION)
    if version != EDIT_FILE_VERSION:
        raise InputError(f"{path}: edit file version {version!r}; this memeatlas reads "
                         f"version {EDIT_FILE_VERSION}")
    result = doc.get("result")
    if result is not None and not isinstance(result, dict):
        raise InputError(f"{path}: 'result' must be a mapping with assignments_sha256")
    want = (result or {}).get("assignments_sha256")
    if want is not None and not isinstance(want, str):
        raise InputError(f"{path}: result.assignments_sha256 must be a string")
    if not want and not unchecked:
        raise InputError(f"{path}: records no result.assignments_sha256, so the replay could "
                         f"not be checked (a file cut short loses its last lines, the result "
                         f"first); nothing stored. Pass --unchecked to apply a hand-written "
                         f"file without one")
    n_want = (result or {}).get("n_edits")
    if n_want is not None and n_want != len(doc["edits"]):
        raise InputError(f"{path}: holds {len(doc['edits'])} edit(s) but its result was "
                         f"recorded after {n_want}; the file was cut or edited; nothing stored")
    for key in ("editor", "note"):
        if doc.get(key) is not None and not isinstance(doc[key], str):
            raise InputError(f"{path}: '{key}' must be a string")
    if doc.get("base") is not None and not isinstance(doc["base"], dict):
        raise InputError(f"{path}: 'base' must be a mapping with run_id and fingerprint")
    base = _base_run(store, doc, run_id, path)
    with store.transaction():  # curate's transaction joins this one: a mismatch rolls it back
        s = curate(store, base, doc["edits"], editor=editor or doc.get("editor"),
                   note=doc.get("note"), relabel=relabel, force=force)
        s.reproduced = None if not want else (want == s.assignments_sha256)
        if s.reproduced is False and not keep_mismatch:
            raise MismatchError(
                f"{path}: replaying its {s.n_edits} edit(s) on run {base} gives assignments "
                f"{s.assignments_sha256[:12]}…, not the file's {want[:12]}… (a changed file, "
                f"other vectors or another base run?); nothing stored"
                + ("" if s.skipped else "; --keep-mismatch keeps the run, named as not "
                   "reproducing the file"))
        if s.reproduced is False and not s.skipped:
            params = json.loads(store.scalar("SELECT params FROM cluster_runs WHERE run_id = ?",
                                             [s.run_id]) or "{}")
            params["replay"] = {"file": path.name, "assignments_sha256": want,
                                "reproduces": False}
            store.execute("UPDATE cluster_runs SET params = ?, name = concat(coalesce(name, "
                          "run_id), ?) WHERE run_id = ?",
                          [stable_json(params), f" (does not reproduce {path.name})", s.run_id])
    return s


def edit_chain(store, run_id: str) -> tuple[str, list[dict[str, Any]]]:
    """(base run, edits in order) of a curated run, following parent runs back to the first
    run that is not curated. Each edit carries its `editor` from the edit log."""
    from memeatlas.corpus.runs import get_run_info

    chain = []
    rid = run_id
    info = get_run_info(store, rid)
    while info["kind"] == "curated":
        chain.append(rid)
        rid = info["parent_run"]
        info = get_run_info(store, rid)
    if not chain:
        raise InputError(f"run {run_id} is not a curated run (kind {info['kind']}); export the "
                         f"edits of a run written by `memeatlas curate`")
    edits: list[dict[str, Any]] = []
    for r in reversed(chain):
        for args, who in store.fetchall("SELECT args, editor FROM curation_edits WHERE "
                                        "run_id = ? ORDER BY seq", [r]):
            e = json.loads(args)
            # op first, then the fields in the order the docs write them (YAML keeps order)
            edits.append({"op": e.pop("op"), **{k: e[k] for k in _FIELD_ORDER if k in e},
                          **{k: v for k, v in e.items() if k not in _FIELD_ORDER},
                          **({"editor": who} if who else {})})
    return rid, edits


def export_edits(store, run_id: str) -> dict[str, Any]:
    """The edit file (as a dict) that reproduces curated run `run_id` from its base run.

    One editor over the whole chain is written once at the top; several are kept per edit."""
    base, edits = edit_chain(store, run_id)
    info = store.fetch_dict("SELECT fingerprint, space, algorithm FROM cluster_runs "
                            "WHERE run_id = ?", [base])
    editors = {e.get("editor") for e in edits}
    if len(editors) == 1:
        for e in edits:
            e.pop("editor", None)
    one = next(iter(editors)) if len(editors) == 1 else None
    return {"memeatlas_edits": EDIT_FILE_VERSION,
            "base": {"run_id": base, "fingerprint": info["fingerprint"], "space": info["space"],
                     "algorithm": info["algorithm"]},
            **({"editor": one} if one else {}),
            "edits": edits,
            "result": {"run_id": run_id, "n_edits": len(edits),
                       "assignments_sha256": assignments_sha256(store, run_id)}}


def write_edit_file(doc: dict[str, Any], path: str | Path) -> None:
    """Write an edit file: JSON for a .json suffix, else YAML."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    else:
        import yaml

        text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100,
                              default_flow_style=None)
    path.write_text(text, encoding="utf-8")


def memes_from_csv(path: str | Path) -> list[str]:
    """meme_ids from a CSV with a `meme_id` column (the report's selection download)."""
    from memeatlas.userfiles import csv_rows, read_text

    what = "memes file"
    rows = csv_rows(read_text(path, what), path, what, strict=True)
    header = next(rows, None)
    cols = [c.strip() for c in header[1]] if header else []
    if "meme_id" not in cols:
        raise InputError(f"{what} {path}: needs a meme_id column (found "
                         f"{_shown(', '.join(cols)) if cols else 'no header'})")
    at = cols.index("meme_id")
    ids = []
    for line, row in rows:
        m = row[at].strip() if at < len(row) else ""
        if len(m) > 256 or not m.isprintable():
            raise InputError(f"{what} {path}: line {line}: {_shown(m)} is not a meme id "
                             f"({len(m):,} characters{', control characters' if not m.isprintable() else ''})")
        if m:
            ids.append(m)
    if not ids:
        raise InputError(f"{what} {path}: no meme ids in the meme_id column")
    return ids


def _plain(text: str) -> str:
    """Printable text of at most 80 characters as is, anything else as `_shown`."""
    return text if len(text) <= 80 and text.isprintable() else _shown(text)


def _shown(text: str, n: int = 60) -> str:
    """User text for a message: repr (control characters escaped), at most `n` characters."""
    r = repr(text)
    return r if len(r) <= n else r[:n - 3] + "..."
