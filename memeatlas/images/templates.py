"""Template matching: each meme's best template from a reference gallery, or "unknown".

A gallery is a folder of template images named by template (`Distracted-Boyfriend.jpg`), or
of sub-folders named by template holding several images each. Gallery images and memes are
embedded with the same image model (default the offline MobileNetV2); a meme's score for a
template is its cosine to that template's closest gallery image.

The "unknown" threshold is calibrated on the gallery itself: every gallery image is scored
against the *other* templates, as a meme of a template missing from the gallery would be, and
the threshold is the `quantile` (default 0.95) of those impostor scores. So by construction
about 5 % of memes of unseen templates would still get a (wrong) template, and a meme that
matches a gallery template better than almost any two different templates match each other
gets that template.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from memeatlas import progress
from memeatlas.errors import InputError
from memeatlas.provenance import short_hash, software, stable_json, utcnow

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
DEFAULT_MODEL = "torchvision:mobilenet_v2"
DEFAULT_QUANTILE = 0.95
UNKNOWN = "unknown"


@dataclass
class TemplateMatchConfig:
    """What `match_templates` matches.

    gallery: folder of template images (file stem = template) or of template sub-folders.
    model: image model for gallery and memes; the memes' vectors come from (and missing ones
      are added to) the space `image:<model short name>`, or `space` when given.
    threshold: fixed "unknown" threshold; None = calibrated (`quantile` of impostor scores).
    """

    gallery: str | Path
    model: str = DEFAULT_MODEL
    space: str | None = None
    threshold: float | None = None
    quantile: float = DEFAULT_QUANTILE
    batch_size: int = 32
    device: str | None = None
    force: bool = False


@dataclass
class TemplateMatchSummary:
    """What a template-matching call did."""

    run_id: str
    gallery: str
    space: str
    model: str
    n_templates: int = 0
    n_gallery_images: int = 0
    threshold: float = 0.0
    calibration: dict[str, Any] = field(default_factory=dict)
    matched: int = 0          # memes scored in this call
    skipped_existing: int = 0
    n_known: int = 0          # of all memes in the run: given a template
    n_unknown: int = 0
    vlm_compared: int = 0     # memes with a template from both the gallery and a VLM annotation
    vlm_agree: int = 0
    agreement: float | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_gallery(folder: str | Path) -> list[tuple[str, Path]]:
    """(template, image path) of every gallery image, sorted; raises InputError when empty."""
    root = Path(folder).expanduser()
    if root.exists() and not root.is_dir():
        raise InputError(f"{root}: the gallery is a file, not a folder; pass the folder of "
                         f"template images (named by template)")
    if not root.is_dir():
        raise InputError(f"{root}: gallery folder not found (a folder of template images named "
                         f"by template)")
    out = []
    unnamed: list[str] = []  # names that are not UTF-8: no template name, no stored path
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        rel = p.relative_to(root)
        try:
            str(p).encode("utf-8")
        except UnicodeEncodeError:
            unnamed.append(ascii(str(rel)))
            continue
        out.append((rel.parts[0] if len(rel.parts) > 1 else p.stem, p))
    if unnamed:
        progress.info(f"templates: skipped {len(unnamed)} gallery file(s) whose names are not "
                      f"UTF-8 (rename them), e.g. {unnamed[0]}")
    if not out:
        raise InputError(f"{root}: no template images ({', '.join(IMAGE_SUFFIXES)}) in the "
                         f"gallery folder")
    return out


def _file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def template_scores(M: np.ndarray, G: np.ndarray, labels: list[str]
                    ) -> tuple[list[str], np.ndarray]:
    """(templates, [n_memes, n_templates] scores): per template the best gallery image's cosine."""
    names = sorted(set(labels))
    col = {t: i for i, t in enumerate(names)}
    S = M @ G.T
    out = np.full((len(M), len(names)), -np.inf, dtype=np.float32)
    idx = np.array([col[t] for t in labels])
    for j in range(len(names)):
        cols = np.nonzero(idx == j)[0]
        out[:, j] = S[:, cols].max(axis=1)
    return names, out


def calibrate(G: np.ndarray, labels: list[str], quantile: float) -> tuple[float, dict[str, Any]]:
    """Threshold = `quantile` of each gallery image's best score against *other* templates."""
    if len(set(labels)) < 2:
        raise InputError("calibrating the 'unknown' threshold needs a gallery of at least two "
                         "templates; pass --threshold")
    lab = np.array(labels)
    S = G @ G.T
    impostor = np.array([S[i, lab != lab[i]].max() for i in range(len(G))])
    thr = float(np.quantile(impostor, quantile))
    return thr, {"method": "quantile of gallery impostor scores", "quantile": quantile,
                 "n_impostor_scores": int(len(impostor)),
                 "impostor_median": round(float(np.median(impostor)), 4),
                 "impostor_max": round(float(impostor.max()), 4)}


def _encode_gallery(items: list[tuple[str, Path]], cfg: TemplateMatchConfig):
    from memeatlas.embed.image import ImageEncoder
    from memeatlas.imaging import load_image

    enc = ImageEncoder(cfg.model, device=cfg.device)
    images = [enc.preprocess(load_image(p)) for _, p in items]
    return enc.encode(images, batch_size=cfg.batch_size)


