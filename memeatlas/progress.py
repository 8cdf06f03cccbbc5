"""Progress bars on stderr, with one switch to turn them all off.

stdout carries data (tables, CSV, JSON); progress and chatter go to stderr so
that `memeatlas sql ... > out.csv` stays clean.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")

_ENABLED: bool | None = None


def set_enabled(enabled: bool) -> None:
    """Turn progress bars on or off for this process (the CLI's `--no-progress`)."""
    global _ENABLED
    _ENABLED = enabled


def enabled() -> bool:
    """Whether progress bars are shown: off with MEMEATLAS_NO_PROGRESS=1 or `--no-progress`."""
    if _ENABLED is not None:
        return _ENABLED
    return os.environ.get("MEMEATLAS_NO_PROGRESS", "") in ("", "0")


def bar(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "",
        unit: str = "it") -> tqdm:
    """A tqdm bar on stderr that honours the global switch."""
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr,
                disable=not enabled(), leave=False, dynamic_ncols=True)


def track(iterable: Iterable[T], *, total: int | None = None, desc: str = "",
          unit: str = "it") -> Iterator[T]:
    """Iterate with a progress bar (see `bar`)."""
    yield from bar(iterable, total=total, desc=desc, unit=unit)


def info(message: str) -> None:
    """A line of progress or context for humans, on stderr."""
    print(message, file=sys.stderr, flush=True)


def sync_library_bars() -> None:
    """Turn transformers' and huggingface_hub's own bars ("Loading weights", downloads) off
    when memeatlas's are off (`--no-progress`, MEMEATLAS_NO_PROGRESS); call before a model load.
    """
    if enabled():
        return
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except Exception:  # transformers absent or changed: its bar is cosmetic
        pass
    try:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    except Exception:
        pass
