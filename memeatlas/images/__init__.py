"""Image-level structure of a corpus: near-duplicate groups and template matching.

Public API::

    from memeatlas.images import NearDupConfig, group_near_duplicates
    from memeatlas.images import TemplateMatchConfig, match_templates
"""

from __future__ import annotations

from memeatlas.lazy import lazy_exports

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


__getattr__ = lazy_exports(__name__, _EXPORTS)
