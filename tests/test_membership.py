"""One membership per meme and run (issue 22): core, assigned from noise (soft membership at
least the run's floor) or noise, counted the same by cluster_members, the report, label,
evaluate and trends; labellings derive instead of overwrite."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_cluster import add_memes, add_space, meme_id

from memeatlas.cluster import ClusterConfig, LabelConfig, label, run
from memeatlas.errors import InputError
from memeatlas.store import Store

SPACE = "text:planted"


def planted_vectors(seed: int = 0):
    """Four tight clusters (A and B close together), three noise points far from every cluster
    and three beyond A (farther from B): HDBSCAN leaves all six as noise; the far ones have a
    soft membership near 0.01 everywhere, the near ones about 0.12 in A."""
    rng = np.random.default_rng(seed)
    dim, k, n, spread = 16, 4, 20, 0.05
    cent = rng.normal(size=(k, dim))
    cent /= np.linalg.norm(cent, axis=1, keepdims=True)
    u = rng.normal(size=dim)
    u -= (u @ cent[0]) * cent[0]
    u /= np.linalg.norm(u)
    cent[1] = cent[0] + 0.3 * u  # B close to A
    cent[1] /= np.linalg.norm(cent[1])
    x = np.vstack([cent[c] + spread * rng.normal(size=(n, dim)) / np.sqrt(dim) for c in range(k)])
    y = np.repeat(np.arange(k), n)
    far = []
    for _ in range(3):  # orthogonal to every centre
        v = rng.normal(size=dim)
        v -= cent.T @ np.linalg.lstsq(cent.T, v, rcond=None)[0]
        far.append(v / np.linalg.norm(v))
    near = []
    for _ in range(3):  # beyond A, away from B
        w = rng.normal(size=dim)
        w -= (w @ cent[0]) * cent[0]
        w -= (w @ u) * u
        w /= np.linalg.norm(w)
        v = cent[0] - 0.3 * u + 0.09 * w
        near.append(v / np.linalg.norm(v))
    return np.vstack([x, far, near]).astype(np.float32), y


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    x, y = planted_vectors()
    ids = [meme_id(i) for i in range(len(x))]
    words = ["cats boxes naps", "cats sofas naps", "dogs parks balls", "exams homework stress"]
    texts = [words[c] + f" meme {i}" for i, c in enumerate(y)] + \
        [f"unrelated oddity {i}" for i in range(6)]
    store = Store.open(tmp_path_factory.mktemp("membership") / "m.duckdb")
    add_memes(store, ids, texts)
    add_space(store, SPACE, ids, x)
    cfg = {"spaces": [SPACE], "min_cluster_size": 8, "umap_dims": 0, "layout": False}
    rid = run(store, ClusterConfig(**cfg))[0]
    rid_high = run(store, ClusterConfig(**cfg, assign_floor=0.2))[0]
    n = len(y)
    a_ids = [ids[i] for i in range(n) if y[i] == 0]
    yield store, rid, rid_high, ids[n:n + 3], ids[n + 3:], a_ids
    store.close()


def _rows(store, run_id, ids):
    return store.fetchall("SELECT meme_id, cluster, membership, hard_cluster FROM cluster_members "
                          "WHERE run_id = ? AND meme_id IN (SELECT unnest(?::VARCHAR[])) "
                          "ORDER BY meme_id", [run_id, ids])


def test_far_noise_stays_noise_and_near_noise_is_assigned(planted):
    store, rid, rid_high, far, near, a_ids = planted
    a = store.scalar("SELECT cluster FROM cluster_members WHERE run_id = ? AND meme_id = ?",
                     [rid, a_ids[0]])
    assert all(r[1:] == (-1, "noise", -1) for r in _rows(store, rid, far))
    assert all(r[1:] == (a, "assigned", -1) for r in _rows(store, rid, near))
    # their membership is kept beside: the soft cluster and how strongly
    soft = store.fetchall("SELECT soft_cluster, soft_probability FROM cluster_assignments WHERE "
                          "run_id = ? AND meme_id IN (SELECT unnest(?::VARCHAR[]))", [rid, near])
    assert all(c == a and 0.1 <= p < 0.2 for c, p in soft)
    # the floor is a parameter of the run: at 0.2 the near memes stay noise
    assert store.scalar("SELECT params->>'$.assign_floor' FROM cluster_runs WHERE run_id = ?",
                        [rid]) == "0.1"
    assert all(r[1:] == (-1, "noise", -1) for r in _rows(store, rid_high, near))
    # the stored noise share stays HDBSCAN's
    assert store.scalar("SELECT noise_fraction * n_items FROM cluster_runs WHERE run_id = ?",
                        [rid]) == pytest.approx(6)


@pytest.mark.parametrize("floor", [0.05, 0.0, 1.5, float("nan"), -1])
def test_assign_floor_is_checked_with_its_range(planted, floor):
    store = planted[0]
    n_runs = store.scalar("SELECT count(*) FROM cluster_runs")
    with pytest.raises(InputError, match=r"--assign-floor must be between 0\.1 and 1"):
        run(store, ClusterConfig(spaces=[SPACE], umap_dims=0, layout=False, assign_floor=floor))
    assert store.scalar("SELECT count(*) FROM cluster_runs") == n_runs


def test_cli_refuses_a_floor_below_0_1(tmp_path):
    from typer.testing import CliRunner

    from memeatlas.cli import app

    res = CliRunner().invoke(app, ["cluster", "--space", SPACE, "--assign-floor", "0.05",
                                   "--db", str(tmp_path / "x.duckdb")])
    assert res.exit_code == 1
    assert "--assign-floor must be between 0.1 and 1" in res.output


@pytest.mark.parametrize("noise", ["assigned", "apart"])
def test_report_counts_equal_their_sql(planted, noise):
    from memeatlas.report.collect import collect

    store, rid = planted[0], planted[1]
    p = collect(store, rid, noise=noise).payload
    sql = p["members_sql"]
    for row in p["clusters"]:
        c = row["cluster"]
        q = sql["noise"] if c == -1 else sql["cluster"].replace("CLUSTER", str(c))
        got = store.fetchall(q)
        assert row["size"] == len(got), (c, q)
        assert row["n_assigned"] == sum(1 for r in got if r[4] == "assigned" and c != -1)
    m = p["membership"]
    stored = store.fetchone("SELECT n_items, noise_fraction FROM cluster_runs WHERE run_id = ?",
                            [rid])
    assert m["total"] == stored[0] and m["hdbscan_noise"] / m["total"] == pytest.approx(stored[1])
    assert m["assigned"] == store.scalar("SELECT count(*) FROM cluster_members WHERE run_id = ? "
                                         "AND membership = 'assigned'", [rid]) == 3
    shown_noise = sum(r["size"] for r in p["clusters"] if r["cluster"] == -1)
    assert m["noise"] == shown_noise == (3 if noise == "assigned" else 6)


def test_label_evaluate_and_trends_count_the_same_members(planted):
    from memeatlas.evaluate.common import load_assignments
    from memeatlas.study.trends import trends

    store, rid = planted[0], planted[1]
    members = dict(store.fetchall("SELECT meme_id, cluster FROM cluster_members WHERE run_id = ?",
                                  [rid]))
    sizes = dict(store.fetchall("SELECT cluster, count(*) FROM cluster_members WHERE run_id = ? "
                                "GROUP BY 1", [rid]))
    assert load_assignments(store, [rid], assigned=True)[rid] == members
    label(store, LabelConfig(run_id=rid, force=True))
    assert dict(store.fetchall("SELECT cluster, size FROM latest_cluster_labels WHERE run_id = ?",
                               [rid])) == sizes
    store.execute("INSERT OR REPLACE INTO meme_times (meme_id, ts, source) SELECT meme_id, "
                  "TIMESTAMP '2024-01-01' + to_days(CAST(hash(meme_id) % 20 AS INTEGER)), 'test' "
                  "FROM cluster_assignments WHERE run_id = ?", [rid])
    t = trends(store, rid, period="week", force=True)
    got = dict(store.fetchall("SELECT cluster, sum(n) FROM cluster_trends WHERE trend_id = ? "
                              "GROUP BY 1", [t.trend_id]))
    assert got == sizes


def test_label_force_keeps_the_old_labelling(planted):
    store, rid = planted[0], planted[1]
    label(store, LabelConfig(run_id=rid, force=True))
    old = store.fetchall("SELECT * FROM latest_cluster_labels WHERE run_id = ? ORDER BY cluster",
                         [rid])
    old_id = old[0][-1]
    s = label(store, LabelConfig(run_id=rid, force=True, n_keywords=3))
    assert not s.skipped
    # the older labelling's rows are still there, unchanged
    assert store.fetchall("SELECT * FROM cluster_labels WHERE labeling = ? ORDER BY cluster",
                          [old_id]) == old
    new = store.fetchall("SELECT cluster, labeling, len(keywords) FROM latest_cluster_labels "
                         "WHERE run_id = ? AND cluster >= 0", [rid])
    assert {r[1] for r in new} != {old_id} and all(r[2] <= 3 for r in new)
    # cluster_members shows the labels in force, one row per meme
    n = store.scalar("SELECT count(*) FROM cluster_assignments WHERE run_id = ?", [rid])
    assert store.scalar("SELECT count(*) FROM cluster_members WHERE run_id = ?", [rid]) == n
    assert label(store, LabelConfig(run_id=rid)).skipped


@pytest.mark.browser
def test_report_find_searches_intent_and_links_only_http_sources(store, tmp_path):
    """Find matches a word only an intent holds; a meme's source is a new-tab link for an
    http(s) URL and plain text for anything else (a javascript: URL is never a link)."""
    from helpers_report import chromium_available, fill_store, launch_browser

    if not chromium_available():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    from memeatlas.report import build

    ids = fill_store(store, tmp_path / "img", xss=False)
    memes = [r[0] for r in store.fetchall(
        "SELECT meme_id FROM cluster_assignments WHERE run_id = ? AND cluster = 0 "
        "ORDER BY meme_id", [ids["run_a"]])]
    good, bad = memes[0], memes[1]
    store.execute("UPDATE annotations SET intent = 'when the homework is due tomorrow' "
                  "WHERE meme_id = ?", [good])
    store.execute("""UPDATE memes SET meta = '{"title": "Due <b>tomorrow</b>",
                     "url": "https://www.reddit.com/r/memes/comments/abc/"}' WHERE meme_id = ?""",
                  [good])
    store.execute("""UPDATE memes SET meta = '{"title": "Click me",
                     "url": "javascript:window.__pwned=1"}' WHERE meme_id = ?""", [bad])
    out = tmp_path / "report.html"
    build(store, ids["run_a"], out)
    with sync_playwright() as pw:
        browser = launch_browser(pw)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(out.as_uri())
        page.wait_for_selector("body[data-ready='1']", timeout=15_000)
        assert "HDBSCAN noise" in page.inner_text("#stats")
        assert "in no cluster" in page.inner_text("#noise-line")
        page.fill("#find", "homework")
        assert page.inner_text("#find-count") == "1 found"
        index = {m: page.evaluate("(m) => JSON.parse(document.getElementById("
                                  "'memeatlas-data').textContent).memes.id.indexOf(m)", m)
                 for m in (good, bad)}
        assert min(index.values()) >= 0
        page.click("#cluster-list li[data-cluster='0']")
        page.click(f"#gallery figure[data-meme='{index[good]}']")
        link = page.locator("#meme-source a")
        assert link.count() == 1
        assert link.get_attribute("href") == "https://www.reddit.com/r/memes/comments/abc/"
        assert link.get_attribute("target") == "_blank"
        assert "noopener" in link.get_attribute("rel")
        assert link.inner_text() == "Due <b>tomorrow</b>"  # escaped, not markup
        page.click(f"#gallery figure[data-meme='{index[bad]}']")
        assert page.locator("#meme-source a").count() == 0
        assert "javascript:window.__pwned=1" in page.inner_text("#meme-source")
        page.click("#meme-source")
        assert page.evaluate("window.__pwned") is None
        browser.close()
