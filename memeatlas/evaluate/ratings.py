"""Importing human pair ratings (long or wide CSV) into `ratings`, all or nothing.

Accepted layouts (header row required; line numbers in errors count the header as line 1):

* long: ``pair_id, coder, dimension, rating``
* wide: ``pair_id`` plus one column per dimension (the coder comes from ``--coder``), or columns
  named ``<coder>:<dimension>`` (several coders in one file). The rating sheet that
  `evaluate pairs -o` writes is this layout, so a filled sheet imports unchanged.

Either layout may name the two memes (``meme_a, meme_b``: meme ids, or the ids of an imported corpus
as stored in ``memes.source_id``) instead of ``pair_id``. Such a file creates its pair set (strategy
``imported``) when it does not exist. Blank cells in a wide file are "not rated" and skipped.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memeatlas.corpus.memes import MAX_ERRORS_SHOWN  # noqa: F401  (re-exported)
from memeatlas.corpus.memes import RowErrors as _Errors
from memeatlas.corpus.memes import meme_resolver as _meme_resolver
from memeatlas.errors import InputError
from memeatlas.evaluate.pairs import SHEET_ID_COLUMNS, pair_id, pair_set_exists, require_pair_set
from memeatlas.provenance import stable_json, utcnow
from memeatlas.userfiles import check_file

SCALE_LOW, SCALE_HIGH = 1.0, 3.0
_RESERVED = set(SHEET_ID_COLUMNS) | {"stratum", "position", "note", "notes", "comment", "comments"}
_SCALE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(?:\.\.|-|:|,)\s*(-?\d+(?:\.\d+)?)\s*$")


@dataclass
class ImportSummary:
    """What `import_ratings` stored."""

    pair_set: str
    file: str
    layout: str                     # long | wide
    n_ratings: int
    n_pairs: int
    coders: list[str]
    dimensions: list[str]
    scale: tuple[float, float]
    scale_note: str
    n_blank: int = 0
    created_pair_set: bool = False
    n_new_pairs: int = 0
    n_replaced: int = 0
    warnings: list[str] = field(default_factory=list)


def parse_scale(text: str | None) -> tuple[float, float]:
    """'0..5' → (0.0, 5.0); None → the native 1..3 scale."""
    if text is None or text == "":
        return SCALE_LOW, SCALE_HIGH
    m = _SCALE.match(text)
    if not m:
        raise InputError(f"--scale expects LOW..HIGH such as 0..5, got {text!r}")
    lo, hi = float(m.group(1)), float(m.group(2))
    if not hi > lo:
        raise InputError(f"--scale {text!r}: HIGH must be greater than LOW")
    return lo, hi


def map_to_scale(value: float, lo: float, hi: float) -> float:
    """Linear map of [lo, hi] onto [1, 3]."""
    return SCALE_LOW + (value - lo) * (SCALE_HIGH - SCALE_LOW) / (hi - lo)


def import_ratings(store, path: str | Path, *, pair_set: str, coder: str | None = None,
                   scale: str | tuple[float, float] | None = None, force: bool = False,
                   dimension: str | None = None) -> ImportSummary:
    """Import one ratings file into `pair_set`; on any bad row raise InputError and import nothing.

    `scale` ('LOW..HIGH') maps ratings linearly onto 1..3. `coder` names the coder of a wide file
    whose columns are plain dimensions (and is the default coder of a long file without a coder
    column). `dimension` names the dimension of a long file without a dimension column. Ratings that
    are already stored for the same (pair, coder, dimension) are an error unless `force` replaces them.
    """
    path = Path(path)
    check_file(path, "ratings file")  # missing, a folder, a FIFO: one line each
    lo, hi = scale if isinstance(scale, tuple) else parse_scale(scale)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            first = fh.readline()
            fh.seek(0)
            # The delimiter from the header line (spreadsheets export ',' or, in some locales, ';').
            delim = "," if "," in first else "\t" if "\t" in first else ";" if ";" in first else ","
            # strict: an unterminated quote is an error, not a cell that swallows later rows
            reader = csv.reader(fh, delimiter=delim, strict=True)
            header = next(reader, None)
            body = list(reader)
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text ({exc}); save it as UTF-8 CSV") from None
    except csv.Error as exc:
        raise InputError(f"{path}: cannot parse as CSV near line {reader.line_num} ({exc}); "
                         f"check its quotes") from None
    if not header:
        raise InputError(f"{path} is empty; expected a header row")
    header = [h.strip() for h in header]
    cols = {h.lower(): i for i, h in enumerate(header)}
    has_pid = "pair_id" in cols
    has_memes = "meme_a" in cols and "meme_b" in cols
    if not has_pid and not has_memes:
        raise InputError(f"{path}: needs a pair_id column or meme_a and meme_b columns; "
                         f"found {', '.join(header)}")
    long_layout = "rating" in cols
    errors = _Errors()

    # Which (coder, dimension) each value column means.
    value_cols: list[tuple[int, str, str]] = []
    if long_layout:
        if "coder" not in cols and not coder:
            raise InputError(f"{path}: long layout without a coder column; pass --coder NAME")
        if "dimension" not in cols and not dimension:
            raise InputError(f"{path}: long layout without a dimension column; pass --dimension NAME")
    else:
        for i, h in enumerate(header):
            if h.lower() in _RESERVED or h == "":
                continue
            if ":" in h:
                c, d = (s.strip() for s in h.split(":", 1))
                if not c or not d:
                    raise InputError(f"{path}: column {h!r} should be <coder>:<dimension>")
                value_cols.append((i, c, d))
            else:
                if not coder:
                    raise InputError(
                        f"{path}: wide layout with rating column {h!r} but no coder; pass --coder NAME "
                        f"(or name the columns <coder>:<dimension>)")
                value_cols.append((i, coder, h))
        if not value_cols:
            raise InputError(f"{path}: no rating columns found (expected a 'rating' column, or one column "
                             f"per dimension such as connotative, denotative)")

    existing_set = pair_set_exists(store, pair_set)
    set_row = require_pair_set(store, pair_set) if existing_set else None
    pairs_by_id: dict[str, tuple[str, str]] = {}
    if existing_set:
        for pid, a, b in store.fetchall(
                "SELECT pair_id, meme_a, meme_b FROM rating_pairs WHERE pair_set = ?", [pair_set]):
            pairs_by_id[pid] = (a, b)
    elif has_pid and not has_memes:
        raise InputError(f"pair set {pair_set!r} does not exist; sample it with `memeatlas evaluate pairs` "
                         f"or import a file that names the memes (meme_a, meme_b columns)")
    can_add_pairs = (not existing_set) or (set_row or {}).get("strategy") == "imported"
    allowed = set_dimensions(store, pair_set, set_row) if existing_set else None
    if allowed is not None and not long_layout:
        for i, _c, d in value_cols:
            if d not in allowed:
                raise InputError(f"{path}: column {header[i]!r}: {_unknown_dimension(d, pair_set, allowed)}")
    resolve = _meme_resolver(store) if has_memes else None

    new_pairs: dict[str, tuple[str, str]] = {}
    records: dict[tuple[str, str, str], tuple[int, float, float]] = {}
    n_blank = 0
    for k, row in enumerate(body):
        line = k + 2
        if not any(cell.strip() for cell in row):
            continue  # blank line
        row = row + [""] * (len(header) - len(row))

        def get(name: str, row: list[str] = row) -> str:
            return row[cols[name]].strip() if name in cols else ""

        # Which pair this row is about.
        pid = get("pair_id") if has_pid else ""
        memes_named = None
        if has_memes and (get("meme_a") or get("meme_b")):
            ra, rb = get("meme_a"), get("meme_b")
            if not ra or not rb:
                errors.add(line, "meme_a and meme_b must both be given")
                continue
            a, b = resolve(ra), resolve(rb)
            bad = False
            for label, raw, got in (("meme_a", ra, a), ("meme_b", rb, b)):
                if got is None:
                    errors.add(line, f"{label} {raw!r} is neither a meme id nor a corpus id in this database")
                    bad = True
                elif got == "AMBIGUOUS":
                    errors.add(line, f"{label} {raw!r} is the corpus id of several memes; use the meme id")
                    bad = True
            if bad:
                continue
            if a == b:
                errors.add(line, "meme_a and meme_b are the same meme")
                continue
            memes_named = (a, b)
        if memes_named is not None:
            # The memes identify the pair; a pair_id given beside them must agree when it is known.
            # (Ratings collected elsewhere may carry their own pair ids; those are not ours.)
            if pid and (pid in pairs_by_id or pid in new_pairs):
                known = pairs_by_id.get(pid) or new_pairs[pid]
                if set(known) != set(memes_named):
                    errors.add(line, f"pair_id {pid!r} is a different pair of memes than meme_a/meme_b")
                    continue
            pid = pair_id(*memes_named)
            if pid not in pairs_by_id and pid not in new_pairs:
                if not can_add_pairs:
                    errors.add(line, f"this pair of memes is not in pair set {pair_set!r} (sampled sets "
                                     f"take ratings for their own pairs only)")
                    continue
                new_pairs[pid] = memes_named
        elif pid:
            if pid not in pairs_by_id:
                errors.add(line, f"unknown pair_id {pid!r} (not in pair set {pair_set!r})")
                continue
        else:
            errors.add(line, "no pair_id and no meme_a/meme_b")
            continue

        # The rating(s) on this row.
        if long_layout:
            c = get("coder") or (coder or "")
            d = get("dimension") or (dimension or "")
            if not c:
                errors.add(line, "empty coder")
                continue
            if not d:
                errors.add(line, "empty dimension")
                continue
            if allowed is not None and d not in allowed:
                errors.add(line, _unknown_dimension(d, pair_set, allowed))
                continue
            cells = [(c, d, get("rating"), "rating")]
        else:
            cells = [(c, d, row[i].strip(), header[i]) for i, c, d in value_cols]
        for c, d, raw, colname in cells:
            if raw == "":
                if long_layout:
                    errors.add(line, "empty rating")
                else:
                    n_blank += 1
                continue
            try:
                val = float(raw.replace(",", ".")) if raw.count(",") == 1 and "." not in raw else float(raw)
            except ValueError:
                errors.add(line, f"{colname}: rating {raw!r} is not a number")
                continue
            if not (lo <= val <= hi):
                errors.add(line, f"{colname}: rating {raw} is outside the scale {_fmt(lo)}..{_fmt(hi)}"
                                 + ("" if (lo, hi) != (SCALE_LOW, SCALE_HIGH) else
                                    " (pass --scale LOW..HIGH for another scale)"))
                continue
            key = (pid, c, d)
            if key in records:
                errors.add(line, f"duplicate rating for pair {pid}, coder {c!r}, dimension {d!r} "
                                 f"(first on line {records[key][0]})")
                continue
            records[key] = (line, val, map_to_scale(val, lo, hi))

    errors.raise_if_any(path)
    if not records:
        raise InputError(f"{path}: no ratings found (all rating cells are blank)")

    # Ratings already stored for the same keys: an error unless --force replaces them.
    stored = {(p, c, d) for p, c, d in store.fetchall(
        "SELECT pair_id, coder, dimension FROM ratings WHERE pair_set = ?", [pair_set])}
    clash = [(records[k][0], k) for k in records if k in stored]
    if clash and not force:
        for line, (p, c, d) in clash:
            errors.add(line, f"pair {p}, coder {c!r}, dimension {d!r} is already rated in this pair set "
                             f"(pass --force to replace)")
        errors.raise_if_any(path)

    now = utcnow()
    created = False
    with store.transaction():
        if not existing_set:
            store.execute("INSERT INTO pair_sets (pair_set, strategy, runs, seed, params, created_at)"
                          " VALUES (?,?,?,?,?,?)",
                          [pair_set, "imported", "[]", None,
                           stable_json({"source": str(path),
                                       "dimensions": sorted({d for _, _, d in records})}), now])
            created = True
        if new_pairs:
            start = int(store.scalar("SELECT coalesce(max(position), 0) FROM rating_pairs WHERE pair_set = ?",
                                     [pair_set]))
            store.insert_rows("rating_pairs", ("pair_set", "pair_id", "meme_a", "meme_b", "stratum", "position"),
                [(pair_set, p, a, b, "imported", start + i + 1)
                 for i, (p, (a, b)) in enumerate(new_pairs.items())])
        if clash:
            for _, (p, c, d) in clash:
                store.execute("DELETE FROM ratings WHERE pair_set = ? AND pair_id = ? AND coder = ? "
                              "AND dimension = ?", [pair_set, p, c, d])
        store.insert_rows("ratings", ("pair_set", "pair_id", "coder", "dimension", "rating", "raw_rating", "source",
                               "imported_at"),
            [(pair_set, p, c, d, mapped, raw, str(path), now)
             for (p, c, d), (_, raw, mapped) in records.items()])

    coders = sorted({c for _, c, _ in records})
    dims = sorted({d for _, _, d in records})
    if (lo, hi) == (SCALE_LOW, SCALE_HIGH):
        note = "ratings on the native 1..3 scale (1 unrelated, 2 loosely related, 3 closely related)"
    else:
        note = (f"ratings on {_fmt(lo)}..{_fmt(hi)} mapped linearly onto 1..3: "
                f"rating' = 1 + 2 * (rating - {_fmt(lo)}) / {_fmt(hi - lo)}")
    return ImportSummary(pair_set=pair_set, file=str(path), layout="long" if long_layout else "wide",
                         n_ratings=len(records), n_pairs=len({p for p, _, _ in records}), coders=coders,
                         dimensions=dims, scale=(lo, hi), scale_note=note, n_blank=n_blank,
                         created_pair_set=created, n_new_pairs=len(new_pairs), n_replaced=len(clash))


def set_dimensions(store, pair_set: str, set_row: dict[str, Any] | None = None) -> list[str] | None:
    """The dimensions a pair set is rated on: those it was sampled (or first imported) with;
    for older sets without that record, the ones already rated; None when nothing says."""
    row = set_row or store.fetch_dict("SELECT params FROM pair_sets WHERE pair_set = ?", [pair_set]) or {}
    params = row.get("params")
    if isinstance(params, str):
        import json

        params = json.loads(params)
    dims = (params or {}).get("dimensions")
    if dims:
        return [str(d) for d in dims]
    rated = [r[0] for r in store.fetchall(
        "SELECT DISTINCT dimension FROM ratings WHERE pair_set = ? ORDER BY 1", [pair_set])]
    return rated or None


def _unknown_dimension(d: str, pair_set: str, allowed: list[str]) -> str:
    import difflib

    near = difflib.get_close_matches(d.lower(), [a.lower() for a in allowed], n=1, cutoff=0.6)
    hint = ""
    if near:
        hint = f"; did you mean {next(a for a in allowed if a.lower() == near[0])!r}?"
    return (f"dimension {d!r} is not one of pair set {pair_set!r}'s dimensions "
            f"({', '.join(allowed)}){hint}")


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def load_ratings(store, pair_set: str, dimension: str | None = None):
    """Ratings of a pair set as a DataFrame (pair_id, meme_a, meme_b, stratum, coder, dimension, rating)."""
    sql = ("SELECT r.pair_id, rp.meme_a, rp.meme_b, rp.stratum, r.coder, r.dimension, r.rating"
           " FROM ratings r JOIN rating_pairs rp ON rp.pair_set = r.pair_set AND rp.pair_id = r.pair_id"
           " WHERE r.pair_set = ?")
    params: list[Any] = [pair_set]
    if dimension:
        sql += " AND r.dimension = ?"
        params.append(dimension)
    return store.df(sql + " ORDER BY r.pair_id, r.coder, r.dimension", params)
