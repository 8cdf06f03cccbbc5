"""Files the user names on the command line, read with one-line errors.

A missing path, a folder where a file is wanted, a device or FIFO, bytes that are not UTF-8, a
CSV cell beyond the csv module's field limit: each becomes an InputError naming what the path
was for, the path (and the line), never a traceback.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

from memeatlas.errors import InputError

# csv's own limit, kept on purpose: a longer cell is an unclosed quote or not a table at all.
CSV_FIELD_LIMIT = 131_072


def check_file(path: str | Path, what: str) -> Path:
    """`path` when it is a readable regular file; else InputError saying what it is instead."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{what} {path} is a folder; name a file")
    if not path.exists():
        raise InputError(f"{what} {path} not found")
    if not path.is_file():
        raise InputError(f"{what} {path} is not a regular file (a device, socket or FIFO?)")
    return path


def read_text(path: str | Path, what: str) -> str:
    """The whole file as UTF-8 text (a byte-order mark is dropped), after `check_file`."""
    path = check_file(path, what)
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} {path} is not UTF-8 text (bad byte at offset {exc.start}); "
                         f"save it as UTF-8") from None
    except OSError as exc:
        raise InputError(f"cannot read {what} {path} ({exc.strerror or exc})") from None


def csv_rows(text: str, path: str | Path, what: str, *, delimiter: str = ",",
             strict: bool = False) -> Iterator[tuple[int, list[str]]]:
    """(line, cells) of CSV `text` read from `path`; a row the csv module cannot read (a cell
    over CSV_FIELD_LIMIT characters, an unclosed quote with `strict`) is an InputError naming
    the file and line."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=strict)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            line = reader.line_num
            if "field larger than field limit" in str(exc):
                raise InputError(f"{what} {path}: line {line}: a cell longer than "
                                 f"{CSV_FIELD_LIMIT:,} characters (an unclosed quote, or not a "
                                 f"table?); nothing was read") from None
            raise InputError(f"{what} {path}: line {line}: cannot parse as CSV ({exc}); "
                             f"check its quotes") from None
        yield reader.line_num, row
