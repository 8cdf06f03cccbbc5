"""What MemeCap's rows say, read faithfully: metaphor pairs, flattened text, and what they lack.

MemeCap (Hwang & Shwartz 2023) pairs each visual element with its meaning
(`metaphors: [{metaphor, meaning}]`). Its annotators also filled pairs whose
meaning says the element has none: "not related to the meme context" (1,962 of
13,905 pairs in trainval + test) and the filler "not being bothered with
something" (289, given to verbs, colours and positions: "looking", "silver",
"the bottom"). Such a pair is not an entity of the meme, so it is kept in the
annotation's `raw` but not stored as one. MemeCap gives no hero/villain/victim
role, so its entities carry the role `unspecified`, never a role the source did
not assign.

The rebuilt trainval file has `csv_only` rows with no structured fields, only
`img_captions_flat`, `meme_captions_flat` and `metaphors_flat`
(`"a duct: Meme poster, a tunnel: real air vent"`); those are read here too.
"""

from __future__ import annotations

import re
from typing import Any

# The role of an entity whose source names no role (an import), distinct from the model's
# `other` ("a role, but not hero, villain or victim").
UNSPECIFIED_ROLE = "unspecified"

# Meanings that say the element has none, matched on the whole (case- and space-folded)
# meaning; the phrasings found in MemeCap trainval and test. A prefix match for the first
# catches typos glued on ("not related to the meme contextMem").
_NO_MEANING = re.compile(
    r"^(?:not related to the meme context\w*|not related|unrelated|irrelevant|n/?a|none|"
    r"nothing|no meaning|not being bothered with something)\W*$")

# In `metaphors_flat`, a new pair starts after ", " where the text up to the next ": " has no
# comma (so a meaning may itself contain commas).
_FLAT_PAIR_SPLIT = re.compile(r",\s+(?=[^,:]+:\s)")


def says_no_meaning(meaning: Any) -> bool:
    """Whether a metaphor's meaning says the element means nothing in the meme."""
    if not isinstance(meaning, str):
        return False
    return bool(_NO_MEANING.match(" ".join(meaning.lower().split())))


def parse_flat_metaphors(text: Any) -> list[dict[str, str]] | None:
    """`"a: b, c: d"` (MemeCap's `metaphors_flat`) as `[{metaphor, meaning}]`; None when not text."""
    if not isinstance(text, str):
        return None
    pairs = []
    for part in _FLAT_PAIR_SPLIT.split(text.strip()):
        name, sep, meaning = part.partition(":")
        if name.strip():
            pairs.append({"metaphor": name.strip(), "meaning": meaning.strip() if sep else ""})
    return pairs


def metaphor_entities(metaphors: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(entities, pairs without meaning) from MemeCap's metaphor pairs.

    Entities have `role` `unspecified` (MemeCap assigns none); a pair whose meaning says there
    is none goes to the second list, not to the entities.
    """
    entities: list[dict[str, Any]] = []
    dropped: list[dict[str, Any]] = []
    for m in metaphors:
        if not isinstance(m, dict):
            continue
        name = m.get("metaphor")
        if not isinstance(name, (str, int, float)) or not str(name).strip():
            continue
        meaning = m.get("meaning")
        if says_no_meaning(meaning):
            dropped.append({"metaphor": str(name), "meaning": meaning})
            continue
        stands_for = str(meaning).strip() if meaning is not None and str(meaning).strip() else None
        entities.append({"name": str(name), "role": UNSPECIFIED_ROLE, "stands_for": stands_for})
    return entities, dropped
