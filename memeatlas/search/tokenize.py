"""Search terms of a text, in any script, with where each one sits (for marking hits).

The same rules as the cluster keywords (`memeatlas/cluster/tokenize.py`), tuned for search:
text is NFKC-normalised and lower-cased; a word is a letter followed by letters, marks,
digits or apostrophes (`Prüfung`, `мем`, `نكتة` stay whole; `student-debt` is two
terms); numbers are kept (a
year or "404" is a good search term); each emoji is one term; Chinese and Japanese, written
without spaces, give Han character bigrams (one- or two-character runs stay whole) and whole
Katakana runs. Common English function words are dropped, and English plurals fold onto their
singular with Harman's "S" stemmer (`students` → `student`, `memes` → `meme`), so a query
matches either form. A query is tokenised exactly like the documents.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator

import regex

_CJ = r"[\p{Han}\p{Hiragana}\p{Katakana}]"
_TOKEN = regex.compile(
    r"(?P<emoji>\p{Extended_Pictographic}(?:[\p{EMod}\uFE0F]|\u200D\p{Extended_Pictographic})*)"
    r"|(?P<han>\p{Han}+)"
    r"|(?P<kata>[\p{Katakana}\u30FC]+)"
    r"|(?P<hira>\p{Hiragana}+)"
    rf"|(?P<word>[\p{{L}}\p{{N}}--{_CJ}][[\p{{L}}\p{{M}}\p{{N}}'’]--{_CJ}]*)",
    flags=regex.V1,
)

# English function words: frequent enough that they only add postings (BM25 gives them a
# weight near zero anyway). Other languages keep theirs: a stop list per language would
# need language detection, and short non-English queries should still match.
STOP_WORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further
had has have having he her here hers herself him himself his how i if in into is it its itself
just me more most my myself no nor not of off on once only or other our ours ourselves out over
own same she should so some such than that the their theirs them themselves then there these
they this those through to too under until up very was we were what when where which while who
whom why will with would you your yours yourself yourselves s t don doesn didn isn wasn aren
""".split())


def _stem(word: str) -> str:
    """Harman's S stemmer (1991): plural endings only; never shorter than three letters."""
    if len(word) <= 3 or not word.isascii():
        return word
    if word.endswith("ies") and not word.endswith(("eies", "aies")):
        return word[:-3] + "y"
    if word.endswith("es") and not word.endswith(("aes", "ees", "oes")):
        return word[:-1]
    if word.endswith("s") and not word.endswith(("us", "ss")):
        return word[:-1]
    return word


def terms_with_spans(text: str) -> Iterator[tuple[str, int, int]]:
    """(term, start, end) for every search term of `text`; spans index the original text.

    NFKC may change lengths, so spans are found on the text as given (lower-casing keeps
    positions for nearly all scripts) and the term itself is normalised afterwards.
    """
    low = text.lower()
    if len(low) != len(text):  # a rare character whose lower case is longer: no spans
        low = text
    for m in _TOKEN.finditer(low):
        kind = m.lastgroup
        tok = unicodedata.normalize("NFKC", m.group()).lower()
        start, end = m.span()
        if kind == "emoji":
            yield tok, start, end
        elif kind == "han":
            if len(tok) <= 2:
                yield tok, start, end
            else:
                for i in range(len(tok) - 1):
                    yield tok[i:i + 2], start + i, min(end, start + i + 2)
        elif kind == "kata":
            if len(tok) >= 2:
                yield tok, start, end
        elif kind == "word":
            word = tok.strip("'’").replace("’", "'")
            if word.endswith("'s"):
                word = word[:-2]
            if not word or word in STOP_WORDS:
                continue
            yield _stem(word), start, end


def terms(text: str) -> list[str]:
    """The search terms of one text (see the module docstring)."""
    return [t for t, _, _ in terms_with_spans(text)]


def mark(text: str, wanted: set[str], *, width: int = 160, left: str = "«", right: str = "»"
         ) -> tuple[str, list[str]]:
    """`text` cut to about `width` characters around its first matching term, with every
    occurrence of a `wanted` term wrapped in `left`/`right`; and the terms that matched."""
    spans = [(s, e, t) for t, s, e in terms_with_spans(text) if t in wanted]
    flat = " ".join(text.split())
    if not spans:
        return (flat if len(flat) <= width else flat[:width - 1] + "…"), []
    # Merge overlapping spans (Han bigrams overlap).
    merged: list[list[int]] = []
    for s, e, _ in sorted(spans):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    first = merged[0][0]
    a = max(0, first - width // 3)
    b = min(len(text), a + width)
    out, pos = [], a
    for s, e in merged:
        if e <= a or s >= b:
            continue
        s, e = max(s, a), min(e, b)
        out += [text[pos:s], left, text[s:e], right]
        pos = e
    out.append(text[pos:b])
    snippet = " ".join("".join(out).split())
    return (("…" if a > 0 else "") + snippet + ("…" if b < len(text) else "")), \
        sorted({t for _, _, t in spans})
