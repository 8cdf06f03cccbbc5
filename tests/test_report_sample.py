"""The report at scale: the stratified map sample (`--map-points`), statistics over all memes,
the thumbnail floor, and paged member lists in a real Chromium. Small N with a low cap."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from helpers_report import chromium_available, fill_store
from typer.testing import CliRunner

from memeatlas.cli import app
from memeatlas.errors import InputError
from memeatlas.report import build
from memeatlas.report.collect import collect
from memeatlas.report.sample import parse_map_points, stratified_sample
from memeatlas.store import Store

DATA_RE = re.compile(r'<script type="application/json" id="memeatlas-data">(.*?)</script>', re.S)
N_CLUSTERS, PER_CLUSTER, N_NOISE = 5, 60, 20
TOTAL = N_CLUSTERS * PER_CLUSTER + N_NOISE  # 320 memes
CAP = 50


def _data(path: Path) -> dict:
    return json.loads(DATA_RE.search(path.read_text()).group(1))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """One store of 320 memes (5 clusters of 60, 20 noise) and its reports, built once."""
    tmp = tmp_path_factory.mktemp("sample")
    db = tmp / "s.duckdb"
    store = Store.open(db)
    ids = fill_store(store, tmp / "img", n_clusters=N_CLUSTERS, per_cluster=PER_CLUSTER,
                     n_noise=N_NOISE, xss=False)
    out = {"db": db, "ids": ids, "tmp": tmp}
    for name, mp in (("sampled", CAP), ("full", 0), ("below", 1000)):
        out[name] = tmp / f"{name}.html"
        out[name + "_summary"] = build(store, ids["run_a"], out[name], compare=ids["run_b"],
                                       map_points=mp, thumbs_per_cluster=4, noise="apart")
    store.close()
    return out


# ---- the sampler ---------------------------------------------------------------------------

def test_stratified_sample_is_deterministic_proportional_and_keeps_required():
    rng = np.random.default_rng(1)
    clusters = np.repeat([-1, 0, 1, 2, 3], [3000, 5000, 1500, 400, 12])
    rng.shuffle(clusters)
    required = np.zeros(len(clusters), dtype=bool)
    required[rng.choice(len(clusters), 40, replace=False)] = True
    a = stratified_sample(clusters, required, 1000)
    b = stratified_sample(clusters, required, 1000)
    assert np.array_equal(a.index, b.index) and a.sampled
    assert len(a.index) == 1000 and np.all(np.diff(a.index) > 0)
    assert required[a.index].sum() == 40  # every required row kept
    got = {c: int((clusters[a.index] == c).sum()) for c in (-1, 0, 1, 2, 3)}
    assert got[3] == 12  # a tiny cluster keeps all it has (below the floor)
    assert all(v > 0 for v in got.values())
    # the rest follows cluster size: 0 (5,000) gets about 5,000/1,500 times what 1 gets
    assert 2.5 < got[0] / got[1] < 4.0 and got[-1] > got[1] > got[2]
    other = stratified_sample(clusters, required, 1000, seed=7)
    assert not np.array_equal(other.index, a.index)
    # at or under the cap, and with cap 0: every row
    assert stratified_sample(clusters, required, len(clusters)).sampled is False
    assert len(stratified_sample(clusters, required, 0).index) == len(clusters)


def test_parse_map_points():
    assert parse_map_points("all") == 0 and parse_map_points("0") == 0
    assert parse_map_points("100,000") == 100_000 and parse_map_points(None) == 50_000
    with pytest.raises(InputError, match="map-points"):
        parse_map_points("lots")
    with pytest.raises(InputError, match="map-points"):
        parse_map_points("-5")


# ---- the report's data ----------------------------------------------------------------------

def test_sampled_report_keeps_statistics_over_all_memes(corpus):
    d, s = _data(corpus["sampled"]), corpus["sampled_summary"]
    samp = d["sample"]
    assert samp["shown"] == CAP == len(d["memes"]["id"]) and samp["total"] == TOTAL
    assert s.n_memes == TOTAL and s.map_points == CAP
    assert s.as_dict()["map points"] == f"{CAP} of {TOTAL} (stratified sample)"
    # sizes, coverage, noise, compare: over every meme
    sizes = {c["cluster"]: c["size"] for c in d["clusters"]}
    assert sizes == {**{c: PER_CLUSTER for c in range(N_CLUSTERS)}, -1: N_NOISE}
    assert sum(x["size"] for x in d["sizes"]) == TOTAL
    assert d["coverage"]["in_run"] == TOTAL
    assert d["granularity"]["noise"]["shown_as_noise"] == N_NOISE
    assert d["compare"]["n_shared"] == TOTAL and len(d["compare"]["per_meme"]) == CAP
    assert sum(d["compare"]["sizes"].values()) == TOTAL
    full = _data(corpus["full"])
    assert d["compare"]["ari"] == full["compare"]["ari"]
    assert d["compare"]["crosswalk"] == full["compare"]["crosswalk"]
    assert d["evaluations"] == full["evaluations"]
    # stratified: every cluster and noise is in the sample, with its representatives and
    # gallery; members point at memes of that cluster
    M = d["memes"]
    for c in d["clusters"]:
        assert c["shown"] == len(c["members"]) > 0
        assert all(M["cluster"][i] == c["cluster"] for i in c["members"])
        assert set(c["gallery"]) <= set(c["members"]) and len(c["gallery"]) == 4
    # the labels' representatives are all in the sample
    store = Store.open(corpus["db"], read_only=True)
    try:
        for _c, want in store.fetchall("SELECT cluster, representatives FROM cluster_labels "
                                      "WHERE run_id = ?", [corpus["ids"]["run_a"]]):
            assert set(want) <= set(M["id"])
    finally:
        store.close()
    assert sum(c["shown"] for c in d["clusters"]) == CAP


def test_sample_is_deterministic(corpus, tmp_path):
    store = Store.open(corpus["db"], read_only=True)
    try:
        a = collect(store, corpus["ids"]["run_a"], map_points=CAP, thumbs_per_cluster=4,
                    noise="apart").payload
        b = collect(store, corpus["ids"]["run_a"], map_points=CAP, thumbs_per_cluster=4,
                    noise="apart").payload
    finally:
        store.close()
    assert a["memes"] == b["memes"] == _data(corpus["sampled"])["memes"]


def test_below_the_cap_nothing_changes(corpus):
    below, full = _data(corpus["below"]), _data(corpus["full"])
    assert "sample" not in below and "sample" not in full
    below.pop("generated"), full.pop("generated")
    assert below == full
    assert len(below["memes"]["id"]) == TOTAL
    assert "map points" not in corpus["below_summary"].as_dict()


def test_members_command_lists_the_whole_cluster(corpus):
    """The page's ready `memeatlas sql` command returns every member of a cluster."""
    sql = _data(corpus["sampled"])["sample"]["members_sql"].replace("CLUSTER", "2")
    res = CliRunner().invoke(app, ["sql", "--db", str(corpus["db"]), "-f", "csv", sql])
    assert res.exit_code == 0, res.output
    assert len(res.output.strip().splitlines()) == 1 + PER_CLUSTER


