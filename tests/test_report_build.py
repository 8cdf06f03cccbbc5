"""The HTML report and the rating page, checked without a browser: content, escaping, CLI."""

from __future__ import annotations

import json
import re

import pytest
from helpers_report import XSS_FILE_NAME, XSS_TEXTS, fill_store
from typer.testing import CliRunner

from memeatlas.cli import app
from memeatlas.errors import InputError, NotFoundError
from memeatlas.report import build
from memeatlas.report.build import existing_fingerprint
from memeatlas.report.collect import collect
from memeatlas.report.html import asset, json_for_script
from memeatlas.report.rate_page import build_rate_page

DATA_RE = re.compile(r'<script type="application/json" id="memeatlas-data">(.*?)</script>', re.S)


@pytest.fixture
def filled(store, tmp_path):
    return fill_store(store, tmp_path / "img")


def _data(html: str) -> dict:
    m = DATA_RE.search(html)
    assert m, "no data block"
    return json.loads(m.group(1))


def test_json_for_script_escapes_markup():
    s = json_for_script({"t": "</script><b>&amp;\u2028"})
    assert "<" not in s and ">" not in s and "&" not in s and "\u2028" not in s
    assert json.loads(s) == {"t": "</script><b>&amp;\u2028"}


def test_assets_never_use_html_sinks():
    # Meme-derived strings must only reach the DOM as text.
    for name in ("report.js", "rate.js"):
        js = asset(name)
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                     "new Function"):
            assert sink not in js, f"{name} uses {sink}"


def test_report_contains_run_and_escapes_everything(store, filled, tmp_path):
    out = tmp_path / "r.html"
    s = build(store, filled["run_a"], out)
    html = out.read_text()
    assert s.n_memes == 21 and s.n_clusters == 3 and s.n_thumbnails == 21
    # Exactly two script elements (data + code) and no raw meme text anywhere outside them.
    assert html.count("<script") == 2
    for text in XSS_TEXTS + [XSS_FILE_NAME]:
        assert text not in html
    assert "onerror" not in html.split('id="memeatlas-data">')[0]
    data = _data(html)
    assert data["run"]["run_id"] == filled["run_a"]
    assert set(data["memes"]["snippet"]) >= {XSS_TEXTS[0]}
    assert XSS_FILE_NAME in data["memes"]["name"]
    sizes = {c["cluster"]: c["size"] for c in data["clusters"]}
    assert sizes == {0: 6, 1: 6, 2: 6, -1: 3}
    c0 = next(c for c in data["clusters"] if c["cluster"] == 0)
    assert c0["label"] == XSS_TEXTS[0] and c0["keywords"][:2] == ["kw0a", "kw0b"]
    # representatives come first in the gallery
    ids = data["memes"]["id"]
    reps = store.scalar("SELECT representatives FROM cluster_labels WHERE run_id=? AND cluster=0",
                        [filled["run_a"]])
    assert [ids[i] for i in c0["gallery"][:2]] == list(reps)
    assert all(v.startswith("data:image/webp;base64,") for v in data["thumbs"].values())
    # evaluations of the run and the pair set's agreement; sweep has 4 settings x 2 dimensions
    metrics = sorted(e["metric"] for e in data["evaluations"])
    assert metrics == ["alpha_ordinal", "cq", "cq"]
    assert len(data["sweep"]) == 8
    assert {p["min_cluster_size"] for p in data["sweep"]} == {3, 5, 10, 20}
    assert sum(p["current"] for p in data["sweep"]) == 2
    # no network: CSP forbids everything but inline code (by hash) and data: images
    assert "default-src 'none'" in html and "connect-src 'none'" in html
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", html)


def test_report_compare_and_caps(store, filled, tmp_path):
    out = tmp_path / "r.html"
    s = build(store, filled["run_a"], out, compare=filled["run_b"], thumbs_per_cluster=2,
              max_thumbs=5, min_thumbs_per_cluster=1)  # floor 1: the cap holds
    data = _data(out.read_text())
    cmp = data["compare"]
    assert cmp["run"]["run_id"] == filled["run_b"] and cmp["n_shared"] == 21
    assert -1 <= cmp["ari"] <= 1 and len(cmp["per_meme"]) == 21
    assert s.n_thumbnails <= 5 and all(len(c["gallery"]) <= 2 for c in data["clusters"])
    assert "details" in data and len(data["details"]) == s.n_thumbnails


