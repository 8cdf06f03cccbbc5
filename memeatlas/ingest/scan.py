"""Turning what the user names (folders, globs, files, manifests) into candidate files."""

from __future__ import annotations

import csv
import glob
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memeatlas.errors import InputError
from memeatlas.ingest.notices import Notices
from memeatlas.ingest.validate import IMAGE_EXTENSIONS


@dataclass
class Candidate:
    """A file to ingest, with where it came from and any metadata attached to it."""

    path: Path
    source: str                      # 'folder' | 'manifest'
    origin: str                      # what to name in errors: the path, or 'manifest.csv:12'
    meta: dict[str, Any] = field(default_factory=dict)
    source_id: str | None = None


@dataclass
class ScanResult:
    candidates: list[Candidate]
    missing: list[Candidate]         # named explicitly (argument or manifest row) but not there
    ignored: int                     # files in folders without an image extension
    bad_rows: list[tuple[str, str]] = field(default_factory=list)  # (origin, detail) of unusable manifest rows
    warnings: Notices = field(default_factory=Notices)
    manifest: Path | None = None     # the resolved manifest file, when this scan read one


def _file(p: Path) -> Candidate:
    # Errors name the absolute path, the same string `memes.path` stores.
    r = p.absolute() if p.is_symlink() and not p.exists() else p.resolve()
    return Candidate(r, "folder", str(r))


def _is_glob(s: str) -> bool:
    return any(ch in s for ch in "*?[")


def scan_paths(paths: list[str | Path], recursive: bool = False) -> ScanResult:
    """Expand folders (images by extension), globs and plain files, in a stable order.

    An explicitly named file is tried whatever its extension (so a mislabelled
    file is reported, not skipped); inside folders only image extensions count.
    """
    found: list[Candidate] = []
    missing: list[Candidate] = []
    ignored = 0
    for raw in paths:
        s = str(raw)
        if _is_glob(s):
            matches = sorted(glob.glob(s, recursive=recursive))
            if not matches:
                missing.append(Candidate(Path(s), "folder", s))
            for m in matches:
                p = Path(m)
                # Broken links and folders named like images are kept so they are reported,
                # as in folders below.
                if (p.is_file() or (p.is_symlink() and not p.exists())
                        or (p.is_dir() and p.suffix.lower() in IMAGE_EXTENSIONS)):
                    found.append(_file(p))
            continue
        p = Path(s)
        if p.is_dir():
            it = p.rglob("*") if recursive else p.iterdir()
            for f in sorted(it):
                named_image = f.suffix.lower() in IMAGE_EXTENSIONS
                # A folder named like an image is reported ("is a directory"), not skipped in
                # silence; with --recursive its contents are scanned instead.
                if named_image and f.is_dir() and not recursive:
                    found.append(_file(f))
                    continue
                # Broken links are kept so they are reported, not silently skipped.
                if not (f.is_file() or (f.is_symlink() and not f.exists())):
                    continue
                if named_image:
                    found.append(_file(f))
                elif not f.name.startswith(".") and f.name != "manifest.csv":
                    ignored += 1
        elif p.exists():
            found.append(_file(p))
        else:
            missing.append(Candidate(p.absolute(), "folder", str(p.absolute())))
    return ScanResult(found, missing, ignored)


