"""The report's study data (time bins, tree, neighbours) as read from the store."""

from __future__ import annotations

from helpers_study import clustered_store, days

from memeatlas.report.collect import collect
from memeatlas.study.hierarchy import hierarchy
from memeatlas.study.times import set_timestamps
from memeatlas.study.trends import trends


def test_study_payload(store):
    late, early = days("2024-03-01", 20), days("2024-01-01", 20)
    even = days("2024-01-01", 20, step=4)
    even[0] = None
    clustered_store(store, times={0: late, 1: early, 2: even})
    empty = collect(store, "cluster-test").payload["study"]
    assert empty["time"] is None and empty["tree"] is None
    set_timestamps(store, "date")
    trends(store, "cluster-test", period="week")
    hierarchy(store, "cluster-test")
    p = collect(store, "cluster-test", neighbours=4).payload
    st = p["study"]
    t = st["time"]
    assert t["period"] == "week" and t["n_untimed"] == 1
    assert t["flags"]["0"]["trend"] == "rising" and t["flags"]["1"]["trend"] == "fading"
    # weeks from the first to the last, gaps included
    assert t["periods"][0] == "2024-01-01" and len(t["periods"]) == len(set(t["periods"]))
    assert sum(v is not None for v in t["meme_period"]) == 59
    nb = st["neighbours"]
    assert nb["k"] == 4 and len(nb["idx"]) == 4 * 60
    clusters = p["memes"]["cluster"]
    same = sum(clusters[nb["idx"][i * 4 + j]] == clusters[i] for i in range(60) for j in range(4))
    assert same / 240 > 0.95                      # separated blobs: neighbours share the cluster
    assert all(nb["idx"][i * 4 + j] != i for i in range(60) for j in range(4))
    assert st["tree"]["method"] == "centroid_ward"
    assert {n["node"] for n in st["tree"]["nodes"] if n["leaf"]} == {0, 1, 2}
    assert st["source_id"][0].startswith("s")
    assert collect(store, "cluster-test", neighbours=0).payload["study"]["neighbours"] is None
