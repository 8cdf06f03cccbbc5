"""Image-only clusters are labelled from their images, or called unlabelled (issue 22, 5c)."""

from __future__ import annotations

import numpy as np

from memeatlas.cluster.image_labels import image_cluster_labels

IDS = [f"m{i}" for i in range(9)]
LABELS = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])


def _tables(store):
    store.execute("INSERT INTO template_runs (run_id, gallery, gallery_hash, space, model, "
                  "threshold) VALUES ('tm-1', '/g', 'h', 'image:x', 'x', 0.9)")
    for m, t in (("m0", "Doge"), ("m1", "Doge"), ("m2", "unknown"), ("m3", "Grumpy-Cat")):
        store.execute("INSERT INTO template_matches (run_id, meme_id, template, best_template, "
                      "score) VALUES ('tm-1', ?, ?, ?, 0.95)", [m, t, t])
    store.execute("INSERT INTO dup_runs (run_id, params) VALUES ('dup-1', '{}')")
    for m in IDS:
        g, n = ("m3", 2) if m in ("m3", "m4") else (m, 1)
        store.execute("INSERT INTO dup_members (run_id, meme_id, group_id, image_group_id, "
                      "group_size, image_group_size) VALUES ('dup-1', ?, ?, ?, ?, ?)",
                      [m, g, g, n, n])


def test_template_then_near_duplicates_then_unlabelled(store):
    _tables(store)
    docs = ["", "", "", "", "", "", "imgflip.com", "", ""]
    got = image_cluster_labels(store, IDS, LABELS, docs)
    assert got[0] == {"basis": "template", "support": 2, "label": "template: Doge (2 of 3)"}
    assert got[1]["basis"] == "near_duplicates" and got[1]["label"] == "near-duplicates (2 of 3)"
    # one watermark among three memes does not name the cluster
    assert got[2] == {"basis": "unlabelled", "support": 1, "label": "unlabelled (1 of 3 with text)"}


def test_text_on_most_members_keeps_the_keywords(store):
    docs = ["", "", "", "", "", "", "change my mind", "change my mind", ""]
    got = image_cluster_labels(store, IDS, LABELS, docs)  # no image tables filled
    assert got[2] == {"basis": "text", "support": 2, "label": None}
    assert got[0]["basis"] == "unlabelled"