def match_templates(store, config: TemplateMatchConfig) -> TemplateMatchSummary:
    """Give every image meme its best gallery template, or "unknown" below the threshold.

    Embeds memes missing from the image space first (the same as `embed image`), then scores
    them; a re-run with the same gallery contents, model and threshold only scores memes it
    has not scored. Results: `template_matches` / `template_runs`, and the `meme_templates`
    view beside the VLM's `template` field.
    """
    from memeatlas.embed import ImageEmbedConfig, embed_image, get_space, load_space
    from memeatlas.embed.image import model_short_name, resolve_image_model

    t0 = time.perf_counter()
    cfg = config
    if not 0 < cfg.quantile < 1:
        raise InputError("--quantile must be between 0 and 1")
    items = read_gallery(cfg.gallery)
    gallery = str(Path(cfg.gallery).expanduser().resolve())
    ghash = short_hash([(t, _file_sha(p)) for t, p in items], 16)
    _, model_name = resolve_image_model(cfg.model)
    space = cfg.space or f"image:{model_short_name(model_name)}"
    info = get_space(store, space)
    if info is not None and info.model != model_name:
        raise InputError(f"space {space!r} holds vectors of {info.model}, not {model_name}; "
                         f"pass --model {info.model} or another --space")
    params = {"gallery_hash": ghash, "model": model_name, "space": space,
              "threshold": cfg.threshold, "quantile": None if cfg.threshold else cfg.quantile}
    run_id = "tm-" + short_hash(params, 12)
    n_templates = len({t for t, _ in items})
    summary = TemplateMatchSummary(run_id=run_id, gallery=gallery, space=space,
                                   model=model_name, n_templates=n_templates,
                                   n_gallery_images=len(items))

    embed_image(store, ImageEmbedConfig(model=cfg.model, space=space, batch_size=cfg.batch_size,
                                        device=cfg.device))
    ids, M = load_space(store, space)
    stored_run = store.fetchone("SELECT threshold, calibration FROM template_runs "
                                "WHERE run_id = ?", [run_id])
    done = set() if cfg.force else {r[0] for r in store.fetchall(
        "SELECT meme_id FROM template_matches WHERE run_id = ?", [run_id])}
    todo = [i for i, m in enumerate(ids) if m not in done]
    summary.skipped_existing = len(ids) - len(todo)
    if todo or stored_run is None or cfg.force:
        progress.info(f"templates: embedding {len(items)} gallery images of {n_templates} "
                      f"templates from {gallery}")
        G = _encode_gallery(items, cfg)
        labels = [t for t, _ in items]
        if cfg.threshold is not None:
            thr, calib = float(cfg.threshold), {"method": "given"}
        else:
            thr, calib = calibrate(G, labels, cfg.quantile)
        names, S = template_scores(M[todo], G, labels) if todo else (sorted(set(labels)), None)
        rows = []
        if S is not None:
            order = np.argsort(-S, axis=1)
            for k, i in enumerate(todo):
                b = order[k, 0]
                s = order[k, 1] if S.shape[1] > 1 else None
                score = float(S[k, b])
                rows.append((ids[i], names[b] if score >= thr else UNKNOWN, names[b],
                             round(score, 6), names[s] if s is not None else None,
                             round(float(S[k, s]), 6) if s is not None else None))
        _write(store, run_id, gallery, ghash, items, space, model_name, thr, calib, params,
               rows, cfg.force)
        summary.matched = len(rows)
    else:
        thr = float(stored_run[0])
    summary.threshold = thr
    import json as _json

    summary.calibration = _json.loads(store.scalar(
        "SELECT calibration FROM template_runs WHERE run_id = ?", [run_id]) or "{}")
    summary.n_known, summary.n_unknown = (int(x or 0) for x in store.fetchone(
        "SELECT count(*) FILTER (WHERE template <> 'unknown'), "
        "count(*) FILTER (WHERE template = 'unknown') FROM template_matches WHERE run_id = ?",
        [run_id]))
    compared, agree = store.fetchone(
        "SELECT count(*) FILTER (WHERE agrees IS NOT NULL), count(*) FILTER (WHERE agrees) "
        "FROM meme_templates WHERE run_id = ?", [run_id])
    summary.vlm_compared, summary.vlm_agree = int(compared or 0), int(agree or 0)
    summary.agreement = (summary.vlm_agree / summary.vlm_compared
                         if summary.vlm_compared else None)
    summary.seconds = time.perf_counter() - t0
    return summary


def _write(store, run_id: str, gallery: str, ghash: str, items: list, space: str, model: str,
           thr: float, calib: dict[str, Any], params: dict[str, Any], rows: list[tuple],
           force: bool) -> None:
    """The run row and this call's matches, in one transaction."""
    import pyarrow as pa

    now = utcnow()
    cols = list(zip(*rows, strict=True)) if rows else [[] for _ in range(6)]
    tbl = pa.table({
        "meme_id": pa.array(cols[0], pa.string()), "template": pa.array(cols[1], pa.string()),
        "best_template": pa.array(cols[2], pa.string()),
        "score": pa.array(cols[3], pa.float64()),
        "second_template": pa.array(cols[4], pa.string()),
        "second_score": pa.array(cols[5], pa.float64())})
    with store.registered("_tm_batch", tbl), store.transaction() as con:
        if force:
            con.execute("DELETE FROM template_matches WHERE run_id = ?", [run_id])
        con.execute("DELETE FROM template_runs WHERE run_id = ?", [run_id])
        con.execute(
            "INSERT INTO template_runs (run_id, gallery, gallery_hash, n_templates, "
            "n_gallery_images, space, model, threshold, calibration, params, software, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, gallery, ghash, len({t for t, _ in items}), len(items), space, model, thr,
             stable_json(calib), stable_json(params),
             stable_json(software("torch", "torchvision", "numpy")), now])
        con.execute("DELETE FROM template_matches WHERE run_id = ? AND meme_id IN "
                    "(SELECT meme_id FROM _tm_batch)", [run_id])
        con.execute("INSERT INTO template_matches SELECT ?, meme_id, template, best_template, "
                    "score, second_template, second_score, ? FROM _tm_batch", [run_id, now])
