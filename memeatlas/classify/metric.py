"""Metric learning: fine-tune a sentence-transformers text encoder so memes of one class embed close.

Two losses from sentence-transformers, driven by a small seeded loop (no `datasets`/`accelerate`):

* ``mnrl`` (MultipleNegativesRankingLoss, in-batch negatives): each step takes anchors of distinct
  classes, pairs every anchor with another meme of its class as the positive, and treats the other
  anchors' positives as negatives; batches never hold two anchors of one class (no false negatives).
* ``triplet`` (BatchHardTripletLoss): batches of a few classes × 4 memes each; every anchor's hardest
  positive and hardest negative in the batch form its triplet.

The tuned model is saved as a normal sentence-transformers directory (plus memeatlas-encoder.json),
recorded in `text_encoders`, and embeds with `memeatlas embed text --model DIR`.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from memeatlas import progress
from memeatlas.classify.labels import load_labels
from memeatlas.errors import InputError
from memeatlas.provenance import new_run_id, software, stable_json, utcnow

LOSSES = ("mnrl", "triplet")
_PER_CLASS_TRIPLET = 4


@dataclass
class TuneConfig:
    """What to fine-tune on and how."""

    task: str
    out: Path
    fields: tuple[str, ...] = ("description", "intent")
    annotator: str | None = None
    base_model: str | None = None
    loss: str = "mnrl"
    epochs: int = 1
    batch_size: int = 32
    lr: float = 2e-5
    max_examples: int | None = None
    seed: int = 0
    coder: str | None = None
    device: str | None = None
    force: bool = False
    warmup: float = 0.1


@dataclass
class TuneSummary:
    encoder_id: str
    path: str
    base_model: str
    loss: str
    n_examples: int
    n_classes: int
    steps: int
    seconds: float
    seconds_per_1000: float


def _batches_mnrl(labels: list[int], bs: int, rng: random.Random) -> list[list[int]]:
    """Anchor index batches with distinct classes, covering every example once (classes with ≥ 2 members)."""
    by: dict[int, list[int]] = {}
    for i, c in enumerate(labels):
        by.setdefault(c, []).append(i)
    pool = [i for i, c in enumerate(labels) if len(by[c]) > 1]
    rng.shuffle(pool)
    batches: list[list[int]] = []
    while pool:
        seen, batch, rest = set(), [], []
        for i in pool:
            if len(batch) < bs and labels[i] not in seen:
                batch.append(i)
                seen.add(labels[i])
            else:
                rest.append(i)
        if len(batch) < 2:  # only one class left: no negatives possible
            break
        batches.append(batch)
        pool = rest
    return batches


def _batches_triplet(labels: list[int], bs: int, rng: random.Random) -> list[list[int]]:
    """Batches of bs // 4 classes × 4 examples (fewer when a class is small)."""
    by: dict[int, list[int]] = {}
    for i, c in enumerate(labels):
        by.setdefault(c, []).append(i)
    chunks = []
    for members in by.values():
        if len(members) < 2:
            continue
        m = members[:]
        rng.shuffle(m)
        chunks += [m[k:k + _PER_CLASS_TRIPLET] for k in range(0, len(m), _PER_CLASS_TRIPLET)
                   if len(m[k:k + _PER_CLASS_TRIPLET]) >= 2]
    rng.shuffle(chunks)
    per = max(2, bs // _PER_CLASS_TRIPLET)
    return [sum(chunks[k:k + per], []) for k in range(0, len(chunks), per) if len(chunks[k:k + per]) >= 2]


def training_texts(store, cfg: TuneConfig) -> tuple[list[str], list[str]]:
    """(texts, labels) of the task's labelled memes with a non-empty text."""
    from memeatlas.corpus.texts import annotation_texts, choose_annotator

    ls = load_labels(store, cfg.task, coder=cfg.coder)
    ids = sorted(ls.labels)
    annotator = choose_annotator(store, cfg.fields, cfg.annotator, ids)
    items, _ = annotation_texts(store, annotator, cfg.fields, meme_ids=ids)
    pairs = [(t, ls.labels[m]) for m, t in items if t.strip()]
    if cfg.max_examples and len(pairs) > cfg.max_examples:
        from sklearn.model_selection import train_test_split

        y = [c for _, c in pairs]
        try:
            pairs, _ = train_test_split(pairs, train_size=cfg.max_examples, stratify=y, random_state=cfg.seed)
        except ValueError:  # classes too small to stratify
            pairs = random.Random(cfg.seed).sample(pairs, cfg.max_examples)
    return [t for t, _ in pairs], [c for _, c in pairs]


def fine_tune(texts: list[str], labels: list[str], *, base_model: str | None = None, loss: str = "mnrl",
              epochs: int = 1, batch_size: int = 32, lr: float = 2e-5, seed: int = 0, device: str | None = None,
              warmup: float = 0.1):
    """Fine-tune and return (model, steps, seconds). The loop behind `tune_encoder`, usable on its own."""
    import torch
    from sentence_transformers import SentenceTransformer

    try:  # sentence-transformers ≥ 6; 3.x–5.x keep the losses at the top level
        from sentence_transformers.sentence_transformer import losses
    except ImportError:  # pragma: no cover - older releases
        from sentence_transformers import losses

    from memeatlas.embed.config import model_load_error
    from memeatlas.embed.text import resolve_text_model

    if loss not in LOSSES:
        raise InputError(f"unknown loss {loss!r}; choose one of: {', '.join(LOSSES)}")
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise InputError("metric learning needs labelled memes of at least two classes")
    y = [classes.index(c) for c in labels]
    load_path, _ = resolve_text_model(base_model)
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        model = SentenceTransformer(load_path, device=device)
    except (OSError, ValueError) as exc:
        raise model_load_error("text", base_model or load_path, exc) from None
    dev = model.device
    loss_fn = (losses.MultipleNegativesRankingLoss(model) if loss == "mnrl"
               else losses.BatchHardTripletLoss(model))
    rng = random.Random(seed)
    make = _batches_mnrl if loss == "mnrl" else _batches_triplet
    plan = [make(y, batch_size, rng) for _ in range(epochs)]
    total = sum(len(p) for p in plan)
    if total == 0:
        raise InputError("no class has two labelled memes with text; metric learning needs same-class pairs")
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    n_warm = max(1, int(warmup * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / n_warm) * max(0.0, (total - s) / max(1, total - n_warm)))
    by: dict[int, list[int]] = {}
    for i, c in enumerate(y):
        by.setdefault(c, []).append(i)

    # sentence-transformers ≥ 6 renamed tokenize → preprocess; older releases only have tokenize.
    tokenize = getattr(model, "preprocess", None) or model.tokenize

    def feats(batch_texts):
        f = tokenize(batch_texts)
        return {k: v.to(dev) if hasattr(v, "to") else v for k, v in f.items()}

    model.train()
    t0 = time.perf_counter()
    steps = 0
    for epoch in plan:
        for batch in progress.track(epoch, desc="metric learning"):
            opt.zero_grad()
            if loss == "mnrl":
                pos = [rng.choice([j for j in by[y[i]] if j != i]) for i in batch]
                value = loss_fn([feats([texts[i] for i in batch]), feats([texts[j] for j in pos])], None)
            else:
                value = loss_fn([feats([texts[i] for i in batch])],
                                torch.tensor([y[i] for i in batch], device=dev))
            value.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            steps += 1
    model.eval()
    return model, steps, time.perf_counter() - t0


def tune_encoder(store, cfg: TuneConfig) -> TuneSummary:
    """Fine-tune on a task's labelled memes, save the model to `cfg.out`, record it in `text_encoders`."""
    from memeatlas.embed.text import resolve_text_model

    out = Path(cfg.out)
    if out.exists() and any(out.iterdir()) and not cfg.force:
        raise InputError(f"{out} exists and is not empty; pass another --out or --force to overwrite")
    texts, labels = training_texts(store, cfg)
    if len(texts) < 2:
        raise InputError(f"task {cfg.task!r}: fewer than two labelled memes have {'/'.join(cfg.fields)} text")
    model, steps, seconds = fine_tune(texts, labels, base_model=cfg.base_model, loss=cfg.loss, epochs=cfg.epochs,
                                      batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed, device=cfg.device,
                                      warmup=cfg.warmup)
    if out.exists() and cfg.force:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save(str(out))
    base_name = resolve_text_model(cfg.base_model)[1]
    encoder_id = new_run_id("encoder")
    n_seen = cfg.epochs * len(texts)
    params = {"fields": list(cfg.fields), "annotator": cfg.annotator, "epochs": cfg.epochs,
              "batch_size": cfg.batch_size, "lr": cfg.lr, "seed": cfg.seed, "warmup": cfg.warmup,
              "max_examples": cfg.max_examples, "coder": cfg.coder, "steps": steps,
              "classes": len(set(labels)), "device": str(model.device)}
    record = {"encoder_id": encoder_id, "base_model": base_name, "task": cfg.task, "loss": cfg.loss,
              "params": params, "n_examples": len(texts), "seconds": round(seconds, 2),
              "software": software("torch", "sentence-transformers", "transformers")}
    (out / "memeatlas-encoder.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    with store.transaction():
        store.execute("INSERT INTO text_encoders (encoder_id, path, base_model, task, loss, params, n_examples, "
                      "seconds, software, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                      [encoder_id, str(out.resolve()), base_name, cfg.task, cfg.loss, stable_json(params),
                       len(texts), seconds, stable_json(record["software"]), utcnow()])
    return TuneSummary(encoder_id=encoder_id, path=str(out.resolve()), base_model=base_name, loss=cfg.loss,
                       n_examples=len(texts), n_classes=len(set(labels)), steps=steps, seconds=round(seconds, 2),
                       seconds_per_1000=round(1000 * seconds / max(1, n_seen), 2))
