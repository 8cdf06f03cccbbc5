"""Near-duplicate groups and template matches in the status and the report (own section)."""

from __future__ import annotations

import json
import re

import pytest
from helpers_report import chromium_available, fill_store, launch_browser

from memeatlas.images import NearDupConfig, group_near_duplicates
from memeatlas.pipeline import status
from memeatlas.report import build
from memeatlas.report.html import asset

DATA_RE = re.compile(r'<script type="application/json" id="memeatlas-data">(.*?)</script>', re.S)


@pytest.fixture
def grouped(store, tmp_path):
    ids = fill_store(store, tmp_path / "img")
    memes = [m for m, in store.fetchall("SELECT meme_id FROM memes ORDER BY meme_id")]
    # three memes one image (hashes 1 bit apart, and the same pixels: near-dups verifies
    # candidate pairs geometrically), the rest far apart
    import shutil

    paths = dict(store.fetchall("SELECT meme_id, path FROM memes"))
    for m in memes[1:3]:
        shutil.copy(paths[memes[0]], paths[m])
    for k, m in enumerate(memes):
        h = 0x8F3A5C7E9B1D2F40 ^ (1 << k) if k < 3 else (0x0123456789ABCDEF * (k + 1)) % 2**64
        store.execute("UPDATE memes SET phash = ? WHERE meme_id = ?", [f"{h:016x}", m])
    s = group_near_duplicates(store, NearDupConfig(space="none"))
    assert s.n_groups == 1 and s.n_grouped == 3
    return ids, memes[:3]


def test_report_shows_groups_in_its_own_section(store, grouped, tmp_path):
    ids, members = grouped
    out = tmp_path / "r.html"
    build(store, ids["run_a"], out)
    html = out.read_text()
    data = json.loads(DATA_RE.search(html).group(1))
    nd = data["images"]["near_dups"]
    assert (nd["n_groups"], nd["n_same_image"]) == (1, 1)
    (g,) = nd["groups"]
    assert g["n"] == 3 and g["kind"] == "same_image"
    assert sorted(data["memes"]["id"][i] for i in g["members"]) == sorted(members)
    assert all(str(i) in data["thumbs"] for i in g["members"])
    assert "images-panel" in html and html.count("<script") == 2
    js = asset("report_images.js")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in js


def test_status_lists_groups(store, grouped):
    rows = {what.strip(): n for step, what, n in status(store) if step == "images"}
    key = next(k for k in rows if k.startswith("near-duplicate groups"))
    assert rows[key] == 1 and rows["memes in groups"] == 3 and rows["of them one image (reposts)"] == 1


@pytest.mark.browser
@pytest.mark.skipif(not chromium_available(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_section_renders_in_chromium(store, grouped, tmp_path):
    from playwright.sync_api import sync_playwright

    ids, _ = grouped
    out = tmp_path / "r.html"
    build(store, ids["run_a"], out)
    with sync_playwright() as p:
        b = launch_browser(p)
        page = b.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.goto(out.as_uri())
        panel = page.locator("#images-panel")
        assert panel.count() == 1
        assert "1 near-duplicate group among" in panel.inner_text()
        assert panel.locator("figure.dupgroup img").count() == 3
        b.close()
    assert not errors, errors
