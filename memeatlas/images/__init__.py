"""Image-level structure of a corpus: near-duplicate groups and template matching.

Public API::

    from memeatlas.images import NearDupConfig, group_near_duplicates
    from memeatlas.images import TemplateMatchConfig, match_templates
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "NearDupConfig": "memeatlas.images.neardup",
    "NearDupSummary": "memeatlas.images.neardup",
    "group_near_duplicates": "memeatlas.images.neardup",
    "TemplateMatchConfig": "memeatlas.images.templates",
    "TemplateMatchSummary": "memeatlas.images.templates",
    "match_templates": "memeatlas.images.templates",
    "HashIndex": "memeatlas.images.hashindex",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'memeatlas.images' has no attribute {name!r}")
    value = getattr(import_module(mod), name)
    globals()[name] = value
    return value
