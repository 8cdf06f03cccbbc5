"""The report and the rating page in a real headless Chromium (Debian's, driven by Playwright)."""

from __future__ import annotations

import pytest
from helpers_report import (
    XSS_FILE_NAME,
    XSS_TEXTS,
    chromium_available,
    fill_store,
)

from memeatlas.evaluate.ratings import import_ratings
from memeatlas.report import build
from memeatlas.report.rate_page import build_rate_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not chromium_available(),
                       reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)"),
]


class Watch:
    """Console errors, page errors, dialogs and network requests of one page."""

    def __init__(self, page):
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        page.on("console", lambda m: m.type in ("error", "warning") and self.errors.append(
            f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on("dialog", self._dialog)
        page.on("request", lambda r: self.requests.append(r.url))

    def _dialog(self, d):
        self.dialogs.append(d.message)
        d.dismiss()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    pg = ctx.new_page()
    pg.watch = Watch(pg)
    yield pg
    ctx.close()


@pytest.fixture
def report(store, tmp_path):
    ids = fill_store(store, tmp_path / "img")
    out = tmp_path / "report.html"
    build(store, ids["run_a"], out, compare=ids["run_b"])
    return out, ids


def _open(page, path):
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=15_000)


def test_report_opens_and_map_draws(page, report):
    path, ids = report
    _open(page, path)
    assert page.watch.errors == []
    assert page.get_attribute("#map", "data-points-drawn") == "21"
    painted = page.evaluate("""() => {
        const c = document.getElementById('map'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }""")
    assert painted > 200
    assert page.locator("#cluster-list li").count() == 4  # 3 clusters + noise
    assert page.locator("#sizes-svg rect.bar").count() == 4
    assert page.locator("#sweep-svg circle").count() == 8
    assert page.locator("#eval-table tbody tr").count() == 3
    # everything is embedded: the page asked for nothing but itself
    assert [u for u in page.watch.requests if not u.startswith(("file:", "data:", "blob:"))] == []


def test_clicking_a_cluster_shows_its_members(page, report):
    path, ids = report
    _open(page, path)
    page.click("#cluster-list li[data-cluster='1']")
    panel = page.locator("#cluster-panel")
    assert panel.locator("h2").inner_text() == "theme 1"
    assert panel.locator("#gallery figure").count() == 6
    assert panel.locator("#member-list li").count() == 6
    assert panel.locator("#gallery img").count() == 6
    # click a thumbnail: the meme's annotation opens as text
    panel.locator("#gallery figure").first.click()
    assert page.is_visible("#meme-detail")
    detail = page.inner_text("#detail-body")
    assert "says thing 1" in detail and "null" not in detail and "undefined" not in detail
    page.keyboard.press("Escape")
    assert not page.is_visible("#meme-detail")
    # click a point of cluster 2 on the canvas: its cluster is selected
    x, y = page.evaluate(
        "() => { const R = window.memeatlasReport; return R.screenPoint(R.data.memes.cluster.indexOf(2)); }")
    page.locator("#map").scroll_into_view_if_needed()
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + x, box["y"] + y)
    assert panel.locator("h2").inner_text() == "theme 2"
    assert page.locator("#cluster-list li.sel").get_attribute("data-cluster") == "2"
    # colour by the compared run
    page.select_option("#colour-by", "b")
    assert page.locator("#cluster-list li").count() == 2
    assert page.watch.errors == []


def test_xss_stays_text(page, report):
    path, _ids = report
    _open(page, path)
    page.click("#cluster-list li[data-cluster='0']")
    # the malicious label and OCR text are on the page, as text
    assert page.locator("#cluster-panel h2").inner_text() == XSS_TEXTS[0]
    page.click("#cluster-panel details.members summary")
    page.locator("#member-list li", has_text=XSS_FILE_NAME).click()
    detail = page.inner_text("#detail-body")
    # the meme named like an <img onerror> tag, whose OCR text is a <script> and whose
    # description is an attribute break-out, shows all three as text
    assert XSS_FILE_NAME in detail and XSS_TEXTS[0] in detail and XSS_TEXTS[1] in detail
    # hover every point (tooltips) and open every meme
    n = page.evaluate("() => window.memeatlasReport.data.memes.id.length")
    for i in range(n):
        page.evaluate(f"() => window.memeatlasReport.showMeme({i})")
    page.locator("#map").scroll_into_view_if_needed()
    box = page.locator("#map").bounding_box()
    for i in range(n):
        x, y = page.evaluate(f"() => window.memeatlasReport.screenPoint({i})")
        if x == x:  # drawn (not NaN)
            page.mouse.move(box["x"] + x, box["y"] + y)
    assert page.locator("#tooltip b").count() == 1
    # ... and nothing ran or got injected
    assert page.watch.dialogs == []
    assert page.evaluate("() => window.__xss") is None
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("svg[onload]").count() == 0
    assert page.locator("script").count() == 2
    assert page.watch.errors == []


