"""`memeatlas classify …`: import-labels, train, predict, evaluate, models, heads, tune-encoder.

Tables go to stdout (`--format table|csv|json`); notes and summaries go to stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from memeatlas.commands.common import (
    DbOption,
    echo_err,
    echo_summary,
    in_range,
    open_store,
    parse_kv,
)
from memeatlas.ranges import RESAMPLES, Range

classify_app = typer.Typer(
    help="Supervised classification: import coded labels, train heads on stored spaces, predict the rest.",
    no_args_is_help=True, rich_markup_mode=None)

TaskOption = Annotated[str, typer.Option("--task", help="Name of the labelling task (codebook), e.g. template.")]
FormatOption = Annotated[str, typer.Option("--format", "-f", help="Output: table, csv or json (stdout).")]
SeedOption = Annotated[int, typer.Option("--seed", help="Random seed (same seed, same result).")]
WhereOption = Annotated[str | None, typer.Option(
    "--where", help="Only memes matching this condition on the memes table, e.g. \"source = 'csv'\".")]
CoderOption = Annotated[str | None, typer.Option(
    "--coder", help="Only this coder's labels [default: the majority over coders; ties left out].")]
ModelOption = Annotated[str, typer.Option(
    "--model", help="Classifier id (see `classify models`), or 'latest' (of --task when given).")]
BootstrapOption = Annotated[int, typer.Option("--bootstrap", callback=in_range(RESAMPLES),
                                              help="Bootstrap resamples for the 95 % CIs (0: none).")]

_PER_CLASS = ("class", "support", "precision", "recall", "f1", "f1_ci_low", "f1_ci_high")


def _out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _ci(s, key: str) -> str:
    lo, hi = s.ci.get(key, (None, None))
    return "" if lo is None else f" [95 % CI {lo:.3f}–{hi:.3f}]"


@classify_app.command("import-labels")
def import_labels_cmd(
    file: Annotated[Path | None, typer.Argument(
        help="CSV (header row) or JSONL: a meme_id or source_id column, a label column, optionally coder.")] = None,
    task: TaskOption = ...,
    coder: Annotated[str | None, typer.Option(
        "--coder", help="Coder of a file without a coder column.")] = None,
    id_column: Annotated[str | None, typer.Option(
        "--id-column", help="Column naming the meme [default: meme_id, source_id or id].")] = None,
    label_column: Annotated[str | None, typer.Option(
        "--label-column", help="Column holding the class [default: label, class or category].")] = None,
    from_meta: Annotated[str | None, typer.Option(
        "--from-meta", help="Instead of a file: take labels from this manifest column / memes.meta key.")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace labels already stored for the same task, meme and coder.")] = False,
    db: DbOption = None,
) -> None:
    """Import class labels for a task; any bad row aborts the whole file (errors name the rows)."""
    from memeatlas.classify.labels import import_labels, labels_from_meta
    from memeatlas.errors import InputError

    if (file is None) == (from_meta is None):
        raise InputError("give a labels FILE or --from-meta FIELD (one of them)")
    with open_store(db) as store:
        if from_meta:
            s = labels_from_meta(store, task=task, field=from_meta, force=force)
        else:
            s = import_labels(store, file, task=task, coder=coder, id_column=id_column,
                              label_column=label_column, force=force)
    if not s.n_labels and from_meta:
        echo_err(f"task {task}: labels from meta field {from_meta!r} already stored (nothing new)")
        return
    shown = ", ".join(f"{c} ({n})" for c, n in list(s.classes.items())[:8])
    echo_summary(f"imported {s.source} into task {s.task}", {
        "labels": s.n_labels, "memes": s.n_memes, "coders": ", ".join(s.coders),
        "classes": f"{len(s.classes)}: {shown}{' ...' if len(s.classes) > 8 else ''}",
        "blank labels skipped": s.n_blank, "replaced": s.n_replaced})


@classify_app.command("train")
def train_cmd(
    task: TaskOption,
    space: Annotated[list[str], typer.Option(
        "--space", help="Embedding space(s) to train on; repeat or comma-separate for several "
                        "(knn weights them per meme, adapter fuses two by product).")],
    head: Annotated[str, typer.Option("--head", help="knn, linear, adapter or mlp (`classify heads`).")] = "knn",
    param: Annotated[list[str] | None, typer.Option(
        "--param", help="Head parameter KEY=VALUE (repeatable), e.g. --param k=3 --param top_k=5.")] = None,
    folds: Annotated[int, typer.Option("--folds", help="Stratified cross-validation folds (0: none).")] = 5,
    seed: SeedOption = 0,
    bootstrap: BootstrapOption = 1000,
    unknown_quantile: Annotated[float, typer.Option(
        "--unknown-quantile", help="Share of correctly classified CV memes allowed below the 'unknown' "
                                   "threshold (0: never unknown).")] = 0.05,
    coder: CoderOption = None,
    classes: Annotated[str | None, typer.Option(
        "--classes", help="Only these classes (comma-separated); memes of others are left out.")] = None,
    where: WhereOption = None,
    force: Annotated[bool, typer.Option("--force", help="Train again even if this exact model is stored.")] = False,
    fmt: FormatOption = "table",
    db: DbOption = None,
) -> None:
    """Cross-validate a head on a labelled task, fit it on all labels, and store it."""
    from memeatlas.classify.train import TrainConfig, train
    from memeatlas.evaluate.common import parse_list, render

    cfg = TrainConfig(task=task, spaces=parse_list(space), head=head, params=parse_kv(param, "--param"),
                      folds=folds, seed=seed, bootstrap=bootstrap, unknown_quantile=unknown_quantile,
                      coder=coder, classes=parse_list(classes) or None, where=where, force=force)
    with open_store(db) as store:
        s = train(store, cfg)
    if s.scores:
        _out(render(s.scores.rows(), _PER_CLASS, fmt))
    for n in s.notes:
        echo_err(f"note: {n}")
    fields = {"head": s.head, "spaces": ", ".join(s.spaces), "memes": s.n_train, "classes": len(s.classes)}
    if s.scores:
        fields[f"{s.folds}-fold CV macro-F1"] = f"{s.scores.macro_f1:.3f}{_ci(s.scores, 'macro_f1')}"
        fields["CV accuracy"] = f"{s.scores.accuracy:.3f}{_ci(s.scores, 'accuracy')}"
        fields["stored as"] = s.eval_id
    fields["unknown threshold"] = f"{s.threshold:.3f}"
    if s.n_unlabelled_vectors:
        fields["labelled, no vectors"] = s.n_unlabelled_vectors
    if s.n_ties:
        fields["coder ties left out"] = s.n_ties
    if s.seconds:
        fields["seconds"] = ", ".join(f"{k} {v:.1f}" for k, v in s.seconds.items())
    echo_summary(f"classifier {s.model_id}" + (" (stored)" if s.skipped else ""), fields)


@classify_app.command("predict")
def predict_cmd(
    model: ModelOption = "latest",
    task: Annotated[str | None, typer.Option("--task", help="With --model latest: the newest model of this task.")] = None,
    where: WhereOption = None,
    include_labelled: Annotated[bool, typer.Option(
        "--include-labelled", help="Also predict memes that are labelled in the task.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Predict again memes this model already predicted.")] = False,
    db: DbOption = None,
) -> None:
    """Predict class and probability for memes without labels ('unknown' below the model's threshold)."""
    from memeatlas.classify.predict import predict

    with open_store(db) as store:
        s = predict(store, model, task=task, where=where, include_labelled=include_labelled, force=force)
    shown = ", ".join(f"{c} ({n})" for c, n in list(s.classes.items())[:8])
    echo_summary(f"predictions of {s.model_id} (task {s.task})", {
        "memes": s.n_candidates, "predicted": s.n_predicted, "already predicted (skipped)": s.n_skipped,
        "unknown": f"{s.n_unknown} (top probability below {s.threshold:.3f})",
        "classes": shown or "-", "seconds": s.seconds,
        "query": "SELECT meme_id, assigned, probability FROM latest_class_predictions WHERE task = '…'"})


@classify_app.command("evaluate")
def evaluate_cmd(
    task: Annotated[str, typer.Option("--task", help="The labelled task to score the model on.")],
    model: ModelOption = "latest",
    coder: CoderOption = None,
    where: WhereOption = None,
    bootstrap: BootstrapOption = 1000,
    seed: SeedOption = 0,
    fmt: FormatOption = "table",
    db: DbOption = None,
) -> None:
    """Score a stored classifier on another labelled set (e.g. memes from another source)."""
    from memeatlas.classify.predict import evaluate_model
    from memeatlas.evaluate.common import render

    with open_store(db) as store:
        s = evaluate_model(store, model, task, coder=coder, where=where, bootstrap=bootstrap, seed=seed)
    if s.closed:
        _out(render(s.closed.rows(), _PER_CLASS, fmt))
    for n in s.notes:
        echo_err(f"note: {n}")
    fields = {"memes of known classes": s.n}
    if s.closed:
        fields["macro-F1"] = f"{s.closed.macro_f1:.3f}{_ci(s.closed, 'macro_f1')}"
        fields["accuracy"] = f"{s.closed.accuracy:.3f}{_ci(s.closed, 'accuracy')}"
        fields["macro-F1 with unknown"] = f"{s.open.macro_f1:.3f}{_ci(s.open, 'macro_f1')}"
        fields["called unknown"] = f"{s.unknown_rate:.1%}"
    if s.n_unseen:
        fields["memes of unseen classes"] = (f"{s.n_unseen} ({len(s.unseen_classes)} classes), "
                                             f"{s.unseen_unknown_rate:.1%} called unknown")
    fields["stored as"] = s.eval_id
    echo_summary(f"model {s.model_id} (task {s.model_task}) on task {s.task}", fields)


@classify_app.command("models")
def models_cmd(
    task: Annotated[str | None, typer.Option("--task", help="Only models of this task.")] = None,
    fmt: FormatOption = "table",
    db: DbOption = None,
) -> None:
    """List the stored classifiers with their CV macro-F1."""
    from memeatlas.classify.store import list_models
    from memeatlas.evaluate.common import render

    with open_store(db, read_only=True) as store:
        rows = [{"model_id": m.model_id, "task": m.task, "head": m.head, "spaces": ",".join(m.spaces),
                 "classes": len(m.classes), "n_train": m.n_train, "cv_macro_f1": m.cv.get("macro_f1"),
                 "threshold": m.threshold} for m in list_models(store, task)]
    _out(render(rows, ("model_id", "task", "head", "spaces", "classes", "n_train", "cv_macro_f1", "threshold"),
                fmt))


@classify_app.command("heads")
def heads_cmd() -> None:
    """List the classifier heads and their parameters (defaults)."""
    from memeatlas.classify.heads import HEADS, head_class

    for name in HEADS:
        cls = head_class(name)
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        typer.echo(f"{name}: {doc}")
        typer.echo("  " + ", ".join(f"{k}={v}" for k, v in cls.DEFAULTS.items()))


@classify_app.command("tune-encoder")
def tune_encoder_cmd(
    task: TaskOption,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to save the fine-tuned model in.")],
    fields: Annotated[str, typer.Option(
        "--fields", help="Annotation fields that make the text (as in `embed text`).")] = "description,intent",
    annotator: Annotated[str | None, typer.Option(
        "--annotator", help="Whose annotations to use (required when several have these fields).")] = None,
    base_model: Annotated[str | None, typer.Option(
        "--base-model", help="sentence-transformers model id or directory [default: bundled all-MiniLM-L6-v2].")] = None,
    loss: Annotated[str, typer.Option(
        "--loss", help="mnrl (in-batch negatives, same-class positives) or triplet (batch-hard triplets).")] = "mnrl",
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Passes over the labelled memes.")] = 1,
    batch_size: Annotated[int, typer.Option("--batch-size", min=2, help="Texts per step.")] = 32,
    lr: Annotated[float, typer.Option("--lr", callback=in_range(Range(0, 1, lo_open=True)),
                                      help="AdamW learning rate.")] = 2e-5,
    max_examples: Annotated[int | None, typer.Option(
        "--max-examples", min=2, help="Use at most this many labelled memes (a seeded, stratified sample).")] = None,
    seed: SeedOption = 0,
    coder: CoderOption = None,
    device: Annotated[str | None, typer.Option("--device", help="torch device [default: cuda if available].")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --out directory.")] = False,
    db: DbOption = None,
) -> None:
    """Metric learning: fine-tune the text encoder so same-class memes embed close; use with `embed text --model DIR`."""
    from memeatlas.classify.metric import TuneConfig, tune_encoder
    from memeatlas.evaluate.common import parse_list

    cfg = TuneConfig(task=task, out=out, fields=tuple(parse_list(fields)), annotator=annotator,
                     base_model=base_model, loss=loss, epochs=epochs, batch_size=batch_size, lr=lr,
                     max_examples=max_examples, seed=seed, coder=coder, device=device, force=force)
    with open_store(db) as store:
        s = tune_encoder(store, cfg)
    echo_summary(f"encoder {s.encoder_id}", {
        "saved to": s.path, "base model": s.base_model, "loss": s.loss, "examples": s.n_examples,
        "classes": s.n_classes, "steps": s.steps, "seconds": s.seconds,
        "seconds per 1,000 examples": s.seconds_per_1000,
        "use with": f"memeatlas embed text --model {s.path} --space text:tuned"})


def register(app: typer.Typer) -> None:
    """Add the `classify` command group."""
    app.add_typer(classify_app, name="classify")
