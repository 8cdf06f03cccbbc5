"""`memeatlas ingest`: files in, `memes` / `meme_sources` / `ingest_errors` rows out."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from memeatlas import progress
from memeatlas.ingest.names import is_storable, readable
from memeatlas.ingest.notices import Notices
from memeatlas.ingest.scan import Candidate, ScanResult, scan_manifest, scan_paths
from memeatlas.ingest.validate import DEFAULT_MAX_IMAGE_PIXELS, ImageInfo, Problem, inspect_file
from memeatlas.store import Store

BATCH = 256


@dataclass
class IngestSummary:
    """Counts of one ingest: added, already present, failed (by reason), ignored non-images."""

    added: int = 0
    present: int = 0
    failed: int = 0
    ignored: int = 0
    seconds: float = 0.0
    errors: Counter = field(default_factory=Counter)
    warnings: Notices = field(default_factory=Notices)

    def merge(self, other: IngestSummary) -> None:
        """Add a batch's counts."""
        self.added += other.added
        self.present += other.present
        self.failed += other.failed
        self.errors.update(other.errors)

    @property
    def seen(self) -> int:
        return self.added + self.present + self.failed

    @property
    def images_per_s(self) -> float:
        return self.seen / self.seconds if self.seconds > 0 else 0.0


def ingest_paths(store: Store, paths: list[str | Path] | None = None, *, recursive: bool = False,
                 manifest: str | Path | None = None, path_column: str = "path",
                 id_column: str | None = None,
                 max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
                 workers: int | None = None) -> IngestSummary:
    """Ingest images from folders/globs/files and/or a CSV/JSONL manifest.

    Bad files never stop the run: each lands in `ingest_errors` with a reason.
    Re-ingesting the same bytes is a no-op (the meme id is the SHA-256 of the bytes);
    the same bytes under a new path add a `meme_sources` row. Manifest columns
    other than the path are merged into `memes.meta`.
    """
    t0 = time.perf_counter()
    summary = IngestSummary()
    scans: list[ScanResult] = []
    if paths:
        scans.append(scan_paths(list(paths), recursive=recursive))
    if manifest is not None:
        scans.append(scan_manifest(Path(manifest), path_column=path_column, id_column=id_column))
    summary.ignored = sum(s.ignored for s in scans)
    for s in scans:
        summary.warnings.merge(s.warnings)

    # Problems known before reading any file.
    early: list[tuple[str, str, Problem]] = []
    candidates: list[Candidate] = []
    for c in (c for s in scans for c in s.candidates):
        if is_storable(str(c.path)):
            candidates.append(c)
        else:  # the store holds UTF-8 text only: named readably, never sinking its batch
            early.append((c.source, c.origin, Problem(
                "bad_filename", f"file name is not valid UTF-8 ({readable(str(c.path))}); "
                "rename it (e.g. with convmv or mv) and ingest again")))
    for s in scans:
        for c in s.missing:
            early.append((c.source, c.origin, Problem(
                "missing", "no such file; check the path" if c.source == "folder"
                else f"manifest row points at {c.path}, which does not exist")))
        for origin, detail in s.bad_rows:
            early.append(("manifest", origin, Problem("missing_field", detail)))
    stale = [str(s.manifest) + ":" for s in scans if s.manifest is not None]
    if early or stale:
        with store.transaction():
            # The manifest is read whole each time, so what it said before is replaced by
            # what it says now: fixed or removed rows leave no error behind.
            for prefix in stale:
                store.execute("DELETE FROM ingest_errors WHERE source = 'manifest' AND "
                              "starts_with(path, ?)", [prefix])
            record_problems(store, early)
        summary.failed += len(early)
        summary.errors.update(p.code for _, _, p in early)

    workers = workers or min(4, (os.cpu_count() or 1) * 2)
    bar = progress.bar(total=len(candidates), desc="ingest", unit="img")
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(candidates), BATCH):
            chunk = candidates[start:start + BATCH]
            results = list(pool.map(lambda c: inspect_file(c.path, max_image_pixels), chunk))
            _write_isolated(store, chunk, results, summary)
            bar.update(len(chunk))
    bar.close()
    summary.seconds = time.perf_counter() - t0
    return summary


def record_problems(store: Store, problems: list[tuple[str, str, Problem]]) -> None:
    """Store (source, origin, problem) rows in `ingest_errors`; call inside a transaction.

    One current error per file or row: a re-run replaces, never piles up duplicates
    (the last problem named for an origin wins). Written in bulk, not row by row.
    """
    latest = {readable(origin): (readable(source), readable(origin), p.code, readable(p.detail))
              for source, origin, p in problems}
    if not latest:
        return
    with store.registered("_err_paths", pa.table({"path": list(latest)})):
        store.execute("DELETE FROM ingest_errors WHERE path IN (SELECT path FROM _err_paths)")
    store.insert_rows("ingest_errors", ("source", "path", "error", "detail"), list(latest.values()))