def test_thumbnail_floor_per_cluster(corpus):
    store = Store.open(corpus["db"], read_only=True)
    try:
        # the cap (6 thumbnails for 6 groups) would leave one each; the floor of 3 wins
        d = collect(store, corpus["ids"]["run_a"], thumbs_per_cluster=24, max_thumbs=6,
                    noise="apart")
        assert all(len(c["gallery"]) == 3 for c in d.payload["clusters"])
        d = collect(store, corpus["ids"]["run_a"], thumbs_per_cluster=24, max_thumbs=6,
                    min_thumbs_per_cluster=1, noise="apart")
        assert all(len(c["gallery"]) == 1 for c in d.payload["clusters"])
    finally:
        store.close()


def test_cli_map_points(corpus, tmp_path):
    out = tmp_path / "cli.html"
    res = CliRunner().invoke(app, ["report", "--db", str(corpus["db"]), "--run",
                                   corpus["ids"]["run_a"], "--map-points", "40", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert f"40 of {TOTAL} (stratified sample)" in res.output
    res = CliRunner().invoke(app, ["report", "--db", str(corpus["db"]), "--map-points", "all",
                                   "-o", str(out)])
    assert res.exit_code == 0 and "map points" not in res.output
    assert len(_data(out)["memes"]["id"]) == TOTAL
    res = CliRunner().invoke(app, ["report", "--db", str(corpus["db"]), "--map-points", "many",
                                   "-o", str(out)])
    assert res.exit_code == 1 and "Error:" in res.output and "--map-points" in res.output


# ---- in Chromium ---------------------------------------------------------------------------

@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: m.type == "error" and errors.append(m.text))
    pg.errors = errors
    yield pg
    ctx.close()


def _open(page, path):
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=15_000)


