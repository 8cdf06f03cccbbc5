"""`memeatlas images near-dups|templates`: thin commands over memeatlas.images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from memeatlas.commands.common import (
    DbOption,
    ForceOption,
    echo_json,
    echo_summary,
    in_range,
    open_store,
)
from memeatlas.leftout import counted
from memeatlas.ranges import Range

images_app = typer.Typer(
    help="Image-level structure: near-duplicate groups and template matching against a "
         "reference gallery.", no_args_is_help=True, rich_markup_mode=None)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")]


@images_app.command("near-dups")
def near_dups_cmd(
    db: DbOption = None,
    max_hash_distance: Annotated[int, typer.Option(
        "--max-hash-distance", min=0, max=64,
        help="pHash Hamming radius (of 64 bits) for the same picture.")] = 10,
    space: Annotated[str, typer.Option(
        "--space", help="Image space whose cosine links memes too (crops, caption bars): "
                        "'auto' = image:mobilenet_v2 when stored, 'none' = pHash only.")] = "auto",
    min_cosine: Annotated[float | None, typer.Option(
        "--min-cosine", min=-1.0, max=1.0,
        help="Cosine for image-similar in --space [default: calibrated for "
             "image:mobilenet_v2 (0.85); required for other spaces].")] = None,
    min_text_similarity: Annotated[float, typer.Option(
        "--min-text-similarity", min=0.0, max=1.0,
        help="OCR-text similarity (0..1) from which image-similar memes count as the same "
             "image; below it, the same template with different text.")] = 0.7,
    annotator: Annotated[str | None, typer.Option(
        "--annotator", help="Whose OCR text to compare [default: each meme's latest "
                            "annotation with OCR text].")] = None,
    force: ForceOption = False,
    as_json: JsonOpt = False,
) -> None:
    """Group near-duplicate memes (same image vs same template with different text);
    re-runs compare only new memes with the stored ones."""
    from memeatlas.images import NearDupConfig, group_near_duplicates

    cfg = NearDupConfig(max_hash_distance=max_hash_distance, space=space, min_cosine=min_cosine,
                        min_text_similarity=min_text_similarity, annotator=annotator,
                        force=force)
    with open_store(db) as store:
        s = group_near_duplicates(store, cfg)
    kinds = ", ".join(f"{v} {k}" for k, v in sorted(s.kinds.items())) or "none"
    echo_summary("images near-dups", {
        "run": s.run_id, "compared": f"{s.n_memes} memes ({s.n_new} new)",
        "signals": f"pHash <= {s.max_hash_distance} bits"
                   + (f", cosine >= {s.min_cosine:.2f} in {s.space}" if s.space else ""),
        "pairs": f"{s.n_pairs} ({kinds})",
        "groups": f"{s.n_groups} groups of 2+ holding {s.n_grouped} memes",
        **({"no pHash": s.n_without_hash} if s.n_without_hash else {}),
        **({"left out": counted(s.left_out)} if s.left_out else {}),
        "seconds": s.seconds,
    })
    if as_json:
        echo_json(s.as_dict())


@images_app.command("templates")
def templates_cmd(
    gallery: Annotated[Path, typer.Option(
        "--gallery", help="Folder of template images named by template (or of sub-folders "
                          "named by template).")],
    db: DbOption = None,
    model: Annotated[str, typer.Option(
        "--model", help="Image model for gallery and memes (as `embed image --model`).")
    ] = "torchvision:mobilenet_v2",
    space: Annotated[str | None, typer.Option(
        "--space", help="Image space of the memes [default: image:<model short name>].")] = None,
    threshold: Annotated[float | None, typer.Option(
        "--threshold", callback=in_range(Range(-1, 1)),
        help="Score (a cosine) below which a meme is 'unknown' [default: calibrated on "
                            "the gallery].")] = None,
    quantile: Annotated[float, typer.Option(
        "--quantile", min=0.0, max=1.0,
        help="Calibration: this quantile of the gallery's impostor scores.")] = 0.95,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1,
                                            help="Images per forward pass.")] = 32,
    device: Annotated[str | None, typer.Option("--device", help="torch device.")] = None,
    force: ForceOption = False,
    as_json: JsonOpt = False,
) -> None:
    """Give each meme its best template from a reference gallery with a score, or 'unknown'
    below a threshold calibrated on the gallery; report agreement with the VLM's template."""
    from memeatlas.images import TemplateMatchConfig, match_templates

    cfg = TemplateMatchConfig(gallery=gallery, model=model, space=space, threshold=threshold,
                              quantile=quantile, batch_size=batch_size, device=device,
                              force=force)
    with open_store(db) as store:
        s = match_templates(store, cfg)
    agree = (f"{s.vlm_agree} of {s.vlm_compared} ({100 * s.agreement:.0f}%)"
             if s.agreement is not None else "no VLM template annotations to compare")
    echo_summary("images templates", {
        "run": s.run_id, "gallery": f"{s.gallery} ({s.n_templates} templates, "
                                    f"{s.n_gallery_images} images)",
        "space": s.space,
        "threshold": f"{s.threshold:.3f} = {s.calibration.get('basis') or s.calibration.get('method')}",
        "aliases": "; ".join(" = ".join(g) for g in s.calibration.get("aliases") or []) or "none",
        "scored": f"{s.matched} ({s.skipped_existing} already scored)",
        "templates": f"{s.n_known} matched, {s.n_unknown} unknown",
        "VLM agreement": agree, "seconds": s.seconds,
    })
    if as_json:
        echo_json(s.as_dict())


def register(app: typer.Typer) -> None:
    """Add the `images` sub-command group to the root app."""
    app.add_typer(images_app, name="images")
