"""Tokens for cluster keywords (c-TF-IDF) in any script, not just ASCII.

Memes are written in every language and in emoji. A word is a letter followed by letters,
combining marks, digits, apostrophes or hyphens (so `Prüfung`, `мем`, `نكتة` and `नमस्ते`
stay whole); each emoji, with its skin tone or ZWJ sequence, is one token. Chinese and
Japanese are written without spaces, so their text is split at changes of script:
Han runs of one or two characters stay whole, longer ones give overlapping character
bigrams (the CJK bigram scheme of search engines); Katakana runs (loanwords, names) stay
whole; Hiragana runs, mostly particles and inflections, are dropped. Text is NFKC-normalised
and lower-cased, and common function words of English, German, French, Spanish, Russian and
Arabic are removed.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

import regex

_CJ = r"[\p{Han}\p{Hiragana}\p{Katakana}]"
_TOKEN = regex.compile(
    r"(?P<emoji>\p{Extended_Pictographic}(?:[\p{EMod}\uFE0F]|\u200D\p{Extended_Pictographic})*)"
    r"|(?P<han>\p{Han}+)"
    r"|(?P<kata>[\p{Katakana}\u30FC]+)"
    r"|(?P<hira>\p{Hiragana}+)"
    # A word: letters, marks, digits, ' and - (V1 set difference: no CJK inside a word).
    rf"|(?P<word>[\p{{L}}--{_CJ}][[\p{{L}}\p{{M}}\p{{N}}'’-]--{_CJ}]*)",
    flags=regex.V1,
)

# Per-language lists overlap (de/fr 'des', 'du'), hence a tuple, not a set literal.
_STOP_OTHER = frozenset((
    # German
    "der", "die", "das", "den", "dem", "des", "ein", "eine", "einer", "eines", "einem", "einen",
    "und", "oder", "aber", "ist", "sind", "war", "nicht", "mit", "von", "zu", "zum", "zur", "im",
    "in", "auf", "für", "wie", "wenn", "ich", "du", "er", "sie", "es", "wir", "ihr", "man", "so",
    "auch", "noch", "nur", "schon", "bei", "aus", "als", "dass", "mein", "dein", "hat", "habe",
    # French
    "le", "la", "les", "un", "une", "des", "du", "de", "et", "ou", "est", "pas", "que", "qui",
    "je", "tu", "il", "elle", "nous", "vous", "ils", "ce", "ça", "pour", "sur", "avec", "dans",
    # Spanish
    "el", "los", "las", "una", "unos", "y", "o", "es", "no", "que", "en", "por", "para", "con",
    "yo", "se", "lo", "mi", "su", "al", "del", "cuando", "pero", "muy",
    # Russian
    "и", "в", "во", "не", "что", "он", "она", "оно", "они", "на", "я", "ты", "мы", "вы", "с",
    "со", "как", "а", "то", "все", "это", "так", "его", "её", "но", "да", "к", "у", "же", "за",
    "бы", "по", "из", "от", "о", "ли", "если", "уже", "или", "ни", "быть", "был", "когда", "мне",
    # Arabic
    "في", "من", "على", "إلى", "الى", "عن", "مع", "هذا", "هذه", "ذلك", "التي", "الذي", "أن", "ان",
    "إن", "لا", "ما", "هو", "هي", "كان", "قد", "او", "أو", "ثم", "كل", "لم", "لن", "و", "يا",
))


@lru_cache(maxsize=1)
def stop_words() -> frozenset[str]:
    """Function words left out of keywords (sklearn's English list plus the ones above)."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS) | _STOP_OTHER


def _han_tokens(run: str) -> list[str]:
    if len(run) <= 2:
        return [run]
    return [run[i:i + 2] for i in range(len(run) - 1)]


def keyword_tokens(text: str) -> list[str]:
    """The keyword tokens of one document (see the module docstring)."""
    text = unicodedata.normalize("NFKC", text).lower()
    stop = stop_words()
    out: list[str] = []
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        tok = m.group()
        if kind == "emoji":
            out.append(tok)
        elif kind == "han":
            out.extend(_han_tokens(tok))
        elif kind == "kata":
            if len(tok) >= 2:
                out.append(tok)
        elif kind == "word":
            tok = tok.strip("'’-")
            if len(tok) >= 2 and tok not in stop and not tok.isdigit():
                out.append(tok)
    return out


def keyword_vectorizer():
    """The CountVectorizer c-TF-IDF counts with: unigrams of `keyword_tokens`."""
    from sklearn.feature_extraction.text import CountVectorizer

    return CountVectorizer(analyzer=keyword_tokens)
