"""`memeatlas run` and `memeatlas demo`: the whole pipeline in one command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from memeatlas.commands.common import DbOption, ForceOption, echo_summary, open_store, parse_kv

DEMO_DIR = Path("memeatlas-demo")


def register(app: typer.Typer) -> None:
    """Add `run` and `demo` to the root app."""

    @app.command("run")
    def run_cmd(
        paths: Annotated[list[Path], typer.Argument(
            help="Folders of meme images, image files, or a .csv/.jsonl manifest.")],
        backend: Annotated[str | None, typer.Option(
            "--backend", help="Captioning backend (transformers, vllm, openai, ocr) "
                              "[default: the caption step's].")] = None,
        model: Annotated[str | None, typer.Option(
            "--model", help="Captioning model id or directory [default: the backend's].")] = None,
        option: Annotated[list[str] | None, typer.Option(
            "--caption-option", help="Extra caption setting KEY=VALUE (repeatable), e.g. "
                                     "batch_size=4.")] = None,
        fields: Annotated[str | None, typer.Option(
            "--fields", help="Annotation fields embedded as text, comma-separated "
                             "[default: description,intent; ocr_text with --backend ocr].")] = None,
        text_model: Annotated[str | None, typer.Option(
            "--text-model", help="Sentence-transformers model [default: bundled all-MiniLM-L6-v2].")] = None,
        image_model: Annotated[str, typer.Option(
            "--image-model", help="Image model for an image space; 'auto' uses the default CLIP "
                                  "when it is already downloaded, else the offline "
                                  "torchvision:mobilenet_v2; 'pixels' is the model-free "
                                  "tiny-image baseline, 'none' skips.")] = "auto",
        min_cluster_size: Annotated[int | None, typer.Option(
            "--min-cluster-size", min=2, help="HDBSCAN min_cluster_size [default: auto, chosen per run from the data].")] = None,
        truth: Annotated[str | None, typer.Option(
            "--truth", help="Known-label column to score the clusters against, e.g. meta.theme.")] = None,
        rate_pairs: Annotated[int, typer.Option(
            "--rate-pairs", min=0, help="Also sample this many pairs and write a rating page "
                                        "(rate.html beside the report).")] = 0,
        gallery: Annotated[Path | None, typer.Option(
            "--gallery", help="Folder of template images named by template: match every "
                              "meme to its best template (see `images templates`).")] = None,
        recursive: Annotated[bool, typer.Option(
            "--recursive/--no-recursive", help="Look into subfolders.")] = True,
        out: Annotated[Path, typer.Option("-o", "--out", help="HTML report to write.")] = Path("report.html"),
        seed: Annotated[int, typer.Option("--seed", help="Random seed of clustering and sampling.")] = 42,
        force: ForceOption = False,
        db: DbOption = None,
    ) -> None:
        """Ingest → caption → embed → cluster → label → report, skipping stored work.

        Run it again after adding images: only the new work is done.
        """
        from memeatlas.pipeline import PipelineConfig, run_pipeline

        cfg = PipelineConfig(
            paths=list(paths), recursive=recursive, backend=backend, model=model,
            caption_options=_coerce(parse_kv(option, "--caption-option")),
            text_fields=[f.strip() for f in fields.split(",") if f.strip()] if fields else None,
            text_model=text_model, image_model=image_model, min_cluster_size=min_cluster_size,
            seed=seed, truth=truth, rate_pairs=rate_pairs, report=out, gallery=gallery,
            force=force)
        with open_store(db, create=True) as store:
            summary = run_pipeline(store, cfg)
        echo_summary("memeatlas run", summary.as_dict())

    @app.command("demo")
    def demo_cmd(
        directory: Annotated[Path, typer.Argument(
            help="Folder for the demo corpus, database and report.")] = DEMO_DIR,
        n: Annotated[int, typer.Option("--n", min=10, help="Number of synthetic memes.")] = 60,
        rate_pairs: Annotated[int, typer.Option(
            "--rate-pairs", min=0, help="Pairs on the demo rating page.")] = 40,
        force: ForceOption = False,
    ) -> None:
        """Run the whole pipeline offline on a synthetic corpus (OCR captions, bundled MiniLM,
        MobileNetV2 image side).

        Writes DIR/images, DIR/memeatlas.duckdb, DIR/report.html and DIR/rate.html.
        """
        from memeatlas.pipeline import run_demo

        summary = run_demo(directory, n=n, rate_pairs=rate_pairs, force=force)
        echo_summary("memeatlas demo", summary.as_dict())
        typer.echo(f"Open {summary.report} in a browser; query the corpus with "
                   f"memeatlas sql --db {directory / 'memeatlas.duckdb'} \"SELECT * FROM cluster_members\"",
                   err=True)


def _coerce(d: dict[str, str]) -> dict:
    """'4' → 4, '0.5' → 0.5, 'true' → True; other values stay strings."""
    out: dict = {}
    for k, v in d.items():
        low = v.lower()
        if low in ("true", "false"):
            out[k] = low == "true"
            continue
        try:
            out[k] = int(v)
        except ValueError:
            try:
                out[k] = float(v)
            except ValueError:
                out[k] = v
    return out
