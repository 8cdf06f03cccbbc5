"""`memeatlas curate`: edits as derived runs, the edit log, replayable edit files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers_study import clustered_store
from typer.testing import CliRunner

from memeatlas.cli import app
from memeatlas.errors import InputError
from memeatlas.store import Store
from memeatlas.study.curate import apply_file, curate, export_edits, write_edit_file

RUN = "cluster-test"


def snapshot(store, run_id):
    """Everything stored about a run, for byte-for-byte comparison."""
    return (store.fetchall("SELECT * FROM cluster_runs WHERE run_id = ?", [run_id]),
            store.fetchall("SELECT * FROM cluster_assignments WHERE run_id = ? ORDER BY meme_id",
                           [run_id]),
            store.fetchall("SELECT * FROM cluster_labels WHERE run_id = ? ORDER BY cluster",
                           [run_id]))


def counts(store):
    return tuple(store.scalar(f"SELECT count(*) FROM {t}") for t in
                 ("cluster_runs", "cluster_assignments", "cluster_labels", "curation_edits"))


def assignment(store, run_id):
    return dict(store.fetchall("SELECT meme_id, cluster FROM cluster_assignments "
                               "WHERE run_id = ?", [run_id]))


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """A labelled 4-cluster run (BERTopic c-TF-IDF), copied per test."""
    from memeatlas.cluster import LabelConfig, label

    path = tmp_path_factory.mktemp("curate") / "base.duckdb"
    with Store.open(path) as s:
        clustered_store(s, n_per=15, n_clusters=4)
        label(s, LabelConfig(run_id=RUN))
    return path


@pytest.fixture
def st(labelled, tmp_path):
    import shutil

    p = tmp_path / "c.duckdb"
    shutil.copy(labelled, p)
    with Store.open(p) as s:
        yield s


def test_each_edit_kind_parent_unchanged(st):
    before = snapshot(st, RUN)
    base = assignment(st, RUN)
    ids = sorted(base)
    # merge
    m = curate(st, RUN, [{"op": "merge", "clusters": [1, 2]}], editor="ana")
    a = assignment(st, m.run_id)
    assert {c for mid, c in a.items() if base[mid] in (1, 2)} == {1}
    assert m.n_changed == 15 and m.n_clusters == 3 and m.touched == [1] and m.relabelled
    info = st.fetch_dict("SELECT kind, parent_run FROM cluster_runs WHERE run_id = ?", [m.run_id])
    assert info == {"kind": "curated", "parent_run": RUN}
    log = st.fetch_dict("SELECT * FROM curation_edits WHERE run_id = ?", [m.run_id])
    assert log["op"] == "merge" and log["editor"] == "ana" and log["n_changed"] == 15
    assert json.loads(log["args"]) == {"op": "merge", "clusters": [1, 2], "into": 1}
    # keywords: the merged cluster is recomputed, the untouched ones keep the parent's rows
    kw = dict(st.fetchall("SELECT cluster, keywords FROM cluster_labels WHERE run_id = ?",
                          [m.run_id]))
    parent_kw = dict(st.fetchall("SELECT cluster, keywords FROM cluster_labels WHERE run_id = ?",
                                 [RUN]))
    assert kw[0] == parent_kw[0] and kw[3] == parent_kw[3]
    assert {"dog", "frog"} <= set(kw[1])
    assert st.scalar("SELECT size FROM cluster_labels WHERE run_id = ? AND cluster = 1",
                     [m.run_id]) == 30
    # split (k-means in the run's space) undoes the merge's grouping
    s = curate(st, m.run_id, [{"op": "split", "cluster": 1, "k": 2}])
    a2 = assignment(st, s.run_id)
    parts = {a2[mid] for mid in ids if base[mid] == 1}, {a2[mid] for mid in ids if base[mid] == 2}
    assert len(parts[0]) == 1 and len(parts[1]) == 1 and parts[0] != parts[1]
    assert sorted(parts[0] | parts[1]) == [1, 4]     # new number after the highest (3)
    # move (to a cluster, and to noise)
    movers = [mid for mid in ids if base[mid] == 0][:3]
    mv = curate(st, RUN, [{"op": "move", "memes": movers, "to": 3}])
    a3 = assignment(st, mv.run_id)
    assert all(a3[m_] == 3 for m_ in movers) and mv.n_changed == 3 and mv.touched == [0, 3]
    assert st.scalar("SELECT count(*) FROM cluster_assignments WHERE run_id = ? AND "
                     "assigned_by = 'curate' AND probability IS NULL", [mv.run_id]) == 3
    # rename: no keyword recompute, the label is the editor's
    rn = curate(st, RUN, [{"op": "rename", "cluster": 2, "name": "Frogs <in> rain"}], editor="bo")
    assert rn.n_changed == 0 and not rn.relabelled
    assert st.fetchone("SELECT label, labeler FROM cluster_labels WHERE run_id = ? AND "
                       "cluster = 2", [rn.run_id]) == ("Frogs <in> rain", "human:bo")
    # discard
    d = curate(st, RUN, [{"op": "discard", "clusters": [3]}])
    a4 = assignment(st, d.run_id)
    assert all(a4[mid] == -1 for mid in ids if base[mid] == 3) and d.n_clusters == 3
    assert st.scalar("SELECT size FROM cluster_labels WHERE run_id = ? AND cluster = -1",
                     [d.run_id]) == 15
    # the parent is byte-for-byte unchanged after all of it
    assert snapshot(st, RUN) == before
    # same edits again: skipped; --force writes another run
    again = curate(st, RUN, [{"op": "discard", "clusters": [3]}])
    assert again.skipped and again.run_id == d.run_id


@pytest.mark.parametrize("edit, message", [
    ({"op": "merge", "clusters": [1, 9]}, r"edit 2 \(merge\): no cluster 9 in run cluster-test"),
    ({"op": "move", "memes": ["f" * 64], "to": 1}, r"edit 1 \(move\): meme f{64} is not in run"),
    ({"op": "move", "memes": [], "to": 1}, r"'memes' must be a non-empty list"),
    ({"op": "split", "cluster": 0, "k": 1}, r"'k' must be an integer of at least 2"),
    ({"op": "recolour", "cluster": 0}, r"unknown op 'recolour'"),
    ({"op": "rename", "cluster": 0, "label": "x"}, r"unknown field\(s\) label"),
])
def test_bad_edits_write_nothing(st, edit, message):
    before = counts(st)
    with pytest.raises(InputError, match=message):
        curate(st, RUN, [{"op": "rename", "cluster": 0, "name": "fine"}, edit]
               if edit["op"] == "merge" else [edit])
    assert counts(st) == before


def test_cli_unknown_cluster_is_one_line(st):
    path = st.path
    before = counts(st)
    st.close()
    r = CliRunner().invoke(app, ["curate", "merge", "--run", RUN, "--clusters", "0,42",
                                 "--db", str(path)])
    assert r.exit_code == 1
    assert r.output.count("\n") == 1 and r.output.startswith("Error: edit 1 (merge): no cluster 42")
    with Store.open(path) as s:
        assert counts(s) == before


def test_edit_file_replays_on_fresh_db(st, tmp_path):
    base = assignment(st, RUN)
    zeros = sorted(m for m, c in base.items() if c == 0)[:4]
    s1 = curate(st, RUN, [{"op": "merge", "clusters": [2, 3], "into": 3},
                          {"op": "rename", "cluster": 3, "name": "wet animals"}], editor="ana")
    s2 = curate(st, s1.run_id, [{"op": "split", "cluster": 3, "k": 3, "seed": 1},
                                {"op": "move", "memes": zeros, "to": 1},
                                {"op": "discard", "clusters": [4]}])
    doc = export_edits(st, s2.run_id)
    assert doc["base"]["run_id"] == RUN and len(doc["edits"]) == 5
    f = tmp_path / "edits.yaml"
    write_edit_file(doc, f)
    want = assignment(st, s2.run_id)
    # A fresh database: same memes and vectors, clustered again under another run id.
    with Store.open(tmp_path / "fresh.duckdb") as fresh:
        clustered_store(fresh, n_per=15, n_clusters=4, run_id="cluster-again")
        r = apply_file(fresh, f)
        assert r.reproduced is True and r.parent_run == "cluster-again"
        assert assignment(fresh, r.run_id) == want
    # JSON edit files too, through the CLI; export to stdout is YAML
    g = tmp_path / "edits.json"
    write_edit_file(doc, g)
    assert json.loads(g.read_text())["edits"][0]["op"] == "merge"
    path = st.path
    st.close()
    out = CliRunner().invoke(app, ["curate", "export", "--run", s2.run_id, "--db", str(path)])
    assert out.exit_code == 0 and "memeatlas_edits: 1" in out.output
    with Store.open(tmp_path / "fresh2.duckdb") as fresh:
        clustered_store(fresh, n_per=15, n_clusters=4, run_id="cluster-3")
    r = CliRunner().invoke(app, ["curate", "apply", str(g), "--db", str(tmp_path / "fresh2.duckdb")])
    assert r.exit_code == 0, r.output
    assert "reproduced" in r.output and "yes" in r.output


def test_move_from_selection_csv_and_evaluate(st, tmp_path):
    from memeatlas.evaluate.external import labels

    base = assignment(st, RUN)
    movers = sorted(m for m, c in base.items() if c == 2)
    csv = tmp_path / "selection.csv"
    csv.write_text("meme_id,source_id,label\n" + "".join(f"{m},s,sel\n" for m in movers))
    path = st.path
    st.close()
    r = CliRunner().invoke(app, ["curate", "move", "--run", RUN, "--to", "1", "--memes-file",
                                 str(csv), "--note", "same joke", "--db", str(path)])
    assert r.exit_code == 0, r.output
    new = r.stdout.strip().splitlines()[-1]
    with Store.open(path) as s:
        assert s.scalar("SELECT note FROM curation_edits WHERE run_id = ?", [new]) == "same joke"
        # evaluate compares curated and original like any two runs
        res = labels(s, [RUN, new], "meta.n")
        runs = {row["run"] for row in res.rows}
        assert runs == {RUN, new}
        ari = {row["run"]: row["ari"] for row in res.rows if row["scope"] == "all"}
        assert all(np.isfinite(v) for v in ari.values())


def test_delta_cq_curated_vs_original(st):
    """`evaluate quality` scores a curated run against its parent like any two runs."""
    from helpers_evaluate import add_pairs, add_ratings

    from memeatlas.evaluate.quality import quality

    base = assignment(st, RUN)
    ids = sorted(base)
    rng = np.random.default_rng(0)
    pairs = {tuple(sorted(rng.choice(len(ids), 2, replace=False).tolist())) for _ in range(150)}
    pairs = [(ids[a], ids[b]) for a, b in sorted(pairs)]
    pids = add_pairs(st, "ps", pairs)
    # coders agree with the planted clusters (the parent run's clusters here)
    add_ratings(st, "ps", {pid: [3.0 if base[a] == base[b] else 1.0] * 2
                           for pid, (a, b) in zip(pids, pairs, strict=True)})
    worse = curate(st, RUN, [{"op": "merge", "clusters": [0, 1]}], relabel=False)
    res = quality(st, [RUN, worse.run_id], "ps", bootstrap=200)
    cq = {r["run"]: r["value"] for r in res.rows if r["metric"] == "cq"}
    assert cq[RUN] > cq[worse.run_id]
    delta = [r for r in res.rows if r["metric"] == "delta_cq"]
    assert len(delta) == 1 and abs(delta[0]["value"]) > 0.1
    assert st.scalar("SELECT count(*) FROM evaluations WHERE run_id = ?", [worse.run_id]) >= 1
