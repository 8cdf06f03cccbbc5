"""`memeatlas evaluate …`: pairs, sheet, import-ratings, agreement, quality, labels, sweep, label-task, rate.

Tables go to stdout (`--format table|csv|json`); notes and summaries go to stderr.
"""

from __future__ import annotations

import sys
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
from memeatlas.ranges import RESAMPLES

evaluate_app = typer.Typer(
    help="Score clusterings: human pair ratings (cluster quality), coder agreement, known labels.",
    no_args_is_help=True, rich_markup_mode=None)
label_task_app = typer.Typer(
    help="Label interpretability task: export items for coders, score their answers.",
    no_args_is_help=True, rich_markup_mode=None)

FormatOption = Annotated[str, typer.Option("--format", "-f", help="Output: table, csv or json (stdout).")]
RunsOption = Annotated[str, typer.Option(
    "--runs", help="Clustering runs, comma-separated; shell patterns (text-*) and 'latest' work.")]
PairSetOption = Annotated[str, typer.Option("--pair-set", help="Name of the pair set.")]
SeedOption = Annotated[int, typer.Option("--seed", help="Random seed (same seed, same result).")]
NoiseOption = Annotated[str, typer.Option(
    "--noise", help="Memes HDBSCAN left as noise: 'assigned' (those assigned by the run's floor "
                    "in their cluster, the rest apart; default), 'apart' (core members only), "
                    "'drop' (leave noise pairs out) or 'cluster' (noise as one cluster).")]
DimensionsOption = Annotated[str, typer.Option(
    "--dimensions", help="Rating dimensions, comma-separated (one sheet column each).")]


def _out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _notes(notes: list[str]) -> None:
    for n in notes:
        echo_err(f"note: {n}")


@evaluate_app.command("pairs")
def pairs_cmd(
    runs: RunsOption,
    pair_set: PairSetOption,
    n: Annotated[int, typer.Option("--n", help="Number of pairs to sample.")] = 500,
    strategy: Annotated[str, typer.Option(
        "--strategy", help="'stratified' (equal shares per together/apart pattern across the runs) "
                           "or 'random' (uniform pairs).")] = "stratified",
    seed: SeedOption = 0,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Write the rating sheet CSV here.")] = None,
    dimensions: DimensionsOption = "connotative,denotative",
    noise: Annotated[str, typer.Option(
        "--noise", help="For strata: noise points 'apart' (default) or one 'cluster'.")] = "apart",
    fmt: FormatOption = "table",
    force: ForceOption = False,
    db: DbOption = None,
) -> None:
    """Sample meme pairs for human rating and (with -o) write the rating sheet."""
    from memeatlas.evaluate.common import parse_list, render
    from memeatlas.evaluate.pairs import sample_pairs

    with open_store(db) as store:
        s = sample_pairs(store, runs, n=n, strategy=strategy, seed=seed, pair_set=pair_set, noise=noise,
                         force=force, sheet=out, dimensions=parse_list(dimensions))
    _out(render(s.rows(), ("stratum", "population", "sampled"), fmt))
    echo_summary(f"pair set {s.pair_set}", {
        "strategy": s.strategy, "runs": ", ".join(s.runs), "pairs": s.n_pairs, "memes in all runs": s.n_memes,
        "memes not in every run": s.n_memes_not_in_all_runs, "seed": s.seed,
        "sheet": str(s.sheet) if s.sheet else "(none; pass -o sheet.csv or use `evaluate sheet`)"})
    if s.strategy == "stratified":
        echo_err("strata: T/A = together/apart in each run, in the order of --runs")


@evaluate_app.command("sheet")
def sheet_cmd(
    pair_set: PairSetOption,
    out: Annotated[Path, typer.Option("--out", "-o", help="Rating sheet CSV to write.")],
    dimensions: DimensionsOption = "connotative,denotative",
    db: DbOption = None,
) -> None:
    """Write (again) the rating sheet of a pair set."""
    from memeatlas.evaluate.common import parse_list
    from memeatlas.evaluate.pairs import write_sheet

    with open_store(db) as store:
        path = write_sheet(store, pair_set, out, parse_list(dimensions))
    echo_err(f"rating sheet written to {path}")


