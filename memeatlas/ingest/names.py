"""File names the store can hold: DuckDB text is UTF-8, a POSIX file name is any bytes.

Python decodes undecodable bytes of a name to lone surrogates (PEP 383); such a string
cannot be written to the store, so it must be caught per item, never reach a bulk write.
"""

from __future__ import annotations

import os


def is_storable(text: str) -> bool:
    """True when `text` encodes to UTF-8 (no lone surrogates), so DuckDB can store it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def readable(text: str) -> str:
    """A valid UTF-8 form of a path or message: undecodable bytes shown as `\\xff`.

    The same bytes always give the same text, so an error row for a badly named file is
    keyed stably across re-runs.
    """
    if is_storable(text):
        return text
    return os.fsencode(text).decode("utf-8", "backslashreplace") if _is_fs(text) else \
        text.encode("utf-8", "backslashreplace").decode("utf-8")


def _is_fs(text: str) -> bool:
    try:
        os.fsencode(text)
    except UnicodeEncodeError:
        return False
    return True
