"""Label interpretability task: export with a hidden key, scoring as per-cluster precision/recall."""

from __future__ import annotations

import csv
import json

import pytest
from helpers_evaluate import add_memes, add_run
from sklearn.metrics import precision_recall_fscore_support

from memeatlas.errors import InputError, NotFoundError
from memeatlas.evaluate import export_label_task, score_label_task


@pytest.fixture
def labelled(store):
    m = add_memes(store, 40)
    add_run(store, "r", {x: (i % 4 if i < 36 else -1) for i, x in enumerate(m)})
    for c, name in enumerate(["cats on keyboards", "monday at work", "exam stress", "dog reactions"]):
        store.execute("INSERT INTO cluster_labels (run_id, cluster, size, keywords, label) VALUES (?,?,?,?,?)",
                      ["r", c, 9, [name.split()[0], name.split()[-1]], name])
    return m


def _read(path):
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_export_hides_key_and_shuffles(store, labelled, tmp_path):
    s = export_label_task(store, "r", tmp_path / "task", memes_per_item=3, items_per_cluster=2, seed=1)
    assert (s.n_clusters, s.n_items) == (4, 8)
    items = _read(tmp_path / "task" / "items.csv")
    opts = _read(tmp_path / "task" / "labels.csv")
    assert [o["option"] for o in opts] == ["L01", "L02", "L03", "L04"]
    assert set(items[0]) == {"item_id", "meme_1", "meme_2", "meme_3", "path_1", "path_2", "path_3", "answer"}
    assert not (tmp_path / "task" / "key.csv").exists()
    assert "cluster" not in (tmp_path / "task" / "items.csv").read_text()
    key = dict(store.fetchall("SELECT item_id, cluster FROM label_task_items WHERE task_id = ?", [s.task_id]))
    assigned = dict(store.fetchall("SELECT meme_id, cluster FROM cluster_assignments WHERE run_id='r'"))
    for it in items:
        memes = [it[f"meme_{k}"] for k in (1, 2, 3)]
        assert len(set(memes)) == 3 and {assigned[x] for x in memes} == {key[it["item_id"]]}
    # Items are not grouped by cluster.
    assert [key[i["item_id"]] for i in items] != sorted(key[i["item_id"]] for i in items)
    assert "<img" in (tmp_path / "task" / "task.html").read_text()


def test_score_matches_sklearn_and_is_stored(store, labelled, tmp_path):
    s = export_label_task(store, "r", tmp_path / "t", items_per_cluster=3, seed=2, write_key=True)
    key = _read(tmp_path / "t" / "key.csv")
    opt_of = {int(k["cluster"]): k["option"] for k in key}
    label_of = dict(store.fetchall("SELECT cluster, label FROM label_task_options WHERE task_id = ?",
                                   [s.task_id]))
    answers, y_true, y_pred = [], [], []
    for n, k in enumerate(key):
        c = int(k["cluster"])
        wrong = (c + 1) % 4
        pred = wrong if n % 4 == 0 else c
        # Mix answer forms: option code, label text, cluster:<n>.
        ans = [opt_of[pred], label_of[pred], f"cluster:{pred}"][n % 3]
        answers.append((k["item_id"], ans))
        y_true.append(c)
        y_pred.append(pred)
    f = tmp_path / "answers.csv"
    with f.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["item_id", "answer"])
        w.writerows(answers)
    r = score_label_task(store, s.task_id, f, coder="ann")
    p, rc, _, _ = precision_recall_fscore_support(y_true, y_pred, labels=[0, 1, 2, 3], zero_division=0)
    assert [x["precision"] for x in r.rows] == pytest.approx(list(p))
    assert [x["recall"] for x in r.rows] == pytest.approx(list(rc))
    assert r.summary["precision_macro"] == pytest.approx(p.mean())
    assert r.summary["accuracy"] == pytest.approx(sum(a == b for a, b in zip(y_true, y_pred, strict=True)) / len(y_true))
    assert r.summary["chance"] == 0.25
    metrics = dict(store.fetchall("SELECT metric, count(*) FROM evaluations WHERE eval_id = ? GROUP BY 1",
                                  [r.eval_id]))
    assert metrics == {"label_precision": 4, "label_recall": 4, "label_precision_macro": 1,
                       "label_recall_macro": 1, "label_accuracy": 1}
    d = json.loads(store.scalar("SELECT details FROM evaluations WHERE eval_id = ? AND metric = 'label_accuracy'",
                                [r.eval_id]))
    assert d["task_id"] == s.task_id


def test_score_errors_no_partial(store, labelled, tmp_path):
    s = export_label_task(store, "r", tmp_path / "t", seed=3)
    f = tmp_path / "bad.csv"
    f.write_text("item_id,answer\nI001,L01\nI999,L01\nI002,L77\nI001,L02\nI003,\n")
    with pytest.raises(InputError) as exc:
        score_label_task(store, s.task_id, f)
    msg = str(exc.value)
    assert "line 3" in msg and "line 4" in msg and "line 5" in msg and "answered twice" in msg
    assert store.scalar("SELECT count(*) FROM evaluations") == 0
    with pytest.raises(NotFoundError):
        score_label_task(store, "nope", f)


def test_export_needs_labels(store):
    m = add_memes(store, 4)
    add_run(store, "bare", {x: 0 for x in m})
    with pytest.raises(NotFoundError, match="cluster label"):
        export_label_task(store, "bare", "/tmp/unused-task")


def test_score_bad_file_is_a_clear_error(store, labelled, tmp_path):
    s = export_label_task(store, "r", tmp_path / "t", seed=3)
    latin = tmp_path / "latin1.csv"
    latin.write_bytes("item_id,answer\nI001,caf\xe9\n".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        score_label_task(store, s.task_id, latin)
    # A row with more cells than the header: the extra cells are ignored, not a crash.
    extra = tmp_path / "extra.csv"
    extra.write_text("item_id,answer\nI001,L01,stray\n")
    res = score_label_task(store, s.task_id, extra, save=False)
    assert res.summary["answers"] == 1


def test_export_with_relative_and_url_paths(store, labelled, tmp_path):
    # Memes without a readable image keep their locator as path: relative or a URL, not a crash.
    store.execute("UPDATE memes SET path = 'rel/dir/a b.png' WHERE meme_id = ?", [labelled[0]])
    store.execute("UPDATE memes SET path = 'https://example.org/x.png?a=1&b=2' WHERE meme_id = ?",
                  [labelled[1]])
    export_label_task(store, "r", tmp_path / "t", memes_per_item=9, seed=0)
    page = (tmp_path / "t" / "task.html").read_text()
    assert "https://example.org/x.png?a=1&amp;b=2" in page
    assert "/rel/dir/a%20b.png" in page
