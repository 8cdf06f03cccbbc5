"""Screenshots of the demo's report and rating page for the README.

    python scripts/screenshots.py [--demo-dir memeatlas-demo] [--out docs/img]

Runs `memeatlas demo` into --demo-dir when it has no report yet (offline: OCR captions,
bundled MiniLM), then opens both pages in Debian's headless chromium and writes
docs/img/report.png and docs/img/rate.png.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo-dir", type=Path, default=Path("memeatlas-demo"))
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    report, rate = args.demo_dir / "report.html", args.demo_dir / "rate.html"
    if not (report.exists() and rate.exists()):
        from memeatlas.pipeline import run_demo

        run_demo(args.demo_dir)

    from helpers_report import launch_browser
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = launch_browser(p)
        ctx = b.new_context(viewport={"width": 1360, "height": 1020}, device_scale_factor=1)
        page = ctx.new_page()
        page.goto(report.resolve().as_uri())
        page.wait_for_selector("body[data-ready='1']")
        # the largest cluster selected, the pointer on one of its memes: what a reader does first
        page.click("#cluster-list li:first-child")
        page.evaluate("() => window.scrollTo(0, 0)")
        xy = page.evaluate("() => { const R = window.memeatlasReport;"
                           " return R.screenPoint(R.data.clusters[0].gallery[0]); }")
        box = page.locator("#map").bounding_box()
        page.mouse.move(box["x"] + xy[0], box["y"] + xy[1])
        page.screenshot(path=str(args.out / "report.png"))
        page.close()

        page = ctx.new_page()
        page.goto(rate.resolve().as_uri())
        page.wait_for_selector("body[data-ready='1']")
        page.evaluate("() => localStorage.clear()")
        page.reload()
        page.wait_for_selector("body[data-ready='1']")
        page.fill("#coder", "coder1")
        page.locator("#coder").press("Enter")
        for key in ("1", "1", "3", "2", "2", "2"):  # three pairs rated, the fourth shown
            page.keyboard.press(key)
        page.keyboard.press("3")
        page.set_viewport_size({"width": 1360, "height": 860})
        page.screenshot(path=str(args.out / "rate.png"))
        page.evaluate("() => localStorage.clear()")
        ctx.close()
        b.close()
    print(f"wrote {args.out / 'report.png'} and {args.out / 'rate.png'}")


if __name__ == "__main__":
    main()
