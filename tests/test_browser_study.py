"""The report's study views in headless Chromium: lasso/box selection and its CSV, neighbours,
the time chart, hierarchy levels and the tree list, with every new field XSS-checked."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta

import numpy as np
import pytest
from helpers_cluster import add_space
from helpers_report import XSS_TEXTS, chromium_available, fill_store

from memeatlas.report import build
from memeatlas.study.curate import memes_from_csv

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not chromium_available(),
                       reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)"),
]


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("console", lambda m: m.type in ("error", "warning") and errors.append(m.text))
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("dialog", lambda d: (errors.append("dialog " + d.message), d.dismiss()))
    pg.errors = errors
    yield pg
    ctx.close()


def add_study(store, ids):
    """Vectors (for neighbours), timestamps (cluster 2 only late), a tree with XSS labels,
    XSS corpus ids and trend flags."""
    rng = np.random.default_rng(1)
    memes = ids["memes"]
    centres = rng.normal(size=(4, 16))
    x = np.stack([centres[c] + 0.05 * rng.normal(size=16) for _m, _p, c in memes])
    add_space(store, "text:description+intent", [m for m, _p, _c in memes], x)
    t0 = datetime(2024, 1, 1)
    for k, (mid, _p, c) in enumerate(memes):
        store.execute("UPDATE memes SET source_id = ? WHERE meme_id = ?",
                      [XSS_TEXTS[k % len(XSS_TEXTS)] if k < 4 else f"post{k}", mid])
        if k == 5:
            continue  # one untimed meme
        day = 20 + k % 5 if c == 2 else k % 12
        store.execute("INSERT INTO meme_times (meme_id, ts, source) VALUES (?, ?, 'meta:date')",
                      [mid, t0 + timedelta(days=day)])
    run = ids["run_a"]
    tree = [(100000, None, 0, False, None, 21, XSS_TEXTS[2]), (100001, 100000, 1, False, None, 12,
                                                               XSS_TEXTS[3]),
            (0, 100001, 2, True, 0, 6, XSS_TEXTS[0]), (1, 100001, 2, True, 1, 6, "theme 1"),
            (2, 100000, 1, True, 2, 6, "theme 2")]
    for node, parent, level, leaf, cl, size, label in tree:
        store.execute("INSERT INTO cluster_tree (run_id, node, parent, level, is_leaf, cluster, "
                      "size, height, keywords, label, method) VALUES (?, ?, ?, ?, ?, ?, ?, 1.0, ?, "
                      "?, 'centroid_ward')", [run, node, parent, level, leaf, cl, size,
                                              [XSS_TEXTS[1], "kw"], label])
    from memeatlas.study.trends import trends

    trends(store, run, period="week")


@pytest.fixture
def report(store, tmp_path):
    ids = fill_store(store, tmp_path / "img")
    add_study(store, ids)
    out = tmp_path / "report.html"
    build(store, ids["run_a"], out)
    return out, ids


def _open(page, path):
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=15_000)


def _map_box(page):
    page.locator("#map").scroll_into_view_if_needed()
    return page.locator("#map").bounding_box()


def test_lasso_selects_a_cluster_and_csv_imports(page, report, store, tmp_path):
    path, ids = report
    _open(page, path)
    members = page.evaluate("""() => { const R = window.memeatlasReport, c = R.data.memes.cluster;
        return c.map((v, i) => v === 1 ? i : -1).filter(i => i >= 0); }""")
    pts = [page.evaluate(f"() => window.memeatlasReport.screenPoint({i})") for i in members]
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    cx, cy = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2
    rad = max(max(xs) - min(xs), max(ys) - min(ys)) / 2 + 12
    others = page.evaluate("""() => { const R = window.memeatlasReport, c = R.data.memes.cluster;
        return c.map((v, i) => v !== 1 ? R.screenPoint(i) : null).filter(Boolean); }""")
    # the lasso circle around cluster 1 holds none of the others (fixture layout: 5 apart)
    assert all((x - cx) ** 2 + (y - cy) ** 2 > rad ** 2 for x, y in others if x == x)
    page.select_option("#drag-mode", "lasso")
    box = _map_box(page)
    page.mouse.move(box["x"] + cx + rad, box["y"] + cy)
    page.mouse.down()
    for a in np.linspace(0, 2 * np.pi, 40):
        page.mouse.move(box["x"] + cx + rad * np.cos(a), box["y"] + cy + rad * np.sin(a))
    page.mouse.up()
    assert page.is_visible("#selection-panel")
    assert page.inner_text("#selection-count") == f"{len(members)} memes selected"
    assert page.locator("#selection-list li").count() == len(members)
    page.fill("#selection-label", 'funny, "quoted"')
    with page.expect_download() as dl:
        page.click("#selection-csv")
    f = tmp_path / "sel.csv"
    dl.value.save_as(f)
    rows = list(csv.DictReader(io.StringIO(f.read_text())))
    assert list(rows[0]) == ["meme_id", "source_id", "label"]
    want = set(page.evaluate(f"() => {members}.map(i => window.memeatlasReport.data.memes.id[i])"))
    assert want <= {m for m, _p, c in ids["memes"] if c == 1}
    assert {r["meme_id"] for r in rows} == want
    assert {r["label"] for r in rows} == {'funny, "quoted"'}
    # the CSV is what `curate move --memes-file` reads, and imports as class labels as it is
    assert set(memes_from_csv(f)) == want
    from memeatlas.classify.labels import import_labels

    import_labels(store, f, task="selection", coder="tester")
    gold = dict(store.fetchall("SELECT meme_id, label FROM class_labels WHERE task = 'selection'"))
    assert gold == {m: 'funny, "quoted"' for m in want}
    # box select too; then clear (the download click may have scrolled the page)
    page.select_option("#drag-mode", "box")
    box = _map_box(page)
    page.mouse.move(box["x"] + 1, box["y"] + 1)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] - 2, steps=4)
    page.mouse.up()
    assert page.inner_text("#selection-count") == "21 memes selected"
    page.click("#selection-clear")
    assert not page.is_visible("#selection-panel")
    assert page.errors == []


def test_neighbours_time_chart_levels_and_xss(page, report):
    path, ids = report
    _open(page, path)
    # neighbours of a meme open, and clicking one moves to it
    page.evaluate("() => window.memeatlasReport.showMeme(7)")
    nb = page.locator("#neighbours figure")
    assert nb.count() == 5
    first = int(nb.first.get_attribute("data-meme"))
    same = page.evaluate(f"() => window.memeatlasReport.data.memes.cluster[{first}]")
    assert same == page.evaluate("() => window.memeatlasReport.data.memes.cluster[7]")
    nb.first.click()
    assert page.locator("#detail-body h2").inner_text() == page.evaluate(
        f"() => window.memeatlasReport.data.memes.name[{first}]")
    page.keyboard.press("Escape")
    # the time chart draws; a rising cluster is flagged; a band filters members by period
    assert page.is_visible("#time-panel")
    assert int(page.get_attribute("#time-svg", "data-segments")) > 4
    assert "1 memes have no timestamp" in page.inner_text("#plot-time")
    assert page.locator("#trend-flags .chip.rising").count() >= 1
    seg = page.locator("#time-svg rect.seg[data-cluster='0']").first
    period = int(seg.get_attribute("data-period"))
    seg.dispatch_event("click")
    assert page.locator("#period-clear").count() == 1
    n_period = page.evaluate(f"""() => {{ const R = window.memeatlasReport.data;
        return R.memes.cluster.filter((c, i) => c === 0 && R.study.time.meme_period[i] === {period}).length; }}""")
    page.click("#cluster-panel details.members summary")
    assert page.locator("#member-list li").count() == n_period
    page.click("#period-clear")
    assert page.locator("#member-list li").count() == 0 or page.locator("#period-clear").count() == 0
    # hierarchy: level 1 shows the two top groups, the tree list folds clusters into them
    page.select_option("#level", "1")
    assert page.locator("#cluster-list > li").count() == 3          # 2 groups + noise
    assert page.locator("#cluster-list li .cname", has_text=XSS_TEXTS[3]).count() == 1
    page.select_option("#level", "")
    page.select_option("#list-mode", "tree")
    assert page.locator("#cluster-list details.tnode").count() == 2
    page.click("#cluster-list li[data-cluster='100001']")
    assert page.locator("#cluster-panel h2").inner_text() == XSS_TEXTS[3]
    assert page.locator("#cluster-panel #gallery figure").count() == 12
    assert page.get_attribute("#map", "data-selected-drawn") == "12"   # both clusters lit
    # XSS: corpus ids, tree labels/keywords, neighbour captions and period text stay text
    xss_idx = page.evaluate("""() => window.memeatlasReport.data.study.source_id
        .map((s, i) => s && s.indexOf('<') >= 0 ? i : -1).filter(i => i >= 0)""")
    assert len(xss_idx) == 4
    for i in xss_idx:
        page.evaluate(f"() => window.memeatlasReport.showMeme({i})")
        sid = page.evaluate(f"() => window.memeatlasReport.data.study.source_id[{i}]")
        assert sid in page.inner_text("#detail-body")   # the corpus id, as text
    page.evaluate(f"() => window.memeatlasReport.selectIndices({xss_idx})")
    assert page.locator("#selection-list li").count() == 4
    assert page.evaluate("() => window.__xss") is None
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("svg[onload]").count() == 0
    assert page.locator("script").count() == 2
    csv_text = page.evaluate("() => window.memeatlasReport.selectionCsv()")
    rows = list(csv.reader(io.StringIO(csv_text)))
    assert {r[1] for r in rows[1:]} == set(XSS_TEXTS) and len(rows) == 5   # quoted, intact
    assert page.errors == []


def test_report_without_study_data_still_opens(page, store, tmp_path):
    ids = fill_store(store, tmp_path / "img", xss=False)
    out = tmp_path / "plain.html"
    build(store, ids["run_a"], out)
    data = out.read_text()
    blob = data.split('id="memeatlas-data">', 1)[1].split("</script>", 1)[0]
    study = json.loads(blob)["study"]
    assert study["time"] is None and study["tree"] is None and study["neighbours"] is None
    _open(page, out)
    assert not page.is_visible("#time-panel") and not page.is_visible("#level-wrap")
    page.evaluate("() => window.memeatlasReport.showMeme(0)")
    assert page.locator("#neighbours").count() == 0
    assert page.errors == []


def test_curated_run_report_shows_edit_log(page, store, tmp_path):
    from memeatlas.study.curate import curate

    ids = fill_store(store, tmp_path / "img")
    a = curate(store, ids["run_a"], [{"op": "rename", "cluster": 1, "name": XSS_TEXTS[1],
                                      "note": XSS_TEXTS[0]}], editor=XSS_TEXTS[2], relabel=False)
    b = curate(store, a.run_id, [{"op": "discard", "clusters": [2]},
                                 {"op": "move", "memes": [ids["memes"][0][0]], "to": 1}],
               relabel=False)
    out = tmp_path / "curated.html"
    build(store, b.run_id, out)
    _open(page, out)
    rows = page.locator("#edit-log tbody tr")
    assert rows.count() == 3
    text = page.inner_text("#edit-log")
    assert XSS_TEXTS[0] in text and XSS_TEXTS[2] in text and "1 memes" in text
    assert page.locator("#cluster-list li[data-cluster='1'] .cname").inner_text() == XSS_TEXTS[1]
    assert page.evaluate("() => window.__xss") is None
    assert page.locator("img[src='x']").count() == 0 and page.locator("script").count() == 2
    assert page.errors == []
