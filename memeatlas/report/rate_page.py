"""`memeatlas evaluate rate`: a static page on which human coders rate a pair set.

One HTML file (no server, no network): each pair of memes side by side, a 1/2/3 scale
per dimension (keys 1, 2, 3), progress kept in the browser's localStorage, and a
"Download CSV" button that writes the long layout `pair_id,coder,dimension,rating`
which `memeatlas evaluate import-ratings --pair-set NAME FILE` reads as is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memeatlas import __version__
from memeatlas.errors import InputError, NotFoundError
from memeatlas.evaluate.pairs import DEFAULT_DIMENSIONS, require_pair_set
from memeatlas.provenance import short_hash, utcnow
from memeatlas.report.html import asset, render_page
from memeatlas.report.thumbnails import data_uris
from memeatlas.store import Store

RATE_THUMB_PX = 420
TEXT_CHARS = 600

# What each dimension asks, after Arminio et al. (2025): denotative = what is shown,
# connotative = what is meant. Other dimension names get a generic question.
QUESTIONS = {
    "denotative": "What is SHOWN: do the two memes depict the same kind of thing "
                  "(people, objects, setting, layout, template)?",
    "connotative": "What is MEANT: do the two memes convey the same message, idea or joke, "
                   "whatever they show?",
}
SCALE = [
    {"value": 1, "label": "unrelated"},
    {"value": 2, "label": "loosely related"},
    {"value": 3, "label": "closely related"},
]


def _dimensions(params: dict[str, Any] | None, dimensions) -> list[str]:
    """The dimensions to rate: `dimensions` if given, else the pair set's (`params`), else the defaults."""
    if dimensions:
        dims = [d.strip() for d in (dimensions.split(",") if isinstance(dimensions, str)
                                    else dimensions) if d and d.strip()]
    else:
        dims = list((params or {}).get("dimensions") or DEFAULT_DIMENSIONS)
    bad = [d for d in dims if "," in d or '"' in d or "\n" in d]
    if bad:
        raise InputError(f"dimension names may not contain commas, quotes or newlines: {bad!r}")
    if len(set(dims)) != len(dims):
        raise InputError(f"dimensions repeat: {dims!r}")
    if not dims:
        raise InputError("no dimensions to rate; pass --dimensions connotative,denotative")
    return dims


def _clip(s: Any, n: int) -> str:
    s = "" if s is None else str(s)
    return s if len(s) <= n else s[: n - 1] + "…"


def build_rate_page(store: Store, pair_set: str, out_path: str | Path, dimensions=None, *,
                    thumb_px: int = RATE_THUMB_PX, quality: int = 80,
                    show_text: bool = False) -> Path:
    """Write the rating page for `pair_set` to `out_path` and return the path.

    `dimensions`: names to rate (list or comma-separated string); default: the pair set's own
    (pair_sets.params.dimensions), else connotative and denotative. Images are embedded at
    most `thumb_px` pixels on a side; each meme once however many pairs it is in. Memes
    without an image show their annotation text instead. `show_text` starts the page with
    the memes' annotation text shown under the images (coders can toggle it).
    """
    dims = _dimensions(require_pair_set(store, pair_set).get("params"), dimensions)
    pairs = store.fetchall("SELECT pair_id, meme_a, meme_b FROM rating_pairs WHERE pair_set = ? "
                           "ORDER BY position NULLS LAST, pair_id", [pair_set])
    if not pairs:
        raise NotFoundError(f"pair set {pair_set!r} has no pairs")
    meme_ids = sorted({m for _, a, b in pairs for m in (a, b)})
    index = {m: i for i, m in enumerate(meme_ids)}
    rows = {r[0]: r[1:] for r in store.fetchall(
        "SELECT m.meme_id, m.path, m.has_image, m.source_id, a.ocr_text, a.description "
        "FROM memes m LEFT JOIN (SELECT * FROM annotations "
        "  QUALIFY row_number() OVER (PARTITION BY meme_id ORDER BY created_at DESC, annotator) = 1) a "
        "USING (meme_id) WHERE m.meme_id IN (SELECT unnest(?::VARCHAR[]))", [meme_ids])}
    missing = [m for m in meme_ids if m not in rows]
    if missing:
        raise NotFoundError(f"pair set {pair_set!r} names {len(missing)} meme(s) not in `memes` "
                            f"(first: {missing[0]}); was the database rebuilt?")
    thumbs = data_uris(((m, rows[m][0] if rows[m][1] else None) for m in meme_ids), thumb_px,
                       fmt="JPEG", quality=quality, desc="rating page images")
    memes = []
    for m in meme_ids:
        path, _has, sid, ocr, desc = rows[m]
        text = "\n".join(t for t in (_clip(ocr, TEXT_CHARS), _clip(desc, TEXT_CHARS)) if t)
        memes.append({"id": m, "img": thumbs.get(m), "text": text,
                      "name": Path(path).name if path else (sid or m[:12])})
    payload = {
        "pair_set": pair_set,
        "dimensions": [{"name": d, "question": QUESTIONS.get(d, f"How related are the two memes in "
                                                                f"terms of “{d}”?")} for d in dims],
        "scale": SCALE,
        "pairs": [{"id": pid, "a": index[a], "b": index[b]} for pid, a, b in pairs],
        "memes": memes,
        "show_text": show_text,
        # Progress in localStorage is keyed by pair set and its exact pairs, so two pages of
        # different pair sets (or a re-sampled set with the same name) never mix.
        "storage_key": "memeatlas-rate:" + pair_set + ":" + short_hash([p[0] for p in pairs], n=12),
        "generated": {"at": utcnow().isoformat(sep=" ", timespec="seconds"), "memeatlas": __version__},
    }
    html = render_page(title=f"Rate pairs · {pair_set}", css=asset("rate.css"), js=asset("rate.js"),
                       data=payload, body=asset("rate_body.html"),
                       meta={"memeatlas-pair-set": pair_set})
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    return out