def _write_isolated(store: Store, chunk: list[Candidate], results: list[ImageInfo | Problem],
                    summary: IngestSummary) -> None:
    """Write a batch in one transaction; if it fails, write item by item, so no item can
    lose the others: one that still cannot be stored is recorded as `write_failed`."""
    try:
        summary.merge(_write_batch(store, chunk, results))
        return
    except Exception:
        if len(chunk) == 1:
            raise
    for c, r in zip(chunk, results, strict=True):
        try:
            summary.merge(_write_batch(store, [c], [r]))
        except Exception as exc:
            problem = Problem("write_failed", f"could not be stored ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}); please report "
                              "this with the file")
            summary.merge(_write_batch(store, [c], [problem]))


def _write_batch(store: Store, chunk: list[Candidate], results: list[ImageInfo | Problem]
                 ) -> IngestSummary:
    """One transaction for the batch; returns its counts (nothing counted if it fails)."""
    summary = IngestSummary()
    good = [(c, r) for c, r in zip(chunk, results, strict=False) if isinstance(r, ImageInfo)]
    bad = [(c, r) for c, r in zip(chunk, results, strict=False) if isinstance(r, Problem)]
    ids = list({r.meme_id for _, r in good})
    with store.transaction():
        existing: set[str] = set()
        if ids:
            with store.registered("_ids", pa.table({"meme_id": ids})):
                existing = {row[0] for row in store.fetchall(
                    "SELECT m.meme_id FROM memes m JOIN _ids USING (meme_id)")}
        new_rows: dict[str, tuple[Candidate, ImageInfo]] = {}
        for c, info in good:
            if info.meme_id in existing or info.meme_id in new_rows:
                summary.present += 1
            else:
                new_rows[info.meme_id] = (c, info)
                summary.added += 1
        if new_rows:
            cols = {k: [] for k in ("meme_id", "path", "source", "source_id", "width", "height",
                                    "format", "n_frames", "n_bytes", "phash", "meta")}
            for mid, (c, info) in new_rows.items():
                cols["meme_id"].append(mid)
                cols["path"].append(str(c.path))
                cols["source"].append(c.source)
                cols["source_id"].append(c.source_id)
                for k in ("width", "height", "format", "n_frames", "n_bytes", "phash"):
                    cols[k].append(getattr(info, k))
                cols["meta"].append(json.dumps(c.meta) if c.meta else None)
            with store.registered("_new", pa.table(cols)):
                store.execute(
                    "INSERT INTO memes (meme_id, path, source, source_id, has_image, width, "
                    "height, format, n_frames, n_bytes, phash, meta) SELECT meme_id, path, source, "
                    "source_id, true, width, height, format, n_frames, n_bytes, phash, meta::JSON "
                    "FROM _new")
        for c, info in good:
            first = new_rows.get(info.meme_id)
            if (c.meta or c.source_id) and (first is None or first[0] is not c):
                # Manifest metadata for a meme already present (e.g. ingested from a folder
                # first, or the same bytes earlier in this batch) is merged in, so a manifest
                # can annotate an existing corpus whatever the batch boundaries.
                store.execute(
                    "UPDATE memes SET meta = json_merge_patch(coalesce(meta, '{}'), ?::JSON), "
                    "source_id = coalesce(source_id, ?) WHERE meme_id = ?",
                    [json.dumps(c.meta), c.source_id, info.meme_id])
        if good:
            src = pa.table({
                "meme_id": [info.meme_id for _, info in good],
                "source": [c.source for c, _ in good],
                "path": [str(c.path) for c, _ in good],
                "source_id": [c.source_id for c, _ in good],
                "meta": [json.dumps(c.meta) if c.meta else None for c, _ in good],
            })
            with store.registered("_src", src):
                store.execute(
                    "INSERT OR IGNORE INTO meme_sources (meme_id, source, path, source_id, meta) "
                    "SELECT DISTINCT ON (meme_id, source, path) meme_id, source, path, source_id, "
                    "meta::JSON FROM _src")
            with store.registered("_ok", pa.table({"path": [c.origin for c, _ in good]})):
                store.execute("DELETE FROM ingest_errors WHERE path IN (SELECT path FROM _ok)")
        record_problems(store, [(c.source, c.origin, p) for c, p in bad])
    summary.failed += len(bad)
    summary.errors.update(p.code for _, p in bad)
    return summary
