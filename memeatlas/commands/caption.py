"""`memeatlas caption`: annotate memes with a VLM (or OCR) into the DuckDB file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from memeatlas.commands import engine_options as R
from memeatlas.commands.common import (
    DbOption,
    ForceOption,
    echo_summary,
    in_range,
    open_store,
    parse_kv,
)
from memeatlas.ranges import Range

TEMPERATURE = Range(0, 10)  # sampling temperature; 0 is greedy

_BACKEND_HELP = ("transformers (local model, default), vllm (local GPU, pip install "
                 "'memeatlas[vllm]'), openai (any OpenAI-compatible server, e.g. `vllm serve`), "
                 "ocr (text only, rapidocr, runs anywhere).")


def _coerce(value: str):
    """`--option` values: JSON where it parses (numbers, true/false, lists), else the string."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def caption(
    db: DbOption = None,
    backend: Annotated[str, typer.Option("--backend", "-b", help=_BACKEND_HELP)] = "transformers",
    model: Annotated[str | None, typer.Option(
        "--model", "-m",
        help="Hugging Face model id or local model directory (served model name for openai) "
             "[default: Qwen/Qwen2.5-VL-3B-Instruct; rapidocr for ocr].")] = None,
    limit: Annotated[int | None, typer.Option(
        "--limit", "-n", help="Caption at most N memes (after skipping those already done).")] = None,
    where: Annotated[str | None, typer.Option(
        "--where", help="SQL condition over the memes table (alias m), e.g. \"m.source = 'folder'\".")
    ] = None,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", help="Images per model call and per database commit.")] = 4,
    force: ForceOption = False,
    retries: Annotated[int, typer.Option(
        "--retries", help="Extra attempts (sampled) for an invalid or truncated output.")] = 2,
    max_new_tokens: Annotated[int, typer.Option(
        "--max-new-tokens", help="Token budget per annotation; hitting it counts as truncated.")
    ] = 768,
    max_pixels: Annotated[int, typer.Option(
        "--max-pixels", help="Resize each image to at most this many pixels before the model "
                             "(default 802816 = 1024 Qwen visual tokens).")] = 1024 * 28 * 28,
    temperature: Annotated[float, typer.Option(
        "--temperature", callback=in_range(TEMPERATURE),
        help="Sampling temperature of the first attempt (0 = greedy).")] = 0.0,
    prompt: Annotated[Path | None, typer.Option(
        "--prompt", help="Text file with your own instruction; '{fields}' is replaced by the "
                         "field list. Changes the prompt hash, so rows are kept apart.")] = None,
    schema: Annotated[Path | None, typer.Option(
        "--schema", help="JSON Schema file whose properties are added to the v1 fields.")] = None,
    device: Annotated[str, typer.Option(
        "--device", help="transformers: auto, cpu, cuda, cuda:1 ...")] = "auto",
    dtype: Annotated[str, typer.Option(
        "--dtype", help="transformers/vllm: auto, bfloat16, float16, float32.")] = "auto",
    revision: Annotated[str | None, typer.Option(
        "--revision", help="Model revision (Hub branch/commit); for openai, a label you choose.")
    ] = None,
    base_url: Annotated[str, typer.Option(
        "--base-url", help="openai: the server's base URL.")] = "http://127.0.0.1:8000/v1",
    api_key_env: Annotated[str, typer.Option(
        "--api-key-env", help="openai: name of the environment variable holding the API key "
                              "(the key itself is never printed or stored).")] = "OPENAI_API_KEY",
    concurrency: Annotated[int, typer.Option(
        "--concurrency", help="openai: most requests in flight at once.")] = 8,
    adaptive: Annotated[bool, typer.Option(
        "--adaptive/--fixed-concurrency",
        help="openai: follow the server's parallelism (down to 1 for a server that answers "
             "one request at a time), or always keep --concurrency in flight.")] = True,
    response_format: Annotated[str, typer.Option(
        "--response-format",
        help="openai: auto (negotiate), json_schema, json_object_schema, ollama_format, "
             "structured_outputs, guided_json or prompt_only.")] = "auto",
    schema_form: Annotated[str, typer.Option(
        "--schema-form", help="openai: auto, strict (bound patterns) or friendly "
                              "(maxLength; for llama.cpp-based servers).")] = "auto",
    vision_check: Annotated[bool, typer.Option(
        "--vision-check/--no-vision-check",
        help="openai: before captioning, check with a generated image that the model can "
             "read it; refuse a model that cannot.")] = True,
    check_server: Annotated[bool, typer.Option(
        "--check-server", help="openai: probe the server (models, response formats, vision, "
                               "latency), print what it supports and exit.")] = False,
    tensor_parallel_size: Annotated[int, typer.Option(
        "--tensor-parallel-size", help="vllm: GPUs per model replica.")] = 1,
    data_parallel_size: Annotated[int, typer.Option(
        "--data-parallel-size", help="vllm: model replicas.")] = 1,
    option: Annotated[list[str] | None, typer.Option(
        "--option", "-o", help="Extra backend option KEY=VALUE (repeatable), e.g. -o "
                               "attn_implementation=sdpa, -o gpu_memory_utilization=0.8.")] = None,
    print_schema: Annotated[bool, typer.Option(
        "--print-schema", help="Print the JSON Schema (with --schema additions) and exit.")] = False,
    print_prompt: Annotated[bool, typer.Option(
        "--print-prompt", help="Print the rendered prompt and exit.")] = False,
    engine: tuple[str, dict[str, Any]] = ("local", {}),
) -> None:
    """Annotate memes with a vision-language model: description, text, intent, entity roles,
    template, tone, one JSON object per meme, stored in `annotations`.

    Re-runs skip memes already annotated by the same model, prompt and schema; a
    killed run loses at most one batch. Example:

      memeatlas caption --model /models/Qwen2.5-VL-3B-Instruct --batch-size 8

      memeatlas caption --backend openai --model Qwen/Qwen2.5-VL-7B-Instruct \\
          --base-url http://gpu-box:8000/v1 --concurrency 32

      memeatlas caption --backend openai --check-server --base-url http://127.0.0.1:8080/v1

      memeatlas caption --backend ocr

      memeatlas caption --model /shared/models/Qwen2.5-VL-3B-Instruct --ray auto \\
          --ray-dir /shared/jobs

    Through a server, the response format is negotiated once per run, and a vision probe
    (a generated image with a known word) refuses a model that cannot see (see
    docs/servers.md). Exits 1 when no meme could be annotated.
    """
    from memeatlas.caption.run import CaptionConfig, prompt_and_schema, run
    from memeatlas.leftout import counted

    if print_schema or print_prompt:
        p, s = prompt_and_schema(prompt, schema)
        if print_schema:
            typer.echo(json.dumps(s, indent=2))
        if print_prompt:
            typer.echo(p.text)
        return

    if check_server:
        from memeatlas.caption.server_check import check_server as probe
        from memeatlas.caption.server_check import report_lines, unusable_error
        from memeatlas.errors import InputError

        if backend != "openai":
            raise InputError("--check-server needs --backend openai")
        rep = probe(model, vision=vision_check, base_url=base_url, api_key_env=api_key_env,
                    response_format=response_format, schema_form=schema_form,
                    **{k: _coerce(v) for k, v in parse_kv(option, "--option").items()})
        echo_summary("server check", report_lines(rep))
        typer.echo(json.dumps(rep, indent=2))
        err = unusable_error(rep)
        if err is not None:  # garbage, a failed text request or a blind model: exit 1
            raise err
        return

    opts: dict = {}
    if backend == "transformers":
        opts = {"device": device, "dtype": dtype, "revision": revision, "max_pixels": max_pixels,
                "temperature": temperature}
    elif backend == "vllm":
        opts = {"dtype": dtype, "revision": revision, "max_pixels": max_pixels,
                "temperature": temperature, "tensor_parallel_size": tensor_parallel_size,
                "data_parallel_size": data_parallel_size}
    elif backend == "openai":
        opts = {"base_url": base_url, "api_key_env": api_key_env, "concurrency": concurrency,
                "adaptive": adaptive, "response_format": response_format,
                "schema_form": schema_form, "revision": revision, "temperature": temperature}
    opts.update({k: _coerce(v) for k, v in parse_kv(option, "--option").items()})
    eng, eng_opts = engine
    cfg = CaptionConfig(engine=eng, engine_options=eng_opts, backend=backend, model=model,
                        backend_options=opts, prompt_file=prompt,
                        schema_file=schema, limit=limit, where=where, batch_size=batch_size,
                        force=force, retries=retries, max_new_tokens=max_new_tokens,
                        max_pixels=max_pixels, vision_check=vision_check)
    with open_store(db) as store:
        s = run(store, cfg)
    echo_summary(f"caption run {s.run_id}", {
        "annotator": s.annotator,
        "annotated": s.n_done,
        "failed": s.n_failed,
        "skipped (already done)": s.n_skipped,
        **({"left out": counted(s.left_out)} if s.left_out else {}),
        **({"OCR lines dropped (not text)": counted(s.ocr_dropped)} if s.ocr_dropped else {}),
        **({"interrupted runs": f"{s.n_interrupted_runs} earlier run(s) had been killed; "
            "marked interrupted"} if s.n_interrupted_runs else {}),
        "seconds": s.seconds,
        "model load (s)": s.timings.get("backend_init", 0.0),
        "images/s": s.images_per_s,
        "tokens in/out": f"{s.tokens_in}/{s.tokens_out}",
        "generated tokens/s": s.tokens_per_s,
        "time outside model": f"{100 * s.outside_model_share:.1f}%",
    })
    if s.n_failed:
        echo_summary("failures are in caption_failures:", {
            **{f"{code}": n for code, n in sorted(s.failures.items())},
            "first": s.first_failure or "-",
            "query": f"SELECT meme_id, attempt, error, detail FROM caption_failures "
                     f"WHERE run_id = '{s.run_id}'"})
    if s.n_failed and not s.n_done:
        why = ", ".join(f"{n} {code}" for code, n in sorted(s.failures.items()))
        typer.echo(f"Error: none of the {s.n_failed} meme(s) was annotated ({why}); first "
                   f"failure: {s.first_failure}", err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `memeatlas caption` to the root app."""
    app.command("caption")(R.with_engine_options(caption))
