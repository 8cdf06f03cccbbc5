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
                # Broken links are kept so they are reported, as in folders below.
                if p.is_file() or (p.is_symlink() and not p.exists()):
                    found.append(_file(p))
            continue
        p = Path(s)
        if p.is_dir():
            it = p.rglob("*") if recursive else p.iterdir()
            for f in sorted(it):
                # Broken links are kept so they are reported, not silently skipped.
                if not (f.is_file() or (f.is_symlink() and not f.exists())):
                    continue
                if f.suffix.lower() in IMAGE_EXTENSIONS:
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
        yield from _table_rows(file)
    except UnicodeDecodeError as exc:
        raise InputError(f"{file}: not UTF-8 text (bad byte at offset {exc.start}); "
                         f"save it as UTF-8") from None
    except csv.Error as exc:
        raise InputError(f"{file}: cannot parse as CSV/TSV ({exc})") from None


def _table_rows(file: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    suffix = file.suffix.lower()
    if suffix in (".csv", ".tsv"):
        with open(file, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
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
        if isinstance(data, dict):  # {"id": {...}, ...} or {"data": [...]}
            data = data.get("data", data.get("items", list(data.values())))
        if not isinstance(data, list):
            raise InputError(f"{file}: expected a JSON array of objects")
        for i, obj in enumerate(data, 1):
            if isinstance(obj, dict):
                yield i, obj
    else:
        raise InputError(f"{file}: unknown table format {suffix!r}; use .csv, .tsv, .jsonl or .json")


def scan_manifest(manifest: Path, path_column: str = "path", id_column: str | None = None
                  ) -> ScanResult:
    """Candidates from a manifest: one row per image, other columns kept as metadata.

    Relative paths are resolved against the manifest's folder.
    """
    found: list[Candidate] = []
    missing: list[Candidate] = []
    bad: list[tuple[str, str]] = []
    base = manifest.resolve().parent
    for line, row in read_table(manifest):
        origin = f"{manifest}:{line}"
        raw = row.get(path_column)
        if raw in (None, ""):
            cols = ", ".join(sorted(row)) or "none"
            bad.append((origin, f"row has no {path_column!r} value (columns: {cols}); "
                                f"fill it in or name the path column with --path-column"))
            continue
        p = Path(str(raw)).expanduser()
        if not p.is_absolute():
            p = base / p
        meta = {k: v for k, v in row.items() if k != path_column and v not in (None, "")}
        sid = str(row[id_column]) if id_column and row.get(id_column) not in (None, "") else None
        cand = Candidate(p.resolve(), "manifest", origin, meta, sid)
        (found if p.is_file() else missing).append(cand)
    return ScanResult(found, missing, 0, bad)
