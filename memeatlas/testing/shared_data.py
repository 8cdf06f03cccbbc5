"""Where the real public data of `../shared/data` lives, for benchmarks and data-backed tests.

The data is never copied into the repository: tests that need it skip with a reason when it
is absent. `MEMEATLAS_SHARED_DATA` overrides the default location (the project root's
`../shared/data`).
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "MEMEATLAS_SHARED_DATA"
_ROOT = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path | None:
    """The shared data folder, or None when it is not on this machine."""
    override = os.environ.get(ENV)
    path = Path(override) if override else _ROOT.parent / "shared" / "data"
    return path if path.is_dir() else None


def shared_path(*parts: str) -> Path | None:
    """A file or folder under the shared data, or None when it (or the folder) is absent."""
    base = shared_data_dir()
    if base is None:
        return None
    path = base.joinpath(*parts)
    return path if path.exists() else None


def require_shared(*parts: str) -> Path:
    """For tests: the path, or skip the test with a reason naming what is missing."""
    import pytest

    path = shared_path(*parts)
    if path is None:
        pytest.skip(f"needs ../shared/data/{'/'.join(parts)} (real public data; absent here)")
    return path
