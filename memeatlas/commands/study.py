"""CLI: `memeatlas timestamps`, `trends`, `curate …`, `hierarchy` (thin wrappers)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from memeatlas.commands.common import (
    DbOption,
    ForceOption,
    echo_err,
    echo_summary,
    in_range,
    open_store,
)
from memeatlas.study.trends import CONFIDENCE, WINDOW  # light: numpy/scipy load lazily there

TimeFormatOption = Annotated[str, typer.Option(
    "--time-format", help="How the values are written: iso (ISO 8601; no offset = UTC), epoch "
                          "(Unix seconds), epoch_ms, or a strptime pattern like '%d/%m/%Y'.")]


def _run_or_newest(store, run: str | None) -> str:
    """--run, else the newest cluster run of any kind."""
    from memeatlas.corpus.runs import latest_run
    from memeatlas.errors import NotFoundError

    run_id = run or latest_run(store, kind=None)
    if run_id is None:
        raise NotFoundError("no cluster run; run `memeatlas cluster` first")
    return run_id


def echo_time_summary(s) -> None:
    """The summary block of a timestamp parse (shared with ingest/import-annotations)."""
    # With other keys' timestamps stored, a meme without this key keeps its old one.
    mixed = len(s.sources) > 1
    fields = {"memes": s.n_memes, "timestamps set": s.n_set,
              "no value (kept any earlier)" if mixed else "no value (untimed)": s.n_missing,
              "bad values (skipped)": s.n_bad}
    if s.n_unchanged:
        fields["of them unchanged"] = s.n_unchanged
    if s.replaced:
        fields["replaced (--force)"] = ", ".join(f"{n} from {src}"
                                                 for src, n in sorted(s.replaced.items()))
    if mixed:
        fields["sources now mixed"] = ", ".join(f"{src} {n}" for src, n in s.sources.items())
    echo_summary(f"timestamps from meta key {s.key!r} ({s.time_format})", fields)
    for where, old, new in s.replaced_examples[:3]:
        echo_err(f"  replaced {where}: {old} -> {new}")
    for where, raw, why in s.examples[:5]:
        echo_err(f"  {where}: {raw[:60]!r}: {why}")
    if s.n_bad:
        echo_err("  all of them: memeatlas sql \"SELECT path, detail FROM ingest_errors WHERE "
                 "error = 'bad_timestamp'\"")


def timestamps_cmd(
    from_meta: Annotated[str, typer.Option(
        "--from-meta", help="Metadata key holding each meme's time (a manifest column or an "
                            "import field kept in memes.meta).")],
    time_format: TimeFormatOption = "iso",
    strict: Annotated[bool, typer.Option(
        "--strict", help="Stop at the first value that does not parse (nothing written) "
                         "instead of skipping it with a counted warning.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace timestamps set before from another key, format or value "
                        "(counted and named in the summary).")] = False,
    db: DbOption = None,
) -> None:
    """Set meme timestamps from a metadata key you name (never guessed)."""
    from memeatlas.study.times import set_timestamps

    with open_store(db) as store:
        s = set_timestamps(store, from_meta, time_format=time_format, strict=strict,
                           force=force)
    echo_time_summary(s)


def trends_cmd(
    run: Annotated[str | None, typer.Option(
        "--run", help="Cluster run [default: the newest].")] = None,
    by: Annotated[str, typer.Option("--by", help="Period: day, week (ISO, from Monday) or "
                                                 "month.")] = "week",
    window: Annotated[int | None, typer.Option(
        "--window", callback=in_range(WINDOW), help="Compare the first N with the last N periods [default: the first "
                         "and the last half].")] = None,
    confidence: Annotated[float, typer.Option(
        "--confidence", callback=in_range(CONFIDENCE), help="Level of the Δshare interval; about 1 - level of steady clusters "
                             "are flagged by chance, so with k clusters consider 1 - 0.05/k.")] = 0.95,
    level: Annotated[int | None, typer.Option(
        "--level", help="Group clusters by their ancestor at this depth of the run's "
                        "hierarchy (run `memeatlas hierarchy` first) [default: clusters].")] = None,
    force: ForceOption = False,
    db: DbOption = None,
) -> None:
    """Counts and shares per cluster per period; flags rising and fading clusters."""
    from memeatlas.study.trends import trends

    with open_store(db) as store:
        run_id = _run_or_newest(store, run)
        s = trends(store, run_id, period=by, window=window, confidence=confidence, level=level,
                   force=force)
        labels = dict(store.fetchall("SELECT cluster, label FROM latest_cluster_labels WHERE run_id = ?",
                                     [run_id]))
        if level is not None:
            labels.update(store.fetchall("SELECT node, label FROM latest_cluster_tree WHERE run_id = ?",
                                         [run_id]))
        flags = store.fetchall(
            "SELECT cluster, trend, delta, ci_low, ci_high FROM cluster_trend_flags WHERE "
            "trend_id = ? AND trend <> 'steady' AND cluster >= 0 ORDER BY delta DESC",
            [s.trend_id])
    echo_summary(f"trends of {s.run_id} by {s.period}", {
        "memes": s.n_memes, "timed": s.n_timed, "untimed (counted apart)": s.n_untimed,
        "periods": s.n_periods, "from": s.first or "-", "to": s.last or "-",
        "rising": len(s.rising), "fading": len(s.fading),
        **({"skipped": "already computed (--force to redo)"} if s.skipped else {}),
        **({"note": s.note} if s.note else {})})
    for c, trend, d, lo, hi in flags:
        echo_err(f"  {trend:<7} {'node' if level is not None else 'cluster'} {c:>4}  Δshare {d:+.3f} [{lo:+.3f}, {hi:+.3f}]  "
                 f"{labels.get(c) or ''}")
    typer.echo(s.trend_id)


def _ints(text: str, option: str) -> list[int]:
    from memeatlas.errors import InputError

    try:
        out = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"{option} expects comma-separated cluster numbers, e.g. 3,7; "
                         f"got {text!r}") from None
    if not out:
        raise InputError(f"{option} names no cluster")
    return out


RunOption = Annotated[str, typer.Option("--run", help="The run to edit (it is never changed; "
                                                      "the edit writes a new run).")]
EditorOption = Annotated[str | None, typer.Option(
    "--editor", envvar="MEMEATLAS_EDITOR", help="Who made the edit, for the edit log "
                                                "[default: the login name].")]
NoteOption = Annotated[str | None, typer.Option("--note", help="Why, for the edit log.")]
NoRelabelOption = Annotated[bool, typer.Option(
    "--no-relabel", help="Do not recompute keywords of touched clusters.")]


def _curate(db, run_id: str, edit: dict, editor, note, no_relabel, force) -> None:
    from memeatlas.study.curate import curate

    if note:
        edit["note"] = note
    with open_store(db) as store:
        s = curate(store, run_id, [edit], editor=editor, relabel=not no_relabel, force=force)
    _echo_curate(s)


def _echo_curate(s, replay: bool = False) -> None:
    echo_summary(f"curated run {s.run_id} (parent {s.parent_run})", {
        "edits": s.n_edits, "memes changed": s.n_changed, "clusters": s.n_clusters,
        "touched clusters": ", ".join(map(str, s.touched)) or "-",
        "keywords recomputed": "yes" if s.relabelled else "no",
        **({"reproduced": "not checked (the file records no result)" if s.reproduced is None
            else "yes" if s.reproduced else
            f"NO: kept as run {s.run_id}, which does not reproduce the file"}
           if replay else {}),
        **({"skipped": "already stored (--force to redo)"} if s.skipped else {}),
        **({"completed": "labels an interrupted earlier run left out"} if s.completed else {}),
        "seconds": s.seconds})
    typer.echo(s.run_id)


def merge_cmd(run: RunOption,
              clusters: Annotated[str, typer.Option("--clusters", help="Clusters to merge, "
                                                    "comma-separated, e.g. 3,7.")],
              into: Annotated[int | None, typer.Option(
                  "--into", help="Number the merged cluster keeps [default: the smallest].")] = None,
              editor: EditorOption = None, note: NoteOption = None,
              no_relabel: NoRelabelOption = False, force: ForceOption = False,
              db: DbOption = None) -> None:
    """Merge clusters into one (a new run)."""
    edit = {"op": "merge", "clusters": _ints(clusters, "--clusters")}
    if into is not None:
        edit["into"] = into
    _curate(db, run, edit, editor, note, no_relabel, force)


def split_cmd(run: RunOption,
              cluster: Annotated[int, typer.Option("--cluster", help="Cluster to split.")],
              k: Annotated[int, typer.Option("--k", help="Parts (k-means on the members' "
                                                         "vectors in the run's space).")] = 2,
              seed: Annotated[int, typer.Option("--seed", help="k-means seed.")] = 0,
              editor: EditorOption = None, note: NoteOption = None,
              no_relabel: NoRelabelOption = False, force: ForceOption = False,
              db: DbOption = None) -> None:
    """Split a cluster into k by re-clustering its members (a new run)."""
    _curate(db, run, {"op": "split", "cluster": cluster, "k": k, "seed": seed}, editor, note,
            no_relabel, force)


def move_cmd(run: RunOption,
             to: Annotated[int, typer.Option("--to", help="Target cluster (-1: noise).")],
             meme: Annotated[list[str] | None, typer.Option(
                 "--meme", help="A meme_id to move; repeat the option.")] = None,
             memes_file: Annotated[Path | None, typer.Option(
                 "--memes-file", help="CSV with a meme_id column, e.g. a selection "
                                      "downloaded from the report.")] = None,
             editor: EditorOption = None, note: NoteOption = None,
             no_relabel: NoRelabelOption = False, force: ForceOption = False,
             db: DbOption = None) -> None:
    """Move memes to another cluster (a new run)."""
    from memeatlas.errors import InputError
    from memeatlas.study.curate import memes_from_csv

    ids = list(meme or [])
    if memes_file is not None:
        ids += memes_from_csv(memes_file)
    if not ids:
        raise InputError("name the memes to move: --meme ID (repeat) or --memes-file FILE.csv")
    _curate(db, run, {"op": "move", "memes": ids, "to": to}, editor, note, no_relabel, force)


def rename_cmd(run: RunOption,
               cluster: Annotated[int, typer.Option("--cluster", help="Cluster to name.")],
               name: Annotated[str, typer.Option("--name", help="Its new label.")],
               editor: EditorOption = None, note: NoteOption = None,
               force: ForceOption = False, db: DbOption = None) -> None:
    """Give a cluster a label of your own (a new run)."""
    _curate(db, run, {"op": "rename", "cluster": cluster, "name": name}, editor, note, True,
            force)


def discard_cmd(run: RunOption,
                clusters: Annotated[str, typer.Option(
                    "--clusters", help="Clusters whose members become noise, e.g. 4,9.")],
                editor: EditorOption = None, note: NoteOption = None,
                no_relabel: NoRelabelOption = False, force: ForceOption = False,
                db: DbOption = None) -> None:
    """Send clusters to noise (-1) (a new run)."""
    _curate(db, run, {"op": "discard", "clusters": _ints(clusters, "--clusters")}, editor,
            note, no_relabel, force)


def apply_cmd(file: Annotated[Path, typer.Argument(help="Edit file (YAML or JSON).")],
              run: Annotated[str | None, typer.Option(
                  "--run", help="Run to apply it to [default: the file's base run, found by "
                                "id or by fingerprint].")] = None,
              editor: EditorOption = None, no_relabel: NoRelabelOption = False,
              keep_mismatch: Annotated[bool, typer.Option(
                  "--keep-mismatch", help="Keep the new run even when it does not reproduce "
                                          "the file's result (its name says so) [default: "
                                          "store nothing].")] = False,
              unchecked: Annotated[bool, typer.Option(
                  "--unchecked", help="Apply a file that records no result (hand-written); "
                                      "without it such a file, e.g. one cut short, is "
                                      "refused.")] = False,
              force: ForceOption = False, db: DbOption = None) -> None:
    """Replay an edit file as one new curated run; checks it reproduces the recorded result."""
    from memeatlas.study.curate import apply_file

    with open_store(db) as store:
        s = apply_file(store, file, run_id=run, editor=editor, relabel=not no_relabel,
                       force=force, keep_mismatch=keep_mismatch, unchecked=unchecked)
    _echo_curate(s, replay=True)


def export_cmd(run: Annotated[str, typer.Option("--run", help="A curated run.")],
               out: Annotated[Path | None, typer.Option(
                   "--out", "-o", help="Edit file to write (.json for JSON, else YAML) "
                                       "[default: YAML to stdout].")] = None,
               db: DbOption = None) -> None:
    """Write the edit file that reproduces a curated run from its base run."""
    from memeatlas.study.curate import export_edits, write_edit_file

    with open_store(db, read_only=True) as store:
        doc = export_edits(store, run)
    if out is None:
        import yaml

        typer.echo(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100,
                              default_flow_style=None), nl=False)
    else:
        write_edit_file(doc, out)
        echo_err(f"wrote {len(doc['edits'])} edit(s) of {run} to {out}")


def hierarchy_cmd(
    run: Annotated[str | None, typer.Option(
        "--run", help="Cluster run [default: the newest].")] = None,
    method: Annotated[str, typer.Option(
        "--method", help="auto (HDBSCAN's condensed tree where the run has one, else Ward on "
                         "cluster centroids), condensed_tree, or centroid_ward.")] = "auto",
    force: ForceOption = False,
    db: DbOption = None,
) -> None:
    """Build a run's cluster tree (parent/child/level rows with keywords per node)."""
    from memeatlas.study.hierarchy import hierarchy

    with open_store(db) as store:
        run_id = _run_or_newest(store, run)
        s = hierarchy(store, run_id, method=method, force=force)
    echo_summary(f"hierarchy of {s.run_id}", {
        "method": s.method, "clusters (leaves)": s.n_leaves, "inner nodes": s.n_inner,
        "depth": s.depth,
        "top split": " | ".join(",".join(map(str, g[:12])) + ("…" if len(g) > 12 else "")
                                for g in s.top_split),
        **({"skipped": "already built (--force to rebuild)"} if s.skipped else {}),
        "seconds": s.seconds})
    typer.echo(s.run_id)


def register(app: typer.Typer) -> None:
    """Add `timestamps`, `trends`, `curate` and `hierarchy` to the root app."""
    app.command("timestamps")(timestamps_cmd)
    app.command("trends")(trends_cmd)
    app.command("hierarchy")(hierarchy_cmd)
    cur = typer.Typer(help="Hand edits of a clustering, each written as a new run whose parent "
                           "is the edited one (with an edit log).", no_args_is_help=True,
                      rich_markup_mode=None)
    for name, fn in (("merge", merge_cmd), ("split", split_cmd), ("move", move_cmd),
                     ("rename", rename_cmd), ("discard", discard_cmd), ("apply", apply_cmd),
                     ("export", export_cmd)):
        cur.command(name)(fn)
    app.add_typer(cur, name="curate")