def test_report_skips_identical_rebuild(store, filled, tmp_path):
    out = tmp_path / "r.html"
    build(store, filled["run_a"], out)
    fp = existing_fingerprint(out)
    assert fp
    again = build(store, filled["run_a"], out, force=False)
    assert again.skipped
    store.execute("UPDATE cluster_labels SET label = 'renamed' WHERE run_id = ? AND cluster = 1",
                  [filled["run_a"]])
    third = build(store, filled["run_a"], out, force=False)
    assert not third.skipped and existing_fingerprint(out) != fp


def test_report_missing_image_and_unknown_run(store, filled, tmp_path):
    victim = filled["memes"][3][1]
    import os
    os.remove(victim)
    out = tmp_path / "r.html"
    s = build(store, filled["run_a"], out)
    assert s.n_thumbnails == 20  # the missing file gets a placeholder, the report still builds
    with pytest.raises(NotFoundError, match="not found"):
        collect(store, "no-such-run")


def test_report_newest_run_by_default(store, filled, tmp_path):
    store.execute("UPDATE cluster_runs SET created_at = created_at + INTERVAL 1 DAY WHERE run_id = ?",
                  [filled["run_b"]])
    assert collect(store).run_id == filled["run_b"]


def test_report_cli(store, filled, tmp_path, db_path):
    store.close()
    out = tmp_path / "cli.html"
    res = CliRunner().invoke(app, ["report", "--db", str(db_path), "--run", filled["run_a"],
                                   "--compare", filled["run_b"], "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert out.exists() and "clusters" in res.output
    res = CliRunner().invoke(app, ["report", "--db", str(db_path), "--run", "nope", "-o", str(out)])
    assert res.exit_code == 1 and "Error:" in res.output and "nope" in res.output


def test_rate_page_content(store, filled, tmp_path):
    out = build_rate_page(store, "ps1", tmp_path / "rate.html")
    html = out.read_text()
    data = _data(html)
    assert data["pair_set"] == "ps1" and len(data["pairs"]) == 6
    assert [d["name"] for d in data["dimensions"]] == ["connotative", "denotative"]
    ids = {m["id"] for m in data["memes"]}
    pairs = store.fetchall("SELECT pair_id, meme_a, meme_b FROM rating_pairs WHERE pair_set='ps1' "
                           "ORDER BY position")
    assert [p["id"] for p in data["pairs"]] == [p[0] for p in pairs]
    assert ids == {m for _, a, b in pairs for m in (a, b)}
    assert all(m["img"].startswith("data:image/jpeg;base64,") for m in data["memes"])
    for text in XSS_TEXTS + [XSS_FILE_NAME]:
        assert text not in html
    assert html.count("<script") == 2


def test_rate_page_dimensions_and_errors(store, filled, tmp_path):
    out = build_rate_page(store, "ps1", tmp_path / "r.html", dimensions="humour")
    assert [d["name"] for d in _data(out.read_text())["dimensions"]] == ["humour"]
    with pytest.raises(NotFoundError, match="pair set 'nope' not found"):
        build_rate_page(store, "nope", tmp_path / "x.html")
    with pytest.raises(InputError):
        build_rate_page(store, "ps1", tmp_path / "x.html", dimensions=['a"b'])


def test_evaluate_rate_cli_uses_rate_page(store, filled, tmp_path, db_path):
    store.close()
    out = tmp_path / "rate.html"
    res = CliRunner().invoke(app, ["evaluate", "rate", "--db", str(db_path), "--pair-set", "ps1",
                                   "-o", str(out), "--dimensions", "connotative"])
    assert res.exit_code == 0, res.output
    assert [d["name"] for d in _data(out.read_text())["dimensions"]] == ["connotative"]


def test_pages_with_imageless_memes(store, filled, tmp_path):
    # Imported corpora may have no image: both pages fall back to the annotation text.
    a = store.scalar("SELECT meme_a FROM rating_pairs WHERE pair_set = 'ps1' ORDER BY position LIMIT 1")
    store.execute("UPDATE memes SET has_image = false, path = NULL, source_id = 'memecap:42' "
                  "WHERE meme_id = ?", [a])
    data = _data(build_rate_page(store, "ps1", tmp_path / "rate.html").read_text())
    m = next(m for m in data["memes"] if m["id"] == a)
    assert m["img"] is None and m["text"] and m["name"] == "memecap:42"
    build(store, filled["run_a"], tmp_path / "r.html")
    rep = _data((tmp_path / "r.html").read_text())
    i = rep["memes"]["id"].index(a)
    assert rep["memes"]["name"][i] == "memecap:42" and str(i) not in rep["thumbs"]
