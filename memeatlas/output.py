"""Writing result rows to stdout as an aligned table, CSV or JSON."""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, TextIO

FORMATS = ("table", "csv", "json")

# Characters a terminal may act on rather than show: C0 controls (ESC starts escape sequences,
# BEL rings), DEL, C1 controls (U+009B is a one-character CSI), and the bidirectional
# overrides/isolates that reorder what is displayed.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")

# What json.dumps(ensure_ascii=False) leaves raw inside strings (it escapes C0 itself).
_JSON_RAW = re.compile("[\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape_char(m: re.Match[str]) -> str:
    c = m.group(0)
    return {"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(c) or (
        f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


def safe_text(text: str) -> str:
    """`text` with control and bidi-override characters written as visible escapes (`\\x1b`,
    `\\u202e`), for showing stored text on a terminal."""
    return _UNSAFE.sub(_escape_char, text)


def _json_safe(dumped: str) -> str:
    """JSON text with the characters json.dumps leaves raw (DEL, C1, bidi) as \\u escapes:
    the same data once parsed, nothing a terminal acts on."""
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group(0)):04x}", dumped)


def _cell(v: Any, width: int | None) -> str:
    if v is None:
        s = ""
    elif isinstance(v, float):
        s = f"{v:.6g}"
    elif isinstance(v, (list, dict)):
        s = json.dumps(v, ensure_ascii=False, default=str)
    else:
        s = str(v)
    s = safe_text(s.replace("\n", " "))
    if width is not None and len(s) > width:
        s = s[: width - 1] + "…"
    return s


def _jsonable(v: Any) -> Any:
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    return v


def write_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str = "table",
               out: TextIO | None = None, max_width: int | None = 60) -> None:
    """Write rows in one of FORMATS; table cells are cut at `max_width` characters.

    Stored text may hold control characters (a cluster name with ESC or BEL): tables show them
    as visible escapes; JSON keeps the exact text, with every such character \\u-escaped; CSV
    is written as stored when it goes to a file or pipe and escaped like a table on a terminal.
    """
    out = out or sys.stdout
    if fmt == "csv":
        tty = bool(getattr(out, "isatty", lambda: False)())
        w = csv.writer(out, lineterminator="\n")
        w.writerow([safe_text(c) for c in columns] if tty else columns)
        for r in rows:
            vals = ["" if v is None else (json.dumps(v, default=str)
                                          if isinstance(v, (list, dict)) else v) for v in r]
            w.writerow([safe_text(str(v)) for v in vals] if tty else vals)
    elif fmt == "json":
        data = [{c: _jsonable(v) for c, v in zip(columns, r, strict=False)} for r in rows]
        out.write(_json_safe(json.dumps(data, indent=2, ensure_ascii=False, default=str)) + "\n")
    elif fmt == "table":
        columns = [safe_text(str(c)) for c in columns]
        cells = [[_cell(v, max_width) for v in r] for r in rows]
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
        out.write("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=False)).rstrip() + "\n")
        out.write("  ".join("-" * w for w in widths) + "\n")
        for r in cells:
            out.write("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)).rstrip() + "\n")
    else:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
