"""classify: heads on planted classes, dynamic weighting, class-name init, the CLI round trip, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers_classify import planted, planted_store, write_labels_csv
from typer.testing import CliRunner

from memeatlas.classify.heads import HEADS, make_head
from memeatlas.classify.metrics import score
from memeatlas.cli import app
from memeatlas.store import Store

runner = CliRunner()


def cli(db, *args):
    return runner.invoke(app, [*args, "--db", str(db)])


@pytest.mark.parametrize("head", sorted(HEADS))
def test_every_head_separates_planted_classes(head):
    y, good, noise = planted(n=240, n_classes=4)
    tr, te = np.arange(240) < 160, np.arange(240) >= 160
    h = make_head(head, {"epochs": 30} if head in ("adapter", "mlp") else {})
    h.fit([good[tr], noise[tr]], y[tr], 4, seed=0)
    P = h.predict_proba([good[te], noise[te]])
    assert P.shape == (80, 4) and np.allclose(P.sum(axis=1), 1, atol=1e-6)
    assert score(y[te], P.argmax(axis=1), list("abcd"), bootstrap=0).macro_f1 >= 0.95


def test_dynamic_weighting_trusts_the_informative_space():
    y, good, noise = planted(n=240, n_classes=4)
    h = make_head("knn").fit([noise[:160], good[:160]], y[:160], 4)
    w = h.weights([noise[160:], good[160:]])
    assert w.mean(axis=0)[1] > 0.9  # the informative space, whichever position it has
    assert np.allclose(w.sum(axis=1), 1)
    eq = make_head("knn", {"weighting": "equal"}).fit([noise[:160], good[:160]], y[:160], 4)
    assert np.allclose(eq.weights([noise[160:], good[160:]]), 0.5)


def test_knn_top_k_truncates_probabilities():
    y, good, _ = planted(n=120, n_classes=6)
    P = make_head("knn", {"top_k": 2, "temperature": 1.0}).fit([good[:80]], y[:80], 6).predict_proba([good[80:]])
    assert ((P > 0).sum(axis=1) <= 2).all()


def test_torch_heads_are_deterministic():
    y, good, noise = planted(n=120, n_classes=3)
    for name in ("mlp", "adapter"):
        a = make_head(name, {"epochs": 5}).fit([good, noise], y, 3, seed=7).predict_proba([good, noise])
        b = make_head(name, {"epochs": 5}).fit([good, noise], y, 3, seed=7).predict_proba([good, noise])
        assert np.array_equal(a, b), name


TOPICS = {
    "cats": ["my cat knocked the glass off the table", "the kitten sleeps on my keyboard",
             "cat ignores me and wants food", "when your cat stares at the wall at 3 am",
             "cats sitting in cardboard boxes", "my cat brought me a dead mouse"],
    "football": ["the striker missed the penalty again", "goalkeeper saves the final shot",
                 "our team lost the match in extra time", "the referee gave a red card",
                 "fans celebrate the winning goal", "world cup final tonight"],
    "cooking": ["burned the pasta sauce again", "my first attempt at baking bread",
                "chopping onions makes me cry", "the recipe said five minutes it took an hour",
                "grandma's secret soup recipe", "frying eggs for breakfast"],
    "weather": ["it is raining again this weekend", "the heatwave melted my ice cream",
                "snow storm closes the roads", "forecast says sunny but it is pouring",
                "strong wind broke my umbrella", "thunder and lightning all night"],
}


def test_class_name_initialisation_beats_random_with_few_examples():
    from memeatlas.embed.text import get_text_encoder

    enc = get_text_encoder(None)
    classes = sorted(TOPICS)
    names = enc.encode(classes)
    X = enc.encode([t for c in classes for t in TOPICS[c]])
    y = np.repeat(np.arange(len(classes)), 6)
    tr = np.tile(np.arange(6) == 0, len(classes))  # one labelled example per class
    f1 = {}
    for init in ("names", "random"):
        seeds = []
        for seed in range(3):
            h = make_head("adapter", {"init": init, "epochs": 20})
            h.fit([X[tr]], y[tr], len(classes), seed=seed, class_name_vectors=[names])
            seeds.append(score(y[~tr], h.predict_proba([X[~tr]]).argmax(axis=1), classes, bootstrap=0).macro_f1)
        f1[init] = float(np.mean(seeds))
    assert f1["names"] > f1["random"] + 0.05, f1


@pytest.fixture
def labelled(tmp_path):
    db = tmp_path / "c.duckdb"
    with Store.open(db) as s:
        ids, y = planted_store(s, n=120, n_classes=3)
    names = np.array(["alpha", "beta", "gamma"])
    # Coded sample: the first 90 memes by two coders (who disagree on one meme), by corpus id.
    rows = [(f"s{i}", "ana", names[y[i]]) for i in range(90)]
    rows += [(f"s{i}", "ben", names[y[i]]) for i in range(0, 90, 3)]
    rows[1] = ("s1", "ana", "gamma" if names[y[1]] != "gamma" else "alpha")
    rows.append(("s1", "ben", names[y[1]]))
    write_labels_csv(tmp_path / "coded.csv", rows)
    return db, ids, y, names


def test_train_predict_evaluate_round_trip(labelled, tmp_path):
    db, ids, y, names = labelled
    r = cli(db, "classify", "import-labels", str(tmp_path / "coded.csv"), "--task", "kind")
    assert r.exit_code == 0, r.output
    r = cli(db, "classify", "train", "--task", "kind", "--space", "good,noise", "--folds", "3",
            "--bootstrap", "200", "--format", "json")
    assert r.exit_code == 0, r.output
    per_class = json.loads(r.stdout)
    assert {row["class"] for row in per_class} == set(names)
    with Store.open(db) as s:
        model_id, thr, cv, nt = s.fetchone("SELECT model_id, threshold, cv, n_train FROM classify_models")
        assert json.loads(cv)["macro_f1"] >= 0.95 and 0 < thr < 1
        assert nt == 89  # 90 coded memes, one coder tie left out
        metrics = {m for (m,) in s.fetchall("SELECT metric FROM evaluations WHERE run_id = ?", [model_id])}
        assert {"macro_f1", "accuracy", "class_f1", "class_precision", "class_recall",
                "confusion_matrix"} <= metrics
        lo, v, hi = s.fetchone("SELECT ci_low, value, ci_high FROM evaluations WHERE run_id = ? "
                               "AND metric = 'macro_f1'", [model_id])
        assert lo <= v <= hi
    # Same labels, vectors and parameters: skipped.
    r = cli(db, "classify", "train", "--task", "kind", "--space", "good,noise", "--folds", "3", "--bootstrap", "200")
    assert r.exit_code == 0 and "(stored)" in r.output
    # Predict the 30 uncoded memes once; a re-run skips, --force redoes.
    r = cli(db, "classify", "predict", "--model", model_id)
    assert r.exit_code == 0, r.output
    with Store.open(db) as s:
        n, first = s.fetchone("SELECT count(*), max(predicted_at) FROM class_predictions")
        assert n == 30
        got = dict(s.fetchall("SELECT meme_id, label FROM latest_class_predictions WHERE task = 'kind'"))
        acc = np.mean([got[ids[i]] == names[y[i]] for i in range(90, 120)])
        assert acc >= 0.95
    r = cli(db, "classify", "predict", "--model", model_id)
    assert "already predicted (skipped)  30" in r.output
    r = cli(db, "classify", "predict", "--model", model_id, "--force")
    with Store.open(db) as s:
        n, again = s.fetchone("SELECT count(*), max(predicted_at) FROM class_predictions")
        assert n == 30 and again > first
        assert s.scalar("SELECT count(*) FROM latest_class_predictions") == 30
    r = cli(db, "classify", "predict", "--model", model_id, "--include-labelled")
    assert "predicted                    90" in r.output  # the 90 coded memes; the rest are stored
    r = cli(db, "classify", "predict", "--model", model_id, "--where", "source_id = 's5'", "--force")
    assert "memes                        1" in r.output, r.output
    # Another labelled set: the rest, with a class the model never saw.
    rows = [(f"s{i}", "carl", names[y[i]]) for i in range(90, 114)]
    rows += [(f"s{i}", "carl", "delta") for i in range(114, 120)]
    write_labels_csv(tmp_path / "other.csv", rows)
    assert cli(db, "classify", "import-labels", str(tmp_path / "other.csv"), "--task", "kind-2").exit_code == 0
    r = cli(db, "classify", "evaluate", "--model", model_id, "--task", "kind-2", "--bootstrap", "100")
    assert r.exit_code == 0, r.output
    assert "memes of unseen classes" in r.output
    with Store.open(db) as s:
        assert s.scalar("SELECT value FROM evaluations WHERE command = 'classify-evaluate' "
                        "AND metric = 'macro_f1'") >= 0.95


def _one_line_error(r, *needles):
    assert r.exit_code == 1, r.output
    err = r.stderr.strip()
    assert err.startswith("Error: ") and "\n" not in err and "Traceback" not in r.output, err
    for n in needles:
        assert n in err, err


def test_errors_are_one_line(labelled, tmp_path):
    db, ids, y, names = labelled
    write_labels_csv(tmp_path / "bad.csv", [("s1", "ana", "alpha"), ("nope", "ana", "beta")])
    _one_line_error(cli(db, "classify", "import-labels", str(tmp_path / "bad.csv"), "--task", "t"),
                    "line 3", "unknown meme 'nope'", "nothing was imported")
    with Store.open(db) as s:
        assert s.scalar("SELECT count(*) FROM class_labels") == 0
    write_labels_csv(tmp_path / "one.csv", [(f"s{i}", "ana", "alpha") for i in range(10)])
    assert cli(db, "classify", "import-labels", str(tmp_path / "one.csv"), "--task", "one").exit_code == 0
    _one_line_error(cli(db, "classify", "train", "--task", "one", "--space", "good"), "only one class")
    assert cli(db, "classify", "import-labels", str(tmp_path / "coded.csv"), "--task", "kind").exit_code == 0
    _one_line_error(cli(db, "classify", "train", "--task", "kind", "--space", "good", "--classes", "alpha,zeta"),
                    "unknown class(es) 'zeta'")
    _one_line_error(cli(db, "classify", "train", "--task", "kind", "--space", "good", "--head", "svm"),
                    "unknown head 'svm'", "knn")
    _one_line_error(cli(db, "classify", "train", "--task", "nope", "--space", "good"), "no labels for task 'nope'")
    _one_line_error(cli(db, "classify", "train", "--task", "kind", "--space", "good", "--param", "kk=2"),
                    "no parameter kk")
    r = cli(db, "classify", "train", "--task", "kind", "--space", "good", "--folds", "0")
    assert r.exit_code == 0, r.output
    write_labels_csv(tmp_path / "zeta.csv", [(f"s{i}", "ana", "zeta") for i in range(10)])
    assert cli(db, "classify", "import-labels", str(tmp_path / "zeta.csv"), "--task", "z").exit_code == 0
    _one_line_error(cli(db, "classify", "evaluate", "--task", "z"), "none of the classes")
    # A re-import of the same rows is refused unless --force replaces them.
    _one_line_error(cli(db, "classify", "import-labels", str(tmp_path / "one.csv"), "--task", "one"),
                    "already stored for task")
    assert cli(db, "classify", "import-labels", str(tmp_path / "one.csv"), "--task", "one", "--force").exit_code == 0


def test_labels_from_manifest_field(tmp_path):
    db = tmp_path / "m.duckdb"
    with Store.open(db) as s:
        ids, y = planted_store(s, n=30, n_classes=3)
        for m, c in zip(ids, y, strict=True):
            s.execute("UPDATE memes SET meta = ? WHERE meme_id = ?", [json.dumps({"theme": f"t{c}"}), m])
    r = cli(db, "classify", "import-labels", "--task", "theme", "--from-meta", "theme")
    assert r.exit_code == 0, r.output
    r2 = cli(db, "classify", "import-labels", "--task", "theme", "--from-meta", "theme")
    assert r2.exit_code == 0 and "nothing new" in r2.output
    with Store.open(db) as s:
        assert s.fetchall("SELECT DISTINCT coder FROM class_labels") == [("meta:theme",)]
        assert s.scalar("SELECT count(*) FROM class_labels") == 30


def test_lexical_space_is_fitted_with_the_model_and_applied_to_new_memes(tmp_path):
    from helpers_embed import add_annotation, add_meme, meme_id_for

    db = tmp_path / "lex.duckdb"
    rows, held = [], {}
    with Store.open(db) as s:
        for c, texts in TOPICS.items():
            for i, t in enumerate(texts):
                m = meme_id_for(f"{c}:{i}")
                add_meme(s, m)
                add_annotation(s, m, "human:test", prompt_hash="", schema_hash="", ocr_text=t)
                if i < 4:
                    rows.append((m, "ana", c))
                else:
                    held[m] = c
    write_labels_csv(tmp_path / "l.csv", rows, header=("meme_id", "coder", "label"))
    assert cli(db, "classify", "import-labels", str(tmp_path / "l.csv"), "--task", "topic").exit_code == 0
    r = cli(db, "classify", "train", "--task", "topic", "--space", "lexical:ocr_text", "--head", "linear",
            "--folds", "2", "--bootstrap", "0")
    assert r.exit_code == 0, r.output
    assert cli(db, "classify", "predict", "--task", "topic").exit_code == 0
    with Store.open(db) as s:
        got = dict(s.fetchall("SELECT meme_id, label FROM class_predictions"))
        params = json.loads(s.scalar("SELECT params FROM classify_models"))
    assert set(got) == set(held)  # only the uncoded memes, vectors computed at predict time
    assert params["lexical"]["lexical:ocr_text"]["dim"] > 1
    _one_line_error(cli(db, "classify", "train", "--task", "topic", "--space", "lexical:"), "name the annotation")
