"""CLI: `memeatlas cluster`, `memeatlas label`, `memeatlas assign` (thin wrappers)."""

from __future__ import annotations

from typing import Annotated

import typer

from memeatlas.cluster.config import ASSIGN_FLOOR
from memeatlas.commands.common import DbOption, ForceOption, echo_summary, open_store


def _floats(text: str | None, option: str) -> list[float] | None:
    from memeatlas.errors import InputError

    if not text:
        return None
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"{option} expects comma-separated numbers, e.g. 0.7,0.3; "
                         f"got {text!r}") from None


def cluster_cmd(
    space: Annotated[list[str] | None, typer.Option(
        "--space", help="Embedding space to cluster; repeat to fuse several spaces [default: "
                        "the store's only space].")] = None,
    weights: Annotated[str | None, typer.Option(
        "--weights", help="Comma-separated non-negative weights, one per --space "
                          "(normalised to sum 1) [default: equal].")] = None,
    fusion: Annotated[str, typer.Option(
        "--fusion", help="How several spaces are fused: concat (weighted concatenation) or "
                         "dynamic (per-meme modality weighting).")] = "concat",
    algorithm: Annotated[str, typer.Option(
        "--algorithm", help="hdbscan (on UMAP), or a baseline: kmeans, agglomerative "
                            "(Ward), spectral.")] = "hdbscan",
    k: Annotated[int | None, typer.Option(
        "--k", help="Number of clusters for kmeans/agglomerative/spectral.")] = None,
    min_cluster_size: Annotated[str, typer.Option(
        "--min-cluster-size", help="HDBSCAN min_cluster_size: auto (chosen per run: the "
                                   "size from 5 … n/20 whose clusters have the highest total "
                                   "persistence) or a number.")] = "auto",
    granularity_criterion: Annotated[str, typer.Option(
        "--granularity-criterion", help="What --min-cluster-size auto maximises: persistence "
                                        "(total cluster persistence) or relative_validity "
                                        "(HDBSCAN's DBCV).")] = "persistence",
    min_samples: Annotated[int | None, typer.Option(
        "--min-samples", help="HDBSCAN min_samples [default: min(5, size) with auto, else "
                              "= min_cluster_size].")] = None,
    selection: Annotated[str, typer.Option(
        "--cluster-selection", help="HDBSCAN cluster_selection_method: eom or leaf.")] = "eom",
    umap_dims: Annotated[int, typer.Option(
        "--umap-dims", help="UMAP dimensions HDBSCAN clusters in (0: cluster the vectors "
                            "directly).")] = 5,
    umap_neighbors: Annotated[int, typer.Option(
        "--umap-neighbors", help="UMAP n_neighbors (also k of the k-NN graph).")] = 15,
    umap_epochs: Annotated[int | None, typer.Option(
        "--umap-epochs", help="UMAP optimisation epochs, 1 to 10,000 (reduction and 2-D map) "
                              "[default: 200; the reduction of more than 30,000 memes "
                              "100].")] = None,
    knn: Annotated[str, typer.Option(
        "--knn", help="Neighbour graph: auto (exact up to 20,000 memes, else ivf), exact, "
                      "ivf (inverted-file search, approximate), nndescent "
                      "(pynndescent).")] = "auto",
    no_layout: Annotated[bool, typer.Option(
        "--no-layout", help="Skip the 2-D UMAP map layout (x, y stay NULL).")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (UMAP, k-means, "
                                                     "spectral).")] = 42,
    name: Annotated[str | None, typer.Option("--name", help="A name for the run.")] = None,
    where: Annotated[str | None, typer.Option(
        "--where", help="SQL condition on the memes table (alias m) selecting what to "
                        "cluster.")] = None,
    sweep: Annotated[list[str] | None, typer.Option(
        "--sweep", help="PARAM=V1,V2,...: one run per value, e.g. "
                        "min_cluster_size=25,50,100,200 (repeat to cross).")] = None,
    reassign_noise: Annotated[bool, typer.Option(
        "--reassign-noise", help="Also store a run in which HDBSCAN noise is moved to its "
                                 "most likely cluster (the original run is kept).")] = False,
    assign_floor: Annotated[float, typer.Option(
        "--assign-floor", help="A noise meme is assigned to its most likely cluster only when "
                               "its soft membership there is at least this (0.1–1); below "
                               "it stays noise.")] = ASSIGN_FLOOR,
    stability: Annotated[int, typer.Option(
        "--stability", min=0, help="Re-run with N seeds (2–50) and store the mean pairwise "
                                   "ARI and per-cluster stability (0: off).")] = 0,
    consensus: Annotated[bool, typer.Option(
        "--consensus", help="With --stability: also store a consensus run (memes kept "
                            "together by most seeds).")] = False,
    layout_init: Annotated[str, typer.Option(
        "--layout-init", help="Start of the 2-D map: spectral (its own spectral embedding) or "
                              "reduction (the clustered UMAP reduction's principal "
                              "components).")] = "spectral",
    engine: Annotated[str, typer.Option(
        "--engine", help="cpu (umap-learn + hdbscan) or cuml (RAPIDS GPU UMAP + HDBSCAN; "
                         "pip install 'memeatlas[cuml]', CUDA only).")] = "cpu",
    force: ForceOption = False,
    db: DbOption = None,
) -> None:
    """Cluster embeddings: UMAP + HDBSCAN, baselines, or fused spaces. Prints run ids."""
    from memeatlas.cluster import ClusterConfig, run
    from memeatlas.cluster.fit import parse_sweep, run_summary
    from memeatlas.cluster.soft import check_assign_floor

    check_assign_floor(assign_floor)  # before the store is opened: a range error does no work

    cfg = ClusterConfig(
        spaces=list(space or []), weights=_floats(weights, "--weights"), fusion=fusion,
        algorithm=algorithm, k=k, min_cluster_size=min_cluster_size, min_samples=min_samples,
        granularity_criterion=granularity_criterion,
        cluster_selection_method=selection, umap_dims=umap_dims, umap_neighbors=umap_neighbors,
        umap_epochs=umap_epochs, knn=knn, layout=not no_layout, seed=seed, name=name,
        where=where, sweep=parse_sweep(sweep), reassign_noise=reassign_noise,
        assign_floor=assign_floor, stability=stability, consensus=consensus, force=force, engine=engine,
        layout_init=layout_init)
    with open_store(db) as store:
        run_ids = run(store, cfg)
        for rid in run_ids:
            s = run_summary(store, rid)
            echo_summary(f"run {rid}", {
                "kind": s["kind"], "space": s["space"], "algorithm": s["algorithm"],
                "memes": s["n_items"], "clusters": s["n_clusters"],
                "HDBSCAN noise share": s["noise_fraction"],
                **_membership_lines(s),
                **({"min_cluster_size": s["min_cluster_size"]} if s.get("min_cluster_size")
                   else {}),
                **({"chosen by": s["granularity"]} if s.get("granularity") else {}),
                **({"stability (mean ARI)": s["stability"]} if s.get("stability") is not None
                   else {}),
                **{f"{k} s": v for k, v in s["timings"].items()}})
            _echo_left_out(store, rid, s["n_items"])
    for rid in run_ids:
        typer.echo(rid)


