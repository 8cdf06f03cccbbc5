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

Real galleries hold one template under several names (`Bad-Luck-Brian-Meme`, `Badluckbrian`;
a file copied under a second name). Scored as "other templates", such aliases put impostor
scores near 1.0 and push the threshold above nearly every right answer. So before calibrating,
gallery images of different names that are one picture are found (identical files, or CNN
cosine >= ALIAS_MIN_COSINE confirmed geometrically by `memeatlas.images.picture_match`) and
their names merged into one template: an alias is never an impostor of its own template, a
copy is counted once, and a meme's second-best template is the best one outside its best
template's aliases. The aliases are recorded with the run and shown in the summary.
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
# Candidates for "one picture under two names": CNN cosine at least this (one picture framed
# differently reaches only 0.83 on the Wang & Wen gallery, Y-U-No redrawn 0.82, while distinct
# templates that look alike reach 0.86), then the geometric check decides
# (benchmarks/images_real.py templates).
ALIAS_MIN_COSINE = 0.8
# Without texture to verify (a flat drawing), only near-identical vectors count as one picture.
ALIAS_UNVERIFIED_COSINE = 0.98
CALIBRATION_VERSION = 2  # 2: aliases merged before calibrating


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
    calibration: dict[str, Any] = field(default_factory=dict)  # incl. basis and aliases
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


def find_aliases(G: np.ndarray, labels: list[str], images: list | None = None,
                 shas: list[str] | None = None) -> list[list[str]]:
    """Groups of two or more template names whose gallery images are one picture, sorted.

    Two images of different names are one picture when their files are identical (`shas`), or
    their cosine is >= ALIAS_MIN_COSINE and the geometric check (`images`, PIL) says the same
    picture or a picture made from it; without images, or with too little texture to tell,
    a cosine >= ALIAS_UNVERIFIED_COSINE.
    """
    from memeatlas.images.neardup import MIN_INLIERS, SAME_TEMPLATE_AGREEMENT

    parent = {t: t for t in labels}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def link(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    if shas is not None:
        first: dict[str, str] = {}
        for t, h in zip(labels, shas, strict=True):
            link(first.setdefault(h, t), t)
    S = G @ G.T
    feats: dict[int, Any] = {}
    for i, j in zip(*np.nonzero(np.triu(S >= ALIAS_MIN_COSINE, 1)), strict=True):
        a, b = labels[i], labels[j]
        if find(a) == find(b):
            continue
        agreement = inliers = None
        if images is not None:
            from memeatlas.images.picture_match import compare, features_of

            for k in (i, j):
                if k not in feats:
                    feats[k] = features_of(images[k])
            inliers, agreement = compare(feats[i], feats[j])
        if agreement is None:
            same = S[i, j] >= ALIAS_UNVERIFIED_COSINE
        else:
            same = inliers >= MIN_INLIERS and agreement >= SAME_TEMPLATE_AGREEMENT
        if same:
            link(a, b)
    groups: dict[str, set[str]] = {}
    for t in labels:
        groups.setdefault(find(t), set()).add(t)
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)


def alias_map(labels: list[str], aliases: list[list[str]]) -> dict[str, str]:
    """template → the name standing for its alias group (the group's first name; itself)."""
    out = {t: t for t in labels}
    for g in aliases:
        for t in g:
            out[t] = g[0]
    return out


def calibrate(G: np.ndarray, labels: list[str], quantile: float,
              aliases: list[list[str]] | None = None) -> tuple[float, dict[str, Any]]:
    """Threshold = `quantile` of each gallery picture's best score against *other* templates.

    Names in one alias group are one template: never each other's impostors, and an image
    that repeats a picture already counted under another name of its group (cosine >=
    ALIAS_UNVERIFIED_COSINE) adds no second impostor score.
    """
    aliases = aliases or []
    canon = alias_map(labels, aliases)
    group = np.array([canon[t] for t in labels])
    if len(set(group)) < 2:
        raise InputError("calibrating the 'unknown' threshold needs a gallery of at least two "
                         "templates (after merging alias names); pass --threshold")
    S = G @ G.T
    lab = np.array(labels)
    kept: list[int] = []
    for i in range(len(G)):
        # a copy of a picture counted under another name of the same template: skip it
        if any(group[k] == group[i] and lab[k] != lab[i] and S[i, k] >= ALIAS_UNVERIFIED_COSINE
               for k in kept):
            continue
        kept.append(i)
    impostor = np.array([S[i, group != group[i]].max() for i in kept])
    thr = float(np.quantile(impostor, quantile))
    n_merged = sum(len(g) for g in aliases)
    basis = (f"{quantile:g} quantile of {len(impostor)} impostor scores (each gallery picture's "
             f"best cosine to another template"
             + (f"; {n_merged} alias names merged into {len(aliases)} "
                f"template{'s' if len(aliases) > 1 else ''}" if aliases
                else "") + ")")
    return thr, {"method": "quantile of gallery impostor scores", "quantile": quantile,
                 "basis": basis, "n_impostor_scores": int(len(impostor)),
                 "impostor_median": round(float(np.median(impostor)), 4),
                 "impostor_max": round(float(impostor.max()), 4),
                 "aliases": aliases, "version": CALIBRATION_VERSION}


def _load_gallery(items: list[tuple[str, Path]], cfg: TemplateMatchConfig):
    """(PIL images, [n, d] vectors) of the gallery files."""
    from memeatlas.embed.image import ImageEncoder
    from memeatlas.imaging import load_image

    enc = ImageEncoder(cfg.model, device=cfg.device)
    pil = [load_image(p) for _, p in items]
    return pil, enc.encode([enc.preprocess(im) for im in pil], batch_size=cfg.batch_size)


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
              "threshold": cfg.threshold, "quantile": None if cfg.threshold else cfg.quantile,
              "calibration_version": CALIBRATION_VERSION}
    run_id = "tm-" + short_hash(params, 12)
    n_templates = len({t for t, _ in items})  # names; the summary's aliases say which are one
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
        pil, G = _load_gallery(items, cfg)
        labels = [t for t, _ in items]
        aliases = find_aliases(G, labels, pil, [_file_sha(p) for _, p in items])
        if aliases:
            progress.info(f"templates: {len(aliases)} groups of gallery names are one picture: "
                          + "; ".join(" = ".join(g) for g in aliases))
        if cfg.threshold is not None:
            thr, calib = float(cfg.threshold), {"method": "given", "basis": "--threshold",
                                                "aliases": aliases}
        else:
            thr, calib = calibrate(G, labels, cfg.quantile, aliases)
        canon = alias_map(labels, aliases)
        names, S = template_scores(M[todo], G, labels) if todo else (sorted(set(labels)), None)
        rows = []
        if S is not None:
            order = np.argsort(-S, axis=1)
            for k, i in enumerate(todo):
                b = order[k, 0]
                # the runner-up is another template, not an alias name of the best one
                s = next((c for c in order[k, 1:] if canon[names[c]] != canon[names[b]]), None)
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
