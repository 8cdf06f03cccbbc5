"""What produced a row: software versions, hashes of prompts and schemas, run ids."""

from __future__ import annotations

import hashlib
import json
import platform
import uuid
from datetime import datetime, timezone
from importlib import metadata
from typing import Any

from memeatlas import __version__


def stable_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: the form that hashes are taken over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def sha256_text(text: str) -> str:
    """Hex SHA-256 of UTF-8 text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def short_hash(obj: Any, n: int = 16) -> str:
    """A short, stable hash of a string or JSON-able object (keys of prompts, schemas, params)."""
    text = obj if isinstance(obj, str) else stable_json(obj)
    return sha256_text(text)[:n]


def new_run_id(prefix: str) -> str:
    """A sortable, unique run id such as `cluster-20261122T101500-1a2b3c`."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{prefix}-{stamp}-{uuid.uuid4().hex[:6]}"


def utcnow() -> datetime:
    """Naive UTC timestamp, the form stored in DuckDB TIMESTAMP columns."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def software(*dists: str) -> dict[str, str | None]:
    """Versions of memeatlas, Python and the named distributions, for provenance columns."""
    out: dict[str, str | None] = {"memeatlas": __version__, "python": platform.python_version()}
    for d in dists:
        out[d] = _version(d)
    return out