def _membership_lines(s: dict) -> dict[str, str]:
    """'assigned from noise' and 'still noise' lines of a run summary (HDBSCAN runs)."""
    m, n = s.get("membership") or {}, s.get("n_items") or 0
    if not n or s.get("assign_floor") is None:
        return {}

    def share(k: str) -> str:
        return f"{m.get(k, 0)} ({100 * m.get(k, 0) / n:.1f} %)"

    return {"assigned from noise": f"{share('assigned')} with membership ≥ "
                                   f"{s['assign_floor']:g}",
            "still noise": share("noise")}


def label_cmd(
    run: Annotated[str | None, typer.Option(
        "--run", help="Run to label [default: the newest].")] = None,
    representation: Annotated[str, typer.Option(
        "--representation", help="Keywords: ctfidf, keybert or mmr.")] = "ctfidf",
    n_keywords: Annotated[int, typer.Option("--keywords", help="Keywords per cluster.")] = 10,
    annotator: Annotated[str | None, typer.Option(
        "--annotator", help="Whose annotations are the text [default: what the run's text "
                            "space embedded, else the annotator with most annotations].")] = None,
    fields: Annotated[str | None, typer.Option(
        "--fields", help="Comma-separated annotation fields [default: the space's fields, "
                         "else description,intent,ocr_text].")] = None,
    embedding_model: Annotated[str | None, typer.Option(
        "--embedding-model", help="Sentence-transformers model (id or dir) for "
                                  "keybert/mmr [default: the bundled all-MiniLM-L6-v2].")] = None,
    llm_backend: Annotated[str | None, typer.Option(
        "--llm-backend", help="Caption backend that writes a short name per cluster "
                              "(e.g. transformers, vllm, openai).")] = None,
    llm_model: Annotated[str | None, typer.Option(
        "--llm-model", help="Model for --llm-backend (the served model name for openai).")
    ] = None,
    base_url: Annotated[str | None, typer.Option(
        "--base-url", help="An OpenAI-compatible server for the names (implies --llm-backend "
                           "openai), e.g. http://127.0.0.1:8080/v1.")] = None,
    api_key_env: Annotated[str, typer.Option(
        "--api-key-env", help="openai: name of the environment variable holding the API key "
                              "(the key itself is never printed or stored).")] = "OPENAI_API_KEY",
    check_server: Annotated[bool, typer.Option(
        "--check-server", help="Probe the --base-url server (models, response formats, "
                               "latency), print what it supports and exit (1 when it "
                               "cannot be used).")] = False,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", help="openai: seconds each naming request may take, connecting and "
                          "reading the whole answer included (0.1 to 86400) "
                          "[default: 120].")] = None,
    max_response_bytes: Annotated[int | None, typer.Option(
        "--max-response-bytes", help="openai: largest answer read from the server, in bytes "
                                     "(1024 to 1073741824) [default: 8388608].")] = None,
    noise: Annotated[str, typer.Option(
        "--noise", help="assigned: memes assigned from noise count in their cluster (size, "
                        "keywords); apart: core members only.")] = "assigned",
    force: ForceOption = False,
    db: DbOption = None,
) -> None:
    """Label a run's clusters: BERTopic c-TF-IDF keywords, representatives, optional names."""
    import json

    from memeatlas.cluster import LabelConfig, label
    from memeatlas.errors import InputError

    if base_url and llm_backend is None:
        llm_backend = "openai"
    if base_url and llm_backend != "openai":
        raise InputError(f"--base-url is for --llm-backend openai, not {llm_backend!r}")
    llm_options: dict = {}
    limits = {k: v for k, v in (("timeout", timeout), ("max_response_bytes", max_response_bytes))
              if v is not None}
    if limits and llm_backend != "openai":
        raise InputError("--timeout and --max-response-bytes are for a server (--base-url)")
    if llm_backend == "openai":
        from memeatlas.http import HttpPolicy

        HttpPolicy(**limits)  # checked with their ranges before any work
        llm_options = {"api_key_env": api_key_env, **limits}
        if base_url:
            llm_options["base_url"] = base_url
    if check_server:
        from memeatlas.caption.server_check import check_server as probe
        from memeatlas.caption.server_check import report_lines, unusable_error

        if llm_backend != "openai":
            raise InputError("--check-server needs --base-url (or --llm-backend openai)")
        rep = probe(llm_model, vision=False, **llm_options)
        echo_summary("server check", report_lines(rep))
        typer.echo(json.dumps(rep, indent=2))
        err = unusable_error(rep)
        if err is not None:  # garbage or a failed text request: exit 1, not 0
            raise err
        return
    cfg = LabelConfig(run_id=run, representation=representation, n_keywords=n_keywords,
                      annotator=annotator,
                      fields=[f.strip() for f in fields.split(",")] if fields else None,
                      embedding_model=embedding_model, llm_backend=llm_backend,
                      llm_model=llm_model, llm_options=llm_options, noise=noise,
                      force=force)
    with open_store(db) as store:
        s = label(store, cfg)
    named = (f"{s.n_named} of {s.n_named + s.n_name_failed}" if cfg.llm_backend and not s.skipped
             else s.n_named)
    echo_summary(f"labels for {s.run_id}", {
        "clusters": s.n_clusters, "labelled": s.n_labelled, "named by LLM": named,
        **({"naming failed": f"{s.n_name_failed} ({s.name_error})"} if s.n_name_failed else {}),
        **({"names refused (schema)": f"{s.n_name_refused} kept their keyword label"}
           if s.n_name_refused else {}),
        "representation": s.representation, "labeler": s.labeler,
        "annotator": s.annotator or "-", "seconds": s.seconds,
        **({"skipped": "already labelled (--force to redo)"} if s.skipped else {})})
    typer.echo(s.run_id)