@pytest.mark.browser
@pytest.mark.skipif(not chromium_available(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_browser_sampled_page_says_so(page, corpus):
    _open(page, corpus["sampled"])
    assert page.errors == []
    note = page.inner_text("#sample-note")
    assert f"Map shows {CAP} of {TOTAL} memes (stratified sample)" in note
    assert page.get_attribute("#map", "data-points-drawn") == str(CAP)
    stats = page.inner_text("#stats")
    assert str(TOTAL) in stats  # the header counts every meme
    # a cluster: its full size, the sample's share, and a ready command for all members
    page.evaluate("() => window.memeatlasReport.selectCluster(2)")
    head = page.inner_text("#cluster-size")
    assert f"{PER_CLUSTER} memes" in head and "in the map sample" in head
    cmd = page.inner_text("#members-command")
    assert cmd.startswith("memeatlas sql -f csv") and corpus["ids"]["run_a"] in cmd
    assert "cluster = 2" in cmd
    # the selection says it holds sampled memes only
    page.evaluate("() => window.memeatlasReport.selectIndices([0, 1, 2])")
    assert "map sample" in page.inner_text("#selection-count")
    assert page.is_visible("#selection-sample")
    csv = page.evaluate("() => window.memeatlasReport.selectionCsv()")
    assert len(csv.strip().splitlines()) == 4


@pytest.mark.browser
@pytest.mark.skipif(not chromium_available(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_browser_member_list_pages(page, corpus):
    _open(page, corpus["full"])
    assert page.errors == []
    assert page.locator("#sample-note").count() == 0
    page.evaluate("() => window.memeatlasReport.selectCluster(1)")
    page.click("#cluster-panel details.members summary")
    assert page.locator("#member-list li").count() == 50
    assert page.inner_text("#member-range") == f"1–50 of {PER_CLUSTER}"
    assert page.is_disabled("#member-prev")
    first = page.locator("#member-list li").first.inner_text()
    page.click("#member-next")
    assert page.locator("#member-list li").count() == PER_CLUSTER - 50
    assert page.inner_text("#member-range") == f"51–{PER_CLUSTER} of {PER_CLUSTER}"
    assert page.is_disabled("#member-next")
    page.click("#member-prev")
    assert page.locator("#member-list li").first.inner_text() == first
    # every member of the cluster is reachable through the pages, none twice
    seen = page.evaluate("""() => { const c = window.memeatlasReport.data.clusters
        .filter(x => x.cluster === 1)[0]; return c.members.length; }""")
    assert seen == PER_CLUSTER


@pytest.mark.browser
@pytest.mark.skipif(not chromium_available(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_browser_study_views_work_on_the_sample(page, store, tmp_path):
    """Tree levels, the time chart, nearest memes and the compared run on a sampled page."""
    from test_browser_study import add_study

    ids = fill_store(store, tmp_path / "img")
    add_study(store, ids)
    out = tmp_path / "r.html"
    build(store, ids["run_a"], out, compare=ids["run_b"], map_points=12, thumbs_per_cluster=1)
    d = _data(out)
    assert d["sample"]["shown"] == 12 and d["sample"]["total"] == 21
    assert len(d["study"]["time"]["meme_period"]) == 12
    _open(page, out)
    assert page.errors == []
    assert "estimated from the map sample" in page.inner_text("#time-panel")
    assert int(page.get_attribute("#time-svg", "data-segments")) > 0
    page.evaluate("() => { window.memeatlasReport.setLevel(1); window.memeatlasReport.selectCluster(100001); }")
    head = page.inner_text("#cluster-size")
    assert "12 memes" in head and "in the map sample" in head  # the group's size: 6 + 6, all memes
    assert "cluster IN (0, 1)" in page.inner_text("#members-command")
    page.evaluate("() => window.memeatlasReport.setLevel(null)")
    page.evaluate("() => window.memeatlasReport.showMeme(0)")
    assert "in the map sample" in page.inner_text("#neighbours")
    page.select_option("#colour-by", "b")
    sizes = page.locator("#cluster-list .csize").all_inner_texts()
    assert sum(int(s) for s in sizes) == 21  # the compared run's sizes cover every meme
    assert page.errors == []


@pytest.mark.browser
@pytest.mark.skipif(not chromium_available(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_browser_members_command_for_the_compared_run(page, corpus):
    _open(page, corpus["sampled"])
    page.select_option("#colour-by", "b")
    page.evaluate("() => window.memeatlasReport.selectCluster(1)")
    cmd = page.inner_text("#members-command")
    assert corpus["ids"]["run_b"] in cmd and "FROM cluster_members WHERE" in cmd
    sql = cmd.split('"')[1]
    res = CliRunner().invoke(app, ["sql", "--db", str(corpus["db"]), "-f", "csv", sql])
    assert res.exit_code == 0, res.output
    want = _data(corpus["sampled"])["compare"]["sizes"]["1"]
    assert len(res.output.strip().splitlines()) == 1 + want
    assert page.errors == []
