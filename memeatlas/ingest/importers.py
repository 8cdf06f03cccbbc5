"""`memeatlas import-annotations`: existing annotated corpora (MemeCap, generic JSONL/CSV).

Rows become `annotations` by a human annotator (`human:<corpus>`), attached to a
meme that is either the image (when the row names a file that exists) or an
image-less meme whose id is the SHA-256 of `<corpus>:<source id>`. The
source's own id is kept in `memes.source_id` so later files (ratings, labels)
can refer to memes by it; every other column is kept in `memes.meta` and in
the annotation's `raw`, so it stays queryable.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memeatlas.errors import InputError
from memeatlas.ingest.memecap import UNSPECIFIED_ROLE, metaphor_entities, parse_flat_metaphors
from memeatlas.ingest.names import is_storable
from memeatlas.ingest.notices import Notices
from memeatlas.ingest.run import record_problems
from memeatlas.ingest.scan import columns_of, read_table, require_column
from memeatlas.ingest.validate import (
    DEFAULT_MAX_IMAGE_PIXELS,
    ImageInfo,
    Problem,
    inspect_file,
)
from memeatlas.provenance import new_run_id, sha256_text, software
from memeatlas.store import Store

CORE_FIELDS = ("description", "ocr_text", "intent", "template", "tone", "entities")
ROLES = ("hero", "villain", "victim", "other", UNSPECIFIED_ROLE)
FORMATS = ("memecap", "jsonl", "csv")
MEMECAP_IDS = ("post_id", "csv_id")
# MemeCap columns read into annotation fields (so not repeated in memes.meta).
MEMECAP_USED = frozenset({"img_captions", "meme_captions", "metaphors", "ocr_text",
                          "img_captions_flat", "meme_captions_flat", "metaphors_flat"})


@dataclass
class ImportSummary:
    """Counts of one import; `bad_lines` names the rows that were not imported."""

    import_id: str
    annotator: str
    rows: int = 0
    imported: int = 0
    with_image: int = 0
    failed: int = 0
    bad_lines: list[tuple[int, str]] = field(default_factory=list)
    image_problems: int = 0           # rows whose named image was missing or unusable
    memes: int = 0                    # distinct memes the imported rows annotate
    entities: int = 0                 # entities stored (over the imported rows)
    pairs_without_meaning: int = 0    # MemeCap metaphor pairs whose meaning says there is none
    warnings: Notices = field(default_factory=Notices)  # rows stored with a caveat
    seconds: float = 0.0


@dataclass
class _Row:
    line: int
    source_id: str
    fields: dict[str, Any]            # core annotation fields
    extra: dict[str, Any]             # everything else, kept in meta/raw
    image: Path | None = None
    raw_only: dict[str, Any] = field(default_factory=dict)  # kept in the annotation's raw only


def _clean(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, str) and not v.strip():
        return None
    return v


def _is_id(v: Any) -> bool:
    return isinstance(v, (str, int, float)) and not isinstance(v, bool)


def _is_text(v: Any) -> bool:
    """None, a string, a number, or a list of those: what a caption field may hold."""
    if v is None or _is_id(v):
        return True
    return isinstance(v, list) and all(x is None or _is_id(x) for x in v)


def _joined(v: Any) -> str | None:
    v = _clean(v)
    if v is None:
        return None
    if isinstance(v, list):
        parts = [str(x).strip() for x in v if _clean(x) is not None]
        return "\n".join(parts) or None
    return str(v)


def _memecap_rows(file: Path, images: Path | None,
                  id_field: str | None) -> Iterator[_Row | tuple[int, str]]:
    table = list(read_table(file))
    cols = columns_of(table)
    if id_field:
        require_column(file, cols, id_field, "--id-field")
        id_fields: tuple[str, ...] = (id_field,)
    else:
        # A row's id is its post_id; the rebuilt trainval's csv_only rows have none and are
        # keyed by their csv_id (one that equals another row's post_id is a counted duplicate).
        id_fields = MEMECAP_IDS
        if not cols & set(MEMECAP_IDS):
            require_column(file, cols, "post_id", "--format memecap")
    if not cols & {"img_captions", "meme_captions", "img_captions_flat", "meme_captions_flat"}:
        raise InputError(f"{file}: no row has img_captions or meme_captions, so this is not a "
                         f"MemeCap file (columns: {', '.join(sorted(cols))}); use --format "
                         f"jsonl/csv with --map")
    for line, obj in table:
        used_id, sid = next(((k, _clean(obj.get(k))) for k in id_fields
                             if _clean(obj.get(k)) is not None), (None, None))
        if sid is None:
            yield line, f"missing {' and '.join(id_fields)}"
            continue
        if not _is_id(sid):
            yield line, f"{used_id} must be a string or a number, not {type(sid).__name__}"
            continue
        # The structured field, else the csv_only row's flattened one.
        text = {k: obj.get(k) if _clean(obj.get(k)) is not None else obj.get(f"{k}_flat")
                for k in ("img_captions", "meme_captions", "ocr_text")}
        bad = next((k for k in text if not _is_text(text[k])), None)
        if bad:
            yield line, f"{bad} must be a string or a list of strings"
            continue
        metaphors = obj.get("metaphors")
        if _clean(metaphors) is None:
            metaphors = parse_flat_metaphors(obj.get("metaphors_flat"))
        if not isinstance(metaphors or [], list):
            yield line, "metaphors must be a list of {metaphor, meaning} objects"
            continue
        description = _joined(text["img_captions"])
        intent = _joined(text["meme_captions"])
        if description is None and intent is None:
            yield line, "neither img_captions nor meme_captions has text"
            continue
        entities, no_meaning = metaphor_entities(metaphors or [])
        extra = {k: v for k, v in obj.items()
                 if k not in MEMECAP_USED and k != used_id and _clean(v) is not None}
        image = None
        fname = _clean(obj.get("img_fname"))
        if images is not None and fname and "\x00" in str(fname):
            yield line, "img_fname contains a NUL character, not a file name"
            continue
        if images is not None and fname:
            image = images / str(fname).strip()
        yield _Row(line, str(sid),
                   {"description": description, "intent": intent, "entities": entities,
                    "ocr_text": _joined(text["ocr_text"]), "template": None, "tone": None},
                   extra, image,
                   raw_only={"metaphors_without_meaning": no_meaning} if no_meaning else {})


def _generic_rows(file: Path, id_field: str, mapping: dict[str, str], image_field: str | None,
                  images: Path | None) -> Iterator[_Row | tuple[int, str]]:
    base = images or file.resolve().parent
    used = set(mapping.values()) | {id_field} | ({image_field} if image_field else set())
    table = list(read_table(file))
    cols = columns_of(table)
    # An option naming a column no row has would fail (or ignore) every row: refuse it.
    require_column(file, cols, id_field, "--id-field")
    for target, col in mapping.items():
        require_column(file, cols, col, f"--map {target}={col}")
    if image_field:
        require_column(file, cols, image_field, "--image-field")
    for line, obj in table:
        sid = _clean(obj.get(id_field))
        if sid is None:
            yield line, f"missing id field {id_field!r}"
            continue
        if not _is_id(sid):
            yield line, f"id field {id_field!r} must be a string or a number, not {type(sid).__name__}"
            continue
        fields: dict[str, Any] = {}
        for target, col in mapping.items():
            fields[target] = _clean(obj.get(col))
        if "entities" in fields and isinstance(fields["entities"], str):
            try:
                fields["entities"] = json.loads(fields["entities"])
            except json.JSONDecodeError:
                yield line, f"column {mapping['entities']!r} is not a JSON list of entities"
                continue
        if all(fields.get(f) is None for f in mapping):
            cols = ", ".join(mapping.values())
            yield line, f"no annotation text in the mapped columns ({cols})"
            continue
        extra = {k: v for k, v in obj.items() if k not in used and _clean(v) is not None}
        image = None
        if image_field and "\x00" in str(obj.get(image_field) or ""):
            yield line, f"column {image_field!r} contains a NUL character, not a file name"
            continue
        if image_field and _clean(obj.get(image_field)) is not None:
            image = Path(str(obj[image_field])).expanduser()
            if not image.is_absolute():
                image = base / image
        yield _Row(line, str(sid), fields, extra, image)


def _entities_ok(ents: Any) -> str | None:
    """Why an entity list cannot be stored, or None; an entity without a role gets `unspecified`."""
    if ents is None:
        return None
    if not isinstance(ents, list):
        return "entities must be a JSON list"
    for e in ents:
        if not isinstance(e, dict) or not e.get("name"):
            return "each entity needs a name"
        if e.get("role") is None:
            # The source names no role: say so, rather than claim one (`other`) it did not give.
            e["role"] = UNSPECIFIED_ROLE
        if e["role"] not in ROLES:
            return f"entity role {e.get('role')!r} is not one of {', '.join(ROLES)}"
    return None


def _check_options(fmt: str, *, mapping: dict[str, str] | None, id_field: str | None,
                   image_field: str | None, images: str | Path | None) -> None:
    """Refuse an option the chosen format does not use, naming it, before anything is read."""
    if fmt == "memecap":
        if mapping:
            raise InputError("--map is for --format jsonl/csv; MemeCap's fields are fixed "
                             "(img_captions → description, meme_captions → intent, ocr_text, "
                             "metaphors → entities)")
        if image_field:
            raise InputError("--image-field is for --format jsonl/csv; MemeCap rows name their "
                             "image in img_fname, looked up in --images FOLDER")
        return
    if not id_field:
        raise InputError(f"--id-field is required for --format {fmt} (the column with each "
                         f"row's own id)")
    if images is not None and not image_field:
        raise InputError(f"--images is used with --image-field for --format {fmt} (relative "
                         f"image paths are read from it); give --image-field COLUMN, or drop "
                         f"--images")


def import_annotations(store: Store, file: str | Path, fmt: str, *,
                       mapping: dict[str, str] | None = None, id_field: str | None = None,
                       corpus: str | None = None, annotator: str | None = None,
                       image_field: str | None = None, images: str | Path | None = None,
                       max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> ImportSummary:
    """Import an annotated corpus; see the module docstring for identity rules.

    `fmt` is memecap, jsonl or csv. For jsonl/csv, `mapping` maps core fields
    (description, ocr_text, intent, template, tone, entities) to column names and
    `id_field` names the id column; for memecap, `id_field` picks the id column (default:
    post_id, else csv_id). An option the format does not use is refused (InputError), never
    ignored. Rows missing required fields are recorded in
    `ingest_errors` as `<file>:<line>` and listed in the summary; the rest import.
    Re-importing the same file replaces its annotations (same key), never duplicates.
    """
    t0 = time.perf_counter()
    file = Path(file)
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    _check_options(fmt, mapping=mapping, id_field=id_field, image_field=image_field,
                   images=images)
    if not file.exists():
        raise InputError(f"{file}: file not found")
    img_dir = Path(images) if images else None
    if fmt == "memecap":
        corpus = corpus or "memecap"
        rows: Iterator[_Row | tuple[int, str]] = _memecap_rows(file, img_dir, id_field)
        mapping_used: dict[str, str] = {"description": "img_captions", "intent": "meme_captions",
                                        "ocr_text": "ocr_text", "entities": "metaphors"}
    else:
        mapping = dict(mapping or {})
        unknown = sorted(set(mapping) - set(CORE_FIELDS))
        if unknown:
            raise InputError(f"--map targets {', '.join(unknown)} are not annotation fields; "
                             f"use {', '.join(CORE_FIELDS)}")
        if not mapping:
            raise InputError("give at least one --map FIELD=COLUMN (e.g. --map description=caption)")
        corpus = corpus or file.stem
        rows = _generic_rows(file, id_field, mapping, image_field, img_dir)
        mapping_used = mapping
    annotator = annotator or f"human:{corpus}"
    import_id = new_run_id("import")
    summary = ImportSummary(import_id, annotator)

    good: list[_Row] = []
    first_line: dict[str, int] = {}
    key = str(file.resolve())
    for r in rows:
        summary.rows += 1
        if isinstance(r, tuple):
            summary.bad_lines.append(r)
            continue
        problem = _entities_ok(r.fields.get("entities"))
        if problem:
            summary.bad_lines.append((r.line, problem))
            continue
        if r.source_id in first_line:
            summary.warnings.add("duplicate_id", "rows repeating an earlier row's id: one meme, "
                                 "the last row's annotation kept, metadata merged",
                                 f"{key}:{r.line}")
        first_line.setdefault(r.source_id, r.line)
        no_meaning = len(r.raw_only.get("metaphors_without_meaning") or [])
        if no_meaning:
            summary.pairs_without_meaning += no_meaning
            summary.warnings.add("metaphors_without_meaning", "rows with metaphor pairs whose "
                                 "meaning says there is none; not stored as entities, kept in "
                                 "the annotation's raw", f"{key}:{r.line}")
        good.append(r)

    def image_info(r: _Row) -> ImageInfo | Problem | None:
        if r.image is None:
            return None
        return inspect_file(r.image, max_image_pixels)

    _write(store, file, fmt, corpus, annotator, import_id, good, mapping_used, summary, image_info)
    summary.failed = len(summary.bad_lines)
    summary.seconds = time.perf_counter() - t0
    return summary


def _write(store: Store, file: Path, fmt: str, corpus: str, annotator: str, import_id: str,
           good: list[_Row], mapping: dict[str, str], summary: ImportSummary,
           image_info: Callable[[_Row], ImageInfo | Problem | None]) -> None:
    """Write the good rows in bulk (a statement per table, not per row: MemeCap has 6k rows).

    Same outcome as row by row: the first row of a meme creates it, every row's metadata is
    merged into it in file order, and the last row's annotation of a meme wins.
    """
    import pyarrow as pa

    memes: dict[str, tuple] = {}              # first row per meme
    patches: dict[str, list[tuple[str, str]]] = {}  # meme_id -> [(meta, source_id)] in order
    sources: dict[tuple[str, str], tuple] = {}  # first row per (meme_id, path)
    notes: dict[str, tuple] = {}              # last row per meme
    image_problems: list[tuple[str, str, Problem]] = []
    for r in good:
        info = image_info(r)
        if isinstance(info, Problem):
            # The annotation still imports (as an image-less meme), but the unusable image is
            # reported, not dropped in silence.
            image_problems.append((f"import:{file.name}", str(r.image), Problem(
                info.code, f"named by {file}:{r.line}; imported without its image: {info.detail}")))
            info = None
        if info is not None and not is_storable(str(r.image.resolve())):
            image_problems.append((f"import:{file.name}", str(r.image), Problem(
                "bad_filename", f"named by {file}:{r.line}; imported without its image: the "
                "file name is not valid UTF-8; rename it and import again")))
            info = None
        meta = json.dumps(r.extra, default=str) if r.extra else None
        if info is not None:
            meme_id, path = info.meme_id, str(r.image.resolve())
            summary.with_image += 1
            memes.setdefault(meme_id, (meme_id, path, r.source_id, True, info.width, info.height,
                                       info.format, info.n_frames, info.n_bytes, info.phash, meta))
        else:
            meme_id, path = sha256_text(f"{corpus}:{r.source_id}"), f"{corpus}:{r.source_id}"
            memes.setdefault(meme_id, (meme_id, None, r.source_id, False, None, None, None, None,
                                       None, None, meta))
        if meta:
            patches.setdefault(meme_id, []).append((meta, r.source_id))
        sources.setdefault((meme_id, path), (meme_id, path, r.source_id, meta))
        f = r.fields
        raw = {**{k: v for k, v in f.items() if v is not None}, **r.extra, **r.raw_only,
               "source_id": r.source_id}
        notes[meme_id] = (meme_id, _s(f.get("description")), _s(f.get("ocr_text")),
                          _s(f.get("intent")), _s(f.get("template")), _s(f.get("tone")),
                          json.dumps(f.get("entities") or [], ensure_ascii=False),
                          json.dumps(raw, ensure_ascii=False, default=str))
        summary.imported += 1
        summary.entities += len(f.get("entities") or [])

    def table(names: str, rows) -> pa.Table:
        cols = names.split()
        rows = list(rows)
        return pa.table({c: [row[i] for row in rows] for i, c in enumerate(cols)})

    with store.transaction():
        if memes:
            with store.registered("_imp_memes", table(
                    "meme_id path source_id has_image width height format n_frames n_bytes "
                    "phash meta", memes.values())):
                store.execute(
                    "INSERT OR IGNORE INTO memes (meme_id, path, source, source_id, has_image, "
                    "width, height, format, n_frames, n_bytes, phash, meta) SELECT meme_id, path, "
                    "?, source_id, has_image, width, height, format, n_frames, n_bytes, phash, "
                    "meta::JSON FROM _imp_memes", [corpus])
        # Merge each meme's metadata patches in file order: round k applies its k-th patch.
        for k in range(max((len(v) for v in patches.values()), default=0)):
            rows = [(mid, ps[k][0], ps[k][1]) for mid, ps in patches.items() if len(ps) > k]
            with store.registered("_imp_patch", table("meme_id meta source_id", rows)):
                store.execute(
                    "UPDATE memes SET meta = json_merge_patch(coalesce(memes.meta, '{}'), "
                    "p.meta::JSON), source_id = coalesce(memes.source_id, p.source_id) "
                    "FROM _imp_patch p WHERE memes.meme_id = p.meme_id")
        if sources:
            with store.registered("_imp_sources", table("meme_id path source_id meta",
                                                         sources.values())):
                store.execute(
                    "INSERT OR IGNORE INTO meme_sources (meme_id, source, path, source_id, meta) "
                    "SELECT meme_id, ?, path, source_id, meta::JSON FROM _imp_sources", [corpus])
        if notes:
            with store.registered("_imp_notes", table(
                    "meme_id description ocr_text intent template tone entities raw",
                    notes.values())):
                store.execute(
                    "INSERT OR REPLACE INTO annotations (meme_id, annotator, prompt_hash, "
                    "schema_hash, description, ocr_text, intent, template, tone, entities, raw, "
                    "run_id) SELECT meme_id, ?, '', '', description, ocr_text, intent, template, "
                    "tone, entities::JSON, raw::JSON, ? FROM _imp_notes", [annotator, import_id])
        # The file is read whole each time, so its rows' old errors are replaced by what it
        # says now (rows are keyed by the resolved path: every spelling names the same row).
        key = str(file.resolve())
        store.execute("DELETE FROM ingest_errors WHERE starts_with(path, ?)", [key + ":"])
        record_problems(store, [(f"import:{file.name}", f"{key}:{line}",
                                 Problem("missing_field", why))
                                for line, why in summary.bad_lines] + image_problems)
        summary.image_problems = len(image_problems)
        summary.memes = len(notes)
        store.execute(
            "INSERT INTO imports (import_id, file, format, annotator, mapping, n_rows, n_imported, "
            "n_failed, software, n_warnings, warnings) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [import_id, key, fmt, annotator, json.dumps(mapping), summary.rows,
             summary.imported, len(summary.bad_lines), json.dumps(software()),
             summary.warnings.total, json.dumps(summary.warnings.items, ensure_ascii=False)])


def _s(v: Any) -> str | None:
    v = _clean(v)
    if v is None:
        return None
    return v if isinstance(v, str) else _joined(v)