def test_rate_page_keyboard_csv_imports(page, store, tmp_path):
    ids = fill_store(store, tmp_path / "img", n_pairs=5)
    out = build_rate_page(store, ids["pair_set"], tmp_path / "rate.html")
    _open(page, out)
    assert page.watch.errors == []
    # Keys before a coder name: nothing is rated, the page asks for a name.
    page.keyboard.press("2")
    assert page.is_visible("#coder-warning")
    page.fill("#coder", "Ann, B.")  # a comma: the CSV must quote it
    page.locator("#coder").press("Enter")
    # the name field lets go of the keyboard before rating keys are sent
    page.wait_for_function("document.activeElement !== document.getElementById('coder')")
    expected = {}
    pairs = [r[0] for r in store.fetchall(
        "SELECT pair_id FROM rating_pairs WHERE pair_set = ? ORDER BY position", [ids["pair_set"]])]
    for k, pid in enumerate(pairs):
        for dim in ("connotative", "denotative"):
            v = (k + (dim == "denotative")) % 3 + 1
            expected[(pid, dim)] = v
            page.keyboard.press(str(v))
    assert "10 / 10" in page.inner_text("#progress-text")
    # progress survives a reload (localStorage)
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    assert "10 / 10" in page.inner_text("#progress-text")
    # change one rating: back one pair, switch to denotative, rate 3
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("d")
    page.keyboard.press("3")
    expected[(pairs[-2], "denotative")] = 3
    with page.expect_download() as dl:
        page.click("#download")
    csv_path = tmp_path / dl.value.suggested_filename
    dl.value.save_as(csv_path)
    assert csv_path.name == "ratings-ps1-Ann_B.csv"
    assert csv_path.read_text().splitlines()[0] == "pair_id,coder,dimension,rating"
    summary = import_ratings(store, csv_path, pair_set=ids["pair_set"])
    assert summary.n_ratings == 10 and summary.coders == ["Ann, B."]
    got = {(p, d): r for p, d, r in store.fetchall(
        "SELECT pair_id, dimension, rating FROM ratings WHERE pair_set = ?", [ids["pair_set"]])}
    assert got == {k: float(v) for k, v in expected.items()}
    assert page.watch.errors == [] and page.watch.dialogs == []


def test_coverage_note_stays_text(page, store, tmp_path):
    """The 'covers N of M memes' note names user-derived annotators and spaces: text only."""
    import json as _json

    ids = fill_store(store, tmp_path / "img", sweep=False, pair_set=None)
    store.execute("INSERT INTO embedding_spaces (space, kind, model, dim, params) VALUES "
                  "('text:description+intent', 'text', 'm', 2, ?)",
                  [_json.dumps({"recipe": {"annotator": XSS_TEXTS[1], "fields": [XSS_TEXTS[3]]}})])
    store.execute("INSERT INTO memes (meme_id, source, has_image) VALUES ('late', 'csv', false)")
    store.execute("INSERT INTO annotations (meme_id, annotator, prompt_hash, schema_hash) "
                  "VALUES ('late', ?, '', '')", [XSS_TEXTS[1]])
    out = tmp_path / "cov.html"
    build(store, ids["run_a"], out)
    _open(page, out)
    note = page.inner_text("#coverage")
    assert "of the store's" in note and "1 absent" in note and XSS_TEXTS[3].split()[0] in note
    assert page.watch.dialogs == [] and page.evaluate("() => window.__xss") is None
    assert page.locator("img[src='x']").count() == 0