def read_table(file: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of a CSV/TSV or JSONL file as (line number, dict); JSON arrays also accepted.

    Line numbers are 1-based file lines (a CSV header is line 1), so errors can
    point at the exact row.
    """
    if not file.exists():
        raise InputError(f"{file}: file not found")
    try:
        n = 0
        for n, row in enumerate(_table_rows(file), 1):  # noqa: B007
            yield row
        if n == 0:
            raise InputError(f"{file}: no rows (an empty table or list); nothing to read")
    except UnicodeDecodeError as exc:
        raise InputError(f"{file}: not UTF-8 text (bad byte at offset {exc.start}); "
                         f"save it as UTF-8") from None
    except csv.Error as exc:
        raise InputError(f"{file}: cannot parse as CSV/TSV ({exc})") from None


def _table_rows(file: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    suffix = file.suffix.lower()
    if suffix in (".csv", ".tsv"):
        with open(file, newline="", encoding="utf-8-sig") as fh:
            # strict: an unterminated quote is an error, not a value that swallows later rows.
            reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",", strict=True)
            if reader.fieldnames is None:
                raise InputError(f"{file}: empty file, expected a header row")
            for row in reader:
                yield reader.line_num, {k: v for k, v in row.items() if k is not None}
    elif suffix in (".jsonl", ".ndjson"):
        with open(file, encoding="utf-8") as fh:
            for i, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{file}:{i}: invalid JSON ({exc.msg})") from None
                if not isinstance(obj, dict):
                    raise InputError(f"{file}:{i}: expected a JSON object per line")
                yield i, obj
    elif suffix == ".json":
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(f"{file}: invalid JSON at line {exc.lineno} ({exc.msg})") from None
        if isinstance(data, dict):  # {"data": [...]}, {"items": [...]} or {"<id>": {...}, ...}
            if "data" in data or "items" in data:
                data = data.get("data", data.get("items"))
            elif data and all(isinstance(v, dict) for v in data.values()):
                data = list(data.values())
            else:
                keys = ", ".join(list(map(str, data))[:5]) or "none"
                raise InputError(f"{file}: expected a JSON array of objects, got an object "
                                 f"(keys: {keys}); wrap the rows in [...] or {{\"data\": [...]}}")
        if not isinstance(data, list):
            raise InputError(f"{file}: expected a JSON array of objects, got "
                             f"{_json_kind(data)}")
        for i, obj in enumerate(data, 1):
            if not isinstance(obj, dict):
                raise InputError(f"{file}: entry {i} is {_json_kind(obj)}, expected an object "
                                 f"per entry; fix or remove it")
            yield i, obj
    else:
        raise InputError(f"{file}: unknown table format {suffix!r}; use .csv, .tsv, .jsonl or .json")


def _json_kind(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(v), "a number")


def columns_of(rows: list[tuple[int, dict[str, Any]]]) -> set[str]:
    """Every column (key) that at least one row has."""
    return {k for _, row in rows for k in row}


def require_column(file: Path, cols: set[str], name: str, option: str) -> None:
    """Refuse, before anything is written, an option that names a column no row has."""
    if name not in cols:
        listed = ", ".join(sorted(cols)) or "none"
        raise InputError(f"{file}: no row has a column {name!r} (named by {option}; "
                         f"columns: {listed})")


def scan_manifest(manifest: Path, path_column: str = "path", id_column: str | None = None
                  ) -> ScanResult:
    """Candidates from a manifest: one row per image, other columns kept as metadata.

    Relative paths are resolved against the manifest's folder. Rows are named
    `<resolved manifest>:<line>`, so every spelling of the manifest's path means the same
    rows. A column option no row has, or one id given to two images, is an error before
    anything is written; the same row twice is a counted warning.
    """
    found: list[Candidate] = []
    missing: list[Candidate] = []
    bad: list[tuple[str, str]] = []
    warnings = Notices()
    resolved = manifest.resolve()
    base = resolved.parent
    rows = list(read_table(manifest))
    cols = columns_of(rows)
    require_column(manifest, cols, path_column, "--path-column")
    if id_column:
        require_column(manifest, cols, id_column, "--id-column")
    by_id: dict[str, tuple[int, Path]] = {}
    by_path: dict[Path, tuple[int, str | None]] = {}
    for line, row in rows:
        origin = f"{resolved}:{line}"
        raw = row.get(path_column)
        if raw in (None, ""):
            cols = ", ".join(sorted(row)) or "none"
            bad.append((origin, f"row has no {path_column!r} value (columns: {cols}); "
                                f"fill it in or name the path column with --path-column"))
            continue
        if "\x00" in str(raw):  # no OS accepts it; pathlib would raise on it
            bad.append((origin, f"the {path_column!r} value contains a NUL character; fix the row"))
            continue
        p = Path(str(raw)).expanduser()
        if not p.is_absolute():
            p = base / p
        meta = {k: v for k, v in row.items() if k != path_column and v not in (None, "")}
        sid = str(row[id_column]) if id_column and row.get(id_column) not in (None, "") else None
        cand = Candidate(p.resolve(), "manifest", origin, meta, sid)
        if sid is not None and sid in by_id and by_id[sid][1] != cand.path:
            raise InputError(f"{manifest}: id {sid!r} is on rows {by_id[sid][0]} and {line} with "
                             f"different images; ids must be unique (fix the rows, or leave "
                             f"out --id-column)")
        if cand.path in by_path and by_path[cand.path][1] != sid and id_column:
            raise InputError(f"{manifest}: {raw} is on rows {by_path[cand.path][0]} and {line} "
                             f"with different ids ({by_path[cand.path][1]!r}, {sid!r}); give each "
                             f"image one id")
        if cand.path in by_path:
            warnings.add("duplicate_row", "rows naming an image an earlier row already names; "
                         "their metadata is merged in file order", origin)
        if sid is not None:
            by_id.setdefault(sid, (line, cand.path))
        by_path.setdefault(cand.path, (line, sid))
        # Whatever exists is inspected, which names a directory or a device as such.
        (found if p.exists() else missing).append(cand)
    return ScanResult(found, missing, 0, bad, warnings, resolved)
