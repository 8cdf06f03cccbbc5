"""The report's search box in a real headless Chromium: BM25 over the index shipped in the
page, fused with precomputed neighbours; hits become the selection; `report --ids`."""

from __future__ import annotations

import re

import pytest
from helpers_report import chromium_available, fill_store
from playwright.sync_api import expect

from memeatlas.report import build

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not chromium_available(),
                       reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)"),
]


def test_search_box_selects_hits_and_preselects(browser, store, tmp_path):
    ids = fill_store(store, tmp_path / "img", xss=False, sweep=False, pair_set=None)
    memes = [m for m, _, _ in ids["memes"]]
    out = tmp_path / "report.html"
    build(store, ids["run_a"], out, preselect=memes[:2])
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(out.as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=15_000)
    assert page.evaluate("window.memeatlasReport.tokens(\"Students' DEBTS 😂 学生贷款\")") == [
        "student", "debt", "😂", "学生", "生贷", "贷款"]
    # preselected by report --ids
    assert page.text_content("#selection-count").startswith("2 memes selected")
    page.fill("#search-box", "card number 7")
    # (no wait_for_function: the page's CSP forbids the eval it needs)
    expect(page.locator("#search-count")).to_have_text(re.compile(r"hits$"))
    first = page.evaluate("window.memeatlasReport.search('card number 7', 5)[0]")
    page_ids = page.evaluate("window.memeatlasReport.data.memes.id")
    assert page_ids[first] == memes[7]
    n = int(page.text_content("#search-count").split()[0])
    assert n > 0 and page.text_content("#selection-count").startswith(f"{n} memes selected")
    csv = page.evaluate("window.memeatlasReport.selectionCsv()")
    assert csv.splitlines()[0] == "meme_id,source_id,label" and memes[7] in csv
    page.fill("#search-box", "")
    expect(page.locator("#search-count")).to_have_text("")
    assert errors == []
    assert all(u.startswith(("file:", "data:", "blob:")) for u in requests)
    ctx.close()