def assign_cmd(
    run: Annotated[str, typer.Option("--run", help="Run whose clusters new memes join.")],
    where: Annotated[str | None, typer.Option(
        "--where", help="SQL condition on the memes table (alias m) limiting which memes "
                        "are assigned.")] = None,
    k: Annotated[int, typer.Option("--k", help="Neighbours used per new meme.")] = 15,
    db: DbOption = None,
) -> None:
    """Place memes embedded after a run into its clusters (HDBSCAN prediction or k-NN vote)."""
    from memeatlas.cluster import assign

    with open_store(db) as store:
        s = assign(store, run, where=where, k=k)
    echo_summary(f"assigned to {s.run_id}", {
        "memes": s.n_assigned, "noise": s.n_noise, "method": s.method, "seconds": s.seconds})
    typer.echo(s.run_id)


def _echo_left_out(store, run_id: str, n_items: int) -> None:
    """Memes of the store a run does not hold, by reason (issue 16: never silent)."""
    from memeatlas.corpus.runs import get_run_info
    from memeatlas.leftout import counted
    from memeatlas.report.coverage import coverage

    absent = coverage(store, get_run_info(store, run_id), int(n_items or 0))["absent"]
    if absent:
        echo_summary("  not in this run", {"left out": counted(absent)})


def register(app: typer.Typer) -> None:
    """Add `cluster`, `label` and `assign` to the root app."""
    app.command("cluster")(cluster_cmd)
    app.command("label")(label_cmd)
    app.command("assign")(assign_cmd)
