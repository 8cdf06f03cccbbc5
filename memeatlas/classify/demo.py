"""The demo's classify step: code half the memes by theme, train a classifier, predict and score the rest."""

from __future__ import annotations

import csv
from pathlib import Path

CODER = "simulated:manifest"
TASK, HELDOUT_TASK = "theme", "theme-heldout"


def demo_classify(store, spaces: list[str], directory: Path, force: bool = False) -> tuple[int, str]:
    """A worked supervised study on the demo corpus, returning (work done, one-line detail).

    The manifest's theme stands in for a human coder: every second meme (by meme id) becomes the
    coded sample (task `theme`), the others a held-out set (`theme-heldout`). A knn head is trained
    on the text space with 3-fold CV, predicts the uncoded memes, and is scored on the held-out set.
    """
    from memeatlas.classify.labels import import_labels
    from memeatlas.classify.predict import evaluate_model, predict
    from memeatlas.classify.train import TrainConfig, train

    work = 0
    if force or not store.scalar("SELECT count(*) FROM class_labels WHERE task = ?", [TASK]):
        rows = store.fetchall("SELECT meme_id, meta->>'theme' FROM memes WHERE meta->>'theme' IS NOT NULL "
                              "ORDER BY meme_id")
        for task, part in ((TASK, rows[0::2]), (HELDOUT_TASK, rows[1::2])):
            path = Path(directory) / f"coded-{task}.csv"
            with open(path, "w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh)
                w.writerow(["meme_id", "coder", "label"])
                w.writerows((m, CODER, t) for m, t in part)
            import_labels(store, path, task=task, force=True)
        work += 1
    folds = 3
    s = train(store, TrainConfig(task=TASK, spaces=spaces, head="knn", folds=folds, bootstrap=200, force=force))
    work += not s.skipped
    p = predict(store, s.model_id, force=force)
    work += bool(p.n_predicted)
    note = f"knn on {', '.join(spaces)}: {s.n_train} coded memes"
    if s.scores:
        note += f", {folds}-fold CV macro-F1 {s.scores.macro_f1:.2f}"
    if not s.skipped or p.n_predicted:
        e = evaluate_model(store, s.model_id, HELDOUT_TASK, bootstrap=200)
        if e.closed:
            note += f", held-out macro-F1 {e.closed.macro_f1:.2f}"
    note += f"; {p.n_predicted} predicted" + (" (stored)" if not p.n_predicted else "")
    return work, note
