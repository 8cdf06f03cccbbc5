"""`memeatlas ingest` and `memeatlas import-annotations`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from memeatlas.commands.common import DbOption, echo_err, echo_summary, open_store, parse_kv
from memeatlas.ingest.limits import DEFAULT_MAX_IMAGE_PIXELS


def ingest(
    paths: Annotated[list[str] | None, typer.Argument(
        help="Folders, image files or glob patterns (quote globs: 'memes/*.png').",
        show_default=False)] = None,
    recursive: Annotated[bool, typer.Option(
        "--recursive", "-r", help="Descend into sub-folders of the folders given.")] = False,
    manifest: Annotated[Path | None, typer.Option(
        "--manifest", "-m", help="CSV/TSV/JSONL manifest: a path column plus any metadata "
        "columns (kept as JSON in memes.meta). Relative paths are read from the manifest's "
        "folder.")] = None,
    path_column: Annotated[str | None, typer.Option(
        "--path-column", help="Manifest column holding the image path [default: path].",
        show_default=False)] = None,
    id_column: Annotated[str | None, typer.Option(
        "--id-column", help="Manifest column with the source's own id (stored as "
        "memes.source_id, so ratings can name memes by it).")] = None,
    max_image_pixels: Annotated[int, typer.Option(
        "--max-image-pixels", help="Refuse images with more pixels than this "
        "(decompression-bomb guard).")] = DEFAULT_MAX_IMAGE_PIXELS,
    workers: Annotated[int | None, typer.Option(
        "--workers", help="Threads reading and hashing files [default: 2 per core, max 4].")] = None,
    timestamp_column: Annotated[str | None, typer.Option(
        "--timestamp-column", help="Manifest column with each meme's time (see `memeatlas "
        "timestamps`); without it no timestamp is set.")] = None,
    time_format: Annotated[str | None, typer.Option(
        "--time-format", help="With --timestamp-column: iso, epoch, epoch_ms or a strptime "
        "pattern [default: iso].", show_default=False)] = None,
    db: DbOption = None,
) -> None:
    """Add images (folders, globs, files, manifest) with content-hash ids and pHashes."""
    from memeatlas.errors import InputError
    from memeatlas.ingest import ingest_paths

    if not paths and manifest is None:
        raise InputError("give at least one folder, file or glob, or --manifest FILE")
    if timestamp_column and manifest is None:
        raise InputError("--timestamp-column names a manifest column; give --manifest FILE too "
                         "(or set times later with `memeatlas timestamps --from-meta KEY`)")
    # An option that would change nothing is refused, never ignored.
    for name, given in (("--path-column", path_column), ("--id-column", id_column)):
        if given is not None and manifest is None:
            raise InputError(f"{name} names a manifest column; give --manifest FILE too, or "
                             f"drop {name}")
    if time_format is not None and not timestamp_column:
        raise InputError("--time-format says how to read --timestamp-column; give "
                         "--timestamp-column COLUMN too, or drop --time-format")
    path_column, time_format = path_column or "path", time_format or "iso"
    with open_store(db, create=True) as store:
        s = ingest_paths(store, paths or [], recursive=recursive, manifest=manifest,
                         path_column=path_column, id_column=id_column,
                         max_image_pixels=max_image_pixels, workers=workers)
        times = _timestamps(store, timestamp_column, time_format)
    fields = {"added": s.added, "already present": s.present, "failed": s.failed}
    for code, n in sorted(s.errors.items()):
        fields[f"  {code}"] = n
    if s.ignored:
        fields["ignored (not images)"] = s.ignored
    for line in s.warnings.lines():
        fields[f"warning {line.split(':', 1)[0]}"] = line.split(": ", 1)[1]
    fields["images/s"] = round(s.images_per_s, 1)
    echo_summary(f"ingest: {s.seen} files in {s.seconds:.1f} s", fields)
    if s.failed:
        echo_err("  see why: memeatlas sql \"SELECT path, error, detail FROM ingest_errors\"")
    _echo_times(times)


def _timestamps(store, key: str | None, time_format: str):
    """Timestamps from the named manifest column / import field (memeatlas.study.times).

    A problem (e.g. no such column) is returned, not raised, so the ingest summary still
    prints before the error; what was ingested stays stored.
    """
    if not key:
        return None
    from memeatlas.errors import InputError
    from memeatlas.study.times import set_timestamps

    try:
        return set_timestamps(store, key, time_format=time_format)
    except InputError as exc:
        return exc


def _echo_times(times) -> None:
    if isinstance(times, Exception):
        raise times
    if times is not None:
        from memeatlas.commands.study import echo_time_summary

        echo_time_summary(times)


def import_annotations(
    file: Annotated[Path, typer.Argument(help="The corpus file (MemeCap JSON, JSONL or CSV).")],
    fmt: Annotated[str, typer.Option(
        "--format", "-f", help="memecap | jsonl | csv.")] = "memecap",
    mapping: Annotated[list[str] | None, typer.Option(
        "--map", help="FIELD=COLUMN for jsonl/csv; fields: description, ocr_text, intent, "
        "template, tone, entities (a JSON list). Repeat the option.")] = None,
    id_field: Annotated[str | None, typer.Option(
        "--id-field", help="Column with each row's own id (required for jsonl/csv; MemeCap: "
        "post_id, else csv_id).")] = None,
    corpus: Annotated[str | None, typer.Option(
        "--corpus", help="Name of the corpus (id namespace; annotator becomes human:<corpus>) "
        "[default: memecap, or the file name].")] = None,
    annotator: Annotated[str | None, typer.Option(
        "--annotator", help="Annotator name to record [default: human:<corpus>].")] = None,
    image_field: Annotated[str | None, typer.Option(
        "--image-field", help="jsonl/csv column with an image path; rows whose image exists "
        "are attached to the image's meme.")] = None,
    timestamp_field: Annotated[str | None, typer.Option(
        "--timestamp-field", help="Field with each row's time (kept in memes.meta; see "
        "`memeatlas timestamps`); without it no timestamp is set.")] = None,
    time_format: Annotated[str | None, typer.Option(
        "--time-format", help="With --timestamp-field: iso, epoch, epoch_ms or a strptime "
        "pattern [default: iso].", show_default=False)] = None,
    images: Annotated[Path | None, typer.Option(
        "--images", help="Folder holding the corpus images (MemeCap: img_fname is looked up "
        "here; jsonl/csv: relative --image-field paths). Without it, memes are stored without "
        "images.")] = None,
    db: DbOption = None,
) -> None:
    """Import an existing annotated corpus (MemeCap, JSONL, CSV) as human annotations.

    An option the chosen format does not use is an error, never ignored.
    """
    from memeatlas.errors import InputError
    from memeatlas.ingest import import_annotations as run_import

    if time_format is not None and not timestamp_field:
        raise InputError("--time-format says how to read --timestamp-field; give "
                         "--timestamp-field FIELD too, or drop --time-format")
    time_format = time_format or "iso"
    with open_store(db, create=True) as store:
        s = run_import(store, file, fmt, mapping=parse_kv(mapping, "--map"), id_field=id_field,
                       corpus=corpus, annotator=annotator, image_field=image_field,
                       images=images)
        times = _timestamps(store, timestamp_field, time_format)
    echo_summary(f"import-annotations: {s.rows} rows from {file} as {s.annotator}", {
        "imported": s.imported, "memes": s.memes, "with image": s.with_image, "failed": s.failed,
        "entities": s.entities,
        **({"metaphor pairs without meaning (not entities)": s.pairs_without_meaning}
           if s.pairs_without_meaning else {}),
        **({"image problems (see ingest_errors)": s.image_problems} if s.image_problems else {}),
        **{f"warning {ln.split(':', 1)[0]}": ln.split(": ", 1)[1] for ln in s.warnings.lines()}})
    for line, why in s.bad_lines[:20]:
        echo_err(f"  {file}:{line}: {why}")
    if len(s.bad_lines) > 20:
        echo_err(f"  … and {len(s.bad_lines) - 20} more (table ingest_errors)")
    _echo_times(times)


def register(app: typer.Typer) -> None:
    """Add the ingest commands to the root app."""
    app.command("ingest")(ingest)
    app.command("import-annotations")(import_annotations)
