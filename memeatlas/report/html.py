"""Assembling self-contained pages: a template, inline CSS/JS from package files, JSON data.

Safety rules every generated page follows:
- Data goes in `<script type="application/json">` with `<`, `>`, `&` (and U+2028/9)
  written as `\\u003c`-style escapes, so no meme text can close the script element.
- The page's JavaScript renders meme-derived strings with `textContent` only.
- A Content-Security-Policy allows only the page's own inline script (by hash), inline
  styles and `data:`/`blob:` images, and no network at all: even an injected tag could
  neither run nor load anything.
"""

from __future__ import annotations

import base64
import hashlib
import json
from importlib import resources
from typing import Any

_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
            "\u2029": "\\u2029"}


def json_for_script(obj: Any) -> str:
    """JSON that is safe inside `<script type="application/json">` (see module docstring)."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for ch, esc in _ESCAPES.items():
        text = text.replace(ch, esc)
    return text


def asset(name: str) -> str:
    """Text of a file shipped in memeatlas/report/assets/."""
    return resources.files("memeatlas.report").joinpath("assets", name).read_text("utf-8")


def _sha256_b64(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def render_page(*, title: str, css: str, js: str, data: Any, body: str,
                meta: dict[str, str] | None = None) -> str:
    """One HTML document: CSP, inline CSS, the JSON data block, the body skeleton, inline JS.

    `title`, `meta` values are escaped here; `body` is trusted markup from package files.
    """
    import html as _html

    if "</script" in js.lower() or "</style" in css.lower():
        raise ValueError("inline assets must not contain closing script/style tags")
    csp = ("default-src 'none'; img-src data: blob:; "
           f"style-src 'sha256-{_sha256_b64(css)}'; script-src 'sha256-{_sha256_b64(js)}'; "
           "connect-src 'none'; base-uri 'none'; form-action 'none'")
    metas = "".join(
        f'<meta name="{_html.escape(k, quote=True)}" content="{_html.escape(v, quote=True)}">\n'
        for k, v in (meta or {}).items())
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"{metas}<title>{_html.escape(title)}</title>\n"
        f"<style>{css}</style>\n</head>\n<body>\n{body}\n"
        f'<script type="application/json" id="memeatlas-data">{json_for_script(data)}</script>\n'
        f"<script>{js}</script>\n</body>\n</html>\n"
    )