@evaluate_app.command("import-ratings")
def import_ratings_cmd(
    file: Annotated[Path, typer.Argument(help="Ratings CSV: long (pair_id, coder, dimension, rating) or "
                                              "wide (one column per dimension or <coder>:<dimension>).")],
    pair_set: PairSetOption,
    coder: Annotated[str | None, typer.Option(
        "--coder", help="Coder of a wide file with plain dimension columns (e.g. a filled sheet).")] = None,
    dimension: Annotated[str | None, typer.Option(
        "--dimension", help="Dimension of a long file that has no dimension column.")] = None,
    scale: Annotated[str | None, typer.Option(
        "--scale", help="Scale of the file as LOW..HIGH (e.g. 0..5); mapped linearly onto 1..3.")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace ratings already stored for the same pair, coder and dimension.")] = False,
    db: DbOption = None,
) -> None:
    """Import human pair ratings; any bad row aborts the whole file (errors list row numbers)."""
    from memeatlas.evaluate.ratings import import_ratings

    with open_store(db) as store:
        s = import_ratings(store, file, pair_set=pair_set, coder=coder, scale=scale, force=force,
                           dimension=dimension)
    echo_err(f"scale: {s.scale_note}")
    echo_summary(f"imported {s.file} into pair set {s.pair_set}", {
        "layout": s.layout, "ratings": s.n_ratings, "pairs": s.n_pairs, "coders": ", ".join(s.coders),
        "dimensions": ", ".join(s.dimensions), "blank cells skipped": s.n_blank,
        "pair set created": s.created_pair_set, "new pairs": s.n_new_pairs, "replaced": s.n_replaced})


@evaluate_app.command("agreement")
def agreement_cmd(
    pair_set: PairSetOption,
    dimension: Annotated[str | None, typer.Option(
        "--dimension", help="Only these dimensions (comma-separated); default all.")] = None,
    level: Annotated[str, typer.Option(
        "--level", help="Krippendorff level: ordinal (default), interval, nominal, ratio.")] = "ordinal",
    bootstrap: Annotated[int, typer.Option("--bootstrap", callback=in_range(RESAMPLES),
                                                   help="Bootstrap resamples of pairs for the CI (0: none).")] = 1000,
    seed: SeedOption = 0,
    fmt: FormatOption = "table",
    db: DbOption = None,
) -> None:
    """Krippendorff's alpha per rating dimension, with coders, pairs and a bootstrap CI."""
    from memeatlas.evaluate.agreement import agreement
    from memeatlas.evaluate.common import parse_list, render

    with open_store(db) as store:
        r = agreement(store, pair_set, dimensions=parse_list(dimension) or None, level=level,
                      bootstrap=bootstrap, seed=seed)
    _out(render(r.rows, r.columns, fmt))
    _notes(r.notes)
    echo_err(f"Krippendorff's alpha ({r.level}); CI: percentile bootstrap over pairs, B={bootstrap}; "
             f"stored as {r.eval_id}")


@evaluate_app.command("quality")
def quality_cmd(
    runs: RunsOption,
    pair_set: PairSetOption,
    dimension: Annotated[str | None, typer.Option("--dimension", help="Only this dimension; default all.")] = None,
    bootstrap: Annotated[int, typer.Option("--bootstrap", callback=in_range(RESAMPLES),
                                                   help="Bootstrap resamples for the 95 % CIs.")] = 2000,
    seed: SeedOption = 0,
    noise: NoiseOption = "assigned",
    weights: Annotated[str, typer.Option(
        "--weights", help="'auto' (design weights for stratified sets), 'design' or 'none'.")] = "auto",
    by_coder: Annotated[bool, typer.Option(
        "--by-coder", help="Also score each coder's ratings alone (cq_coder, delta_cq_coder rows).")] = False,
    fmt: FormatOption = "table",
    db: DbOption = None,
) -> None:
    """Grimmer & King cluster quality per run and ΔCQ per pair of runs, with bootstrap CIs."""
    from memeatlas.evaluate.common import render
    from memeatlas.evaluate.quality import quality

    with open_store(db) as store:
        r = quality(store, runs, pair_set, dimension=dimension, bootstrap=bootstrap, seed=seed, noise=noise,
                    weights=weights, by_coder=by_coder)
    _out(render(r.rows, r.columns, fmt))
    _notes(r.notes)
    echo_err(f"stored as {r.eval_id}")


@evaluate_app.command("labels")
def labels_cmd(
    runs: RunsOption,
    truth: Annotated[str, typer.Option(
        "--truth", help="Known categories: a memes column, a meta key (manifest column), "
                        "annotation.<column>, or SQL returning (meme_id, label).")],
    noise: Annotated[str, typer.Option(
        "--noise", help="In scope 'all': memes assigned from noise in their cluster and "
                        "the rest as singletons ('assigned', default), all noise as "
                        "'singletons' or as one 'cluster'.")] = "assigned",
    fmt: FormatOption = "table",
    db: DbOption = None,
) -> None:
    """ARI, NMI, V-measure and purity against known categories, with and without noise points."""
    from memeatlas.evaluate.common import render
    from memeatlas.evaluate.external import labels

    with open_store(db) as store:
        r = labels(store, runs, truth, noise=noise)
    _out(render(r.rows, r.columns, fmt))
    _notes(r.notes)
    echo_err(f"stored as {r.eval_id}")


@evaluate_app.command("sweep")
def sweep_cmd(
    runs: RunsOption,
    pair_set: PairSetOption,
    param: Annotated[str, typer.Option("--param", help="Run parameter on the x axis.")] = "min_cluster_size",
    series: Annotated[str, typer.Option(
        "--series", help="What makes one line: a cluster_runs column (space, algorithm, name) or a params key.")] = "space",
    dimension: Annotated[str | None, typer.Option("--dimension", help="Only this dimension; default all.")] = None,
    bootstrap: Annotated[int, typer.Option("--bootstrap", callback=in_range(RESAMPLES),
                                                   help="Bootstrap resamples for the 95 % CIs.")] = 2000,
    seed: SeedOption = 0,
    noise: NoiseOption = "assigned",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the plot as PNG here.")] = None,
    fmt: FormatOption = "table",
    db: DbOption = None,
) -> None:
    """CQ against min-cluster-size (or another parameter) across a sweep of runs, as a table and PNG."""
    from memeatlas.evaluate.common import render
    from memeatlas.evaluate.sweep import sweep

    with open_store(db) as store:
        r = sweep(store, runs, pair_set, param=param, series=series, dimension=dimension, bootstrap=bootstrap,
                  seed=seed, noise=noise, png=out)
    _out(render(r.rows, r.columns, fmt))
    _notes(r.notes)
    if r.png:
        echo_err(f"plot written to {r.png}")


@label_task_app.command("export")
def label_task_export_cmd(
    run: Annotated[str, typer.Option("--run", help="Clustering run whose labels are tested.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for items.csv, labels.csv, task.html.")],
    memes_per_item: Annotated[int, typer.Option("--memes-per-item", help="Memes shown per item.")] = 4,
    items_per_cluster: Annotated[int, typer.Option("--items-per-cluster", help="Items per cluster.")] = 3,
    labels_from: Annotated[str, typer.Option(
        "--labels-from", help="'label' (cluster_labels.label, falling back to keywords) or 'keywords'.")] = "label",
    key: Annotated[bool, typer.Option("--key", help="Also write key.csv (keep it away from coders).")] = False,
    seed: SeedOption = 0,
    db: DbOption = None,
) -> None:
    """Export a label-matching task; the key stays in the database."""
    from memeatlas.evaluate.labeltask import export_label_task

    with open_store(db) as store:
        s = export_label_task(store, run, out, memes_per_item=memes_per_item,
                              items_per_cluster=items_per_cluster, seed=seed, labels_from=labels_from,
                              write_key=key)
    typer.echo(s.task_id)
    echo_summary(f"label task {s.task_id}", {
        "run": s.run_id, "clusters": s.n_clusters, "items": s.n_items,
        "files": ", ".join(str(f) for f in s.files),
        "score with": f"memeatlas evaluate label-task score ANSWERS.csv --task {s.task_id}"})


@label_task_app.command("score")
def label_task_score_cmd(
    answers: Annotated[Path, typer.Argument(help="CSV with item_id, answer (option code or label) [, coder].")],
    task: Annotated[str, typer.Option("--task", help="Task id printed by `label-task export`.")],
    coder: Annotated[str | None, typer.Option("--coder", help="Coder name when the file has no coder column.")] = None,
    fmt: FormatOption = "table",
    db: DbOption = None,
) -> None:
    """Score answers: per-cluster precision and recall, macro averages, accuracy."""
    from memeatlas.evaluate.common import render
    from memeatlas.evaluate.labeltask import score_label_task

    with open_store(db) as store:
        r = score_label_task(store, task, answers, coder=coder)
    _out(render(r.rows, r.columns, fmt))
    _notes(r.notes)
    echo_summary(f"label task {r.task_id} (run {r.run_id})", r.summary)


@evaluate_app.command("rate")
def rate_cmd(
    pair_set: PairSetOption,
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML rating page to write.")] = Path("rate.html"),
    dimensions: Annotated[str | None, typer.Option(
        "--dimensions", help="Dimensions to rate, comma-separated [default: the pair set's own, "
                             "else connotative,denotative].")] = None,
    db: DbOption = None,
) -> None:
    """Write a self-contained HTML page for rating a pair set in the browser (exports a CSV to import)."""
    from memeatlas.evaluate.common import parse_list
    from memeatlas.report.rate_page import build_rate_page

    with open_store(db) as store:
        path = build_rate_page(store, pair_set, out, parse_list(dimensions) or None)
    echo_err(f"rating page written to {path}; its exported CSV imports with "
             f"`memeatlas evaluate import-ratings FILE --pair-set {pair_set}`")


evaluate_app.add_typer(label_task_app, name="label-task")


def register(app: typer.Typer) -> None:
    """Add the `evaluate` command group."""
    app.add_typer(evaluate_app, name="evaluate")
