"""Class labels in the store: import from CSV/JSONL (all or nothing), take from memes.meta, read back.

A labelled set is one *task* (a codebook: 'template', 'stance', ...). Each row says which class one
coder gave one meme. Memes are named by meme id or by the corpus id stored in ``memes.source_id``
(e.g. a MemeCap post_id), as in `evaluate import-ratings`. Several coders may label the same meme;
training uses the majority label per meme (ties are left out and counted).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from memeatlas.corpus.memes import RowErrors as _RowErrors
from memeatlas.corpus.memes import meme_resolver
from memeatlas.errors import InputError, NotFoundError
from memeatlas.provenance import new_run_id, utcnow
from memeatlas.userfiles import csv_rows, read_text

ID_COLUMNS = ("meme_id", "source_id", "id")
LABEL_COLUMNS = ("label", "class", "category")


class _Errors(_RowErrors):
    """Row problems; a single one is reported on one line, several as a list (like import-ratings)."""

    def raise_if_any(self, path: Path) -> None:
        if len(self.items) == 1:
            line, msg = self.items[0]
            raise InputError(f"{path}: line {line}: {msg}; nothing was imported. Fix the row and import "
                             f"the file again")
        super().raise_if_any(path)


@dataclass
class LabelImport:
    """What `import_labels` / `labels_from_meta` stored."""

    task: str
    source: str
    import_id: str
    n_labels: int
    n_memes: int
    coders: list[str]
    classes: dict[str, int]
    n_replaced: int = 0
    n_blank: int = 0


@dataclass
class LabelSet:
    """One task's labels, one per meme (the coders' majority)."""

    task: str
    labels: dict[str, str]                  # meme_id -> label
    coders: list[str]
    n_ties: int = 0                         # memes whose coders tie: left out
    n_rows: int = 0
    per_class: dict[str, int] = field(default_factory=dict)


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """(columns, [(line, row)]) of a CSV (header row) or JSONL file; lines count from 1."""
    text = read_text(path, "labels file")
    if not text.strip():
        raise InputError(f"{path} is empty; expected a header row (CSV) or JSON objects (JSONL)")
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json") or text.lstrip().startswith("{"):
        rows: list[tuple[int, dict[str, str]]] = []
        cols: list[str] = []
        for ln, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{ln}: not a JSON object ({exc.msg}); one object per line") from None
            if not isinstance(obj, dict):
                raise InputError(f"{path}:{ln}: expected a JSON object, got {type(obj).__name__}")
            row = {str(k).strip().lower(): "" if v is None else str(v) for k, v in obj.items()}
            cols += [k for k in row if k not in cols]
            rows.append((ln, row))
        return cols, rows
    first = text.splitlines()[0]
    delim = "," if "," in first else "\t" if "\t" in first else ";" if ";" in first else ","
    reader = csv_rows(text, path, "labels file", delimiter=delim)
    header = [h.strip().lower() for h in next(reader)[1]]
    rows = []
    for line, r in reader:
        if not any(c.strip() for c in r):
            continue
        r = r + [""] * (len(header) - len(r))
        rows.append((line, dict(zip(header, r, strict=False))))
    return header, rows


MAX_NAME = 200  # characters of a class label, task or coder name


def name_problem(value: str, what: str) -> str | None:
    """Why `value` cannot be a class label / task / coder name (None when it can): control
    characters (NUL, ESC, BEL, tabs, newlines…) would reach terminals and files raw."""
    if not value.isprintable():
        bad = next(ch for ch in value if not ch.isprintable())
        return f"{what} {_shown(value)} holds a control character ({bad!r})"
    if len(value) > MAX_NAME:
        return f"{what} of {len(value):,} characters (at most {MAX_NAME})"
    return None


def check_name(value: str, what: str) -> str:
    """`value` when `name_problem` finds nothing, else a one-line InputError."""
    why = name_problem(value, what)
    if why:
        raise InputError(why)
    return value


def _shown(text: str, n: int = 60) -> str:
    r = repr(text)
    return r if len(r) <= n else r[:n - 3] + "..."


def _pick(cols: list[str], wanted: str | None, candidates: tuple[str, ...], what: str, path: Path) -> str:
    if wanted:
        w = wanted.strip().lower()
        if w not in cols:
            raise InputError(f"{path}: no column {wanted!r} for the {what}; columns: {', '.join(cols)}")
        return w
    for c in candidates:
        if c in cols:
            return c
    raise InputError(f"{path}: no {what} column (looked for {', '.join(candidates)}); columns: "
                     f"{', '.join(cols)}. Name it with --{'id' if what == 'meme id' else 'label'}-column")


def import_labels(store, path: str | Path, *, task: str, coder: str | None = None,
                  id_column: str | None = None, label_column: str | None = None,
                  force: bool = False) -> LabelImport:
    """Import class labels for `task`; any bad row raises InputError and nothing is stored.

    Each row names a meme (meme id or corpus source id) and its label; a `coder` column names
    the coder (else `coder`). Labels already stored for the same (task, meme, coder) are an error
    unless `force` replaces them.
    """
    path = Path(path)
    if not task or not task.strip():
        raise InputError("--task must name the labelling task, e.g. --task template")
    check_name(task, "--task")
    if coder:
        check_name(coder, "--coder")
    cols, rows = _read_rows(path)
    idc = _pick(cols, id_column, ID_COLUMNS, "meme id", path)
    lc = _pick(cols, label_column, LABEL_COLUMNS, "label", path)
    if "coder" not in cols and not coder:
        raise InputError(f"{path}: no coder column; pass --coder NAME (who assigned these labels)")
    resolve = meme_resolver(store)
    errors = _Errors()
    records: dict[tuple[str, str], tuple[int, str]] = {}
    n_blank = 0
    for line, row in rows:
        ref = (row.get(idc) or "").strip()
        lab = (row.get(lc) or "").strip()
        who = (row.get("coder") or "").strip() or (coder or "")
        if not ref:
            errors.add(line, f"empty {idc}")
            continue
        if not lab:
            n_blank += 1  # a meme the coder left uncoded
            continue
        if not who:
            errors.add(line, "empty coder (fill the coder column or pass --coder)")
            continue
        why = name_problem(lab, "label") or name_problem(who, "coder")
        if why:
            errors.add(line, why)
            continue
        mid = resolve(ref)
        if mid is None:
            errors.add(line, f"unknown meme {_shown(ref)} (neither a meme_id nor a source_id in this database)")
            continue
        if mid == "AMBIGUOUS":
            errors.add(line, f"source id {ref!r} names several memes; use the meme_id")
            continue
        key = (mid, who)
        if key in records:
            errors.add(line, f"second label for meme {ref!r} by coder {who!r} (first on line {records[key][0]})")
            continue
        records[key] = (line, lab)
    errors.raise_if_any(path)
    if not records:
        raise InputError(f"{path}: no labels found (every label cell is blank)")
    stored = {(m, c) for m, c in store.fetchall(
        "SELECT meme_id, coder FROM class_labels WHERE task = ?", [task])}
    clash = [k for k in records if k in stored]
    if clash and not force:
        first = min(records[k][0] for k in clash)
        raise InputError(f"{path}: {len(clash)} of its {len(records)} labels are already stored for task "
                         f"{task!r} by the same coder (first on line {first}); nothing was imported. "
                         f"Pass --force to replace them")
    return _write(store, task, str(path), {k: v for k, (_, v) in records.items()}, clash, n_blank)


def _write(store, task: str, source: str, records: dict[tuple[str, str], str],
           clash: list[tuple[str, str]], n_blank: int) -> LabelImport:
    import_id = new_run_id("labels")
    now = utcnow()
    with store.transaction():
        for m, c in clash:
            store.execute("DELETE FROM class_labels WHERE task = ? AND meme_id = ? AND coder = ?",
                          [task, m, c])
        store.insert_rows("class_labels", ("task", "meme_id", "coder", "label", "source", "import_id",
                                           "imported_at"),
                          [(task, m, c, lab, source, import_id, now) for (m, c), lab in records.items()])
    return LabelImport(task=task, source=source, import_id=import_id, n_labels=len(records),
                       n_memes=len({m for m, _ in records}), coders=sorted({c for _, c in records}),
                       classes=dict(Counter(records.values()).most_common()), n_replaced=len(clash),
                       n_blank=n_blank)


def labels_from_meta(store, *, task: str, field: str, force: bool = False) -> LabelImport:
    """Labels from a manifest column / metadata key (`memes.meta->>field`), coder `meta:<field>`."""
    check_name(task, "--task")
    check_name(field, "--from-meta")
    coder = f"meta:{field}"
    rows = store.fetchall("SELECT meme_id, meta->>? FROM memes WHERE meta IS NOT NULL "
                          "AND coalesce(meta->>?, '') <> ''", [field, field])
    if not rows:
        keys = sorted({k for (k,) in store.fetchall(
            "SELECT DISTINCT unnest(json_keys(meta)) FROM memes WHERE meta IS NOT NULL")})
        raise InputError(f"no meme has a value for meta field {field!r}; fields in memes.meta: "
                         f"{', '.join(keys) or '(none)'}")
    records = {(m, coder): str(v).strip() for m, v in rows}
    bad = sorted((m, why) for (m, _), v in records.items()
                 if (why := name_problem(v, f"meta field {field!r}: label")))
    if bad:
        raise InputError(f"meme {bad[0][0]}: {bad[0][1]}"
                         + (f" (and {len(bad) - 1} more memes)" if len(bad) > 1 else "")
                         + "; nothing was imported")
    stored = {m for (m,) in store.fetchall(
        "SELECT meme_id FROM class_labels WHERE task = ? AND coder = ?", [task, coder])}
    if stored and not force:
        have = {(m, coder): lab for m, lab in store.fetchall(
            "SELECT meme_id, label FROM class_labels WHERE task = ? AND coder = ?", [task, coder])}
        if have == records:  # a re-run: nothing new
            return LabelImport(task=task, source="memes.meta", import_id="", n_labels=0, n_memes=0,
                               coders=[coder], classes={})
        raise InputError(f"task {task!r} already has labels by {coder!r} that differ from memes.meta; "
                         f"pass --force to replace them")
    clash = [(m, coder) for m in stored]
    return _write(store, task, "memes.meta", records, clash, 0)


def tasks(store) -> list[str]:
    return [r[0] for r in store.fetchall("SELECT DISTINCT task FROM class_labels ORDER BY task")]


def load_labels(store, task: str, *, coder: str | None = None,
                meme_ids: set[str] | None = None) -> LabelSet:
    """The task's labels, one per meme: the majority over coders (or one coder's), ties left out."""
    sql = "SELECT meme_id, coder, label FROM class_labels WHERE task = ?"
    params: list = [task]
    if coder:
        sql += " AND coder = ?"
        params.append(coder)
    rows = store.fetchall(sql + " ORDER BY meme_id, coder", params)
    if not rows:
        known = tasks(store)
        if task not in known:
            raise NotFoundError(f"no labels for task {task!r}; tasks here: {', '.join(known) or '(none)'}"
                                f" — import some with `memeatlas classify import-labels`")
        raise NotFoundError(f"task {task!r} has no labels by coder {coder!r}")
    by_meme: dict[str, Counter] = {}
    coders: set[str] = set()
    for m, c, lab in rows:
        if meme_ids is not None and m not in meme_ids:
            continue
        by_meme.setdefault(m, Counter())[lab] += 1
        coders.add(c)
    labels: dict[str, str] = {}
    ties = 0
    for m, cnt in by_meme.items():
        top = cnt.most_common()
        if len(top) > 1 and top[0][1] == top[1][1]:
            ties += 1
            continue
        labels[m] = top[0][0]
    return LabelSet(task=task, labels=labels, coders=sorted(coders), n_ties=ties, n_rows=len(rows),
                    per_class=dict(Counter(labels.values()).most_common()))
