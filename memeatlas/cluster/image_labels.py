"""Labels for clusters of an image-only run, from what is known about their images.

Keywords of an image run's clusters come from whatever text its memes have. On a folder of
template images that is OCR of a few watermarks ("com, adultswim, mon" for a cluster of 64
photos of which 3 had text), a label that describes nothing. So a cluster of an image-only
run is labelled, in this order, by:

1. `template`: the gallery template (latest `images templates` run) that at least half of its
   members match: `template: Doge (12 of 20)`;
2. `near_duplicates`: one near-duplicate group (latest `images near-dups` run) holding at
   least half of its members: `near-duplicates (7 of 9)`;
3. `text`: its keywords, when at least half of its members have annotation text;
4. `unlabelled`: nothing above holds; the label says so.

Only the stored tables are read (template_matches, dup_members), never their code.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import duckdb
import numpy as np

UNLABELLED = "unlabelled"
MIN_SHARE = 0.5  # of a cluster's members that must agree for a label to describe the cluster


def _latest_templates(store, ids: list[str]) -> dict[str, str]:
    """meme → matched template (not 'unknown') of the newest template run; {} without one."""
    try:
        rows = store.fetchall(
            "SELECT meme_id, template FROM template_matches WHERE template <> 'unknown' AND "
            "run_id = (SELECT run_id FROM template_runs ORDER BY created_at DESC, run_id DESC "
            "LIMIT 1) AND meme_id IN (SELECT unnest(?::VARCHAR[]))", [ids])
    except duckdb.Error:  # a store without the image tables has nothing to say
        return {}
    return dict(rows)


def _latest_groups(store, ids: list[str]) -> dict[str, str]:
    """meme → near-duplicate group (of two or more) of the newest near-dup run; {} without one."""
    try:
        rows = store.fetchall(
            "SELECT meme_id, group_id FROM dup_members WHERE group_size > 1 AND run_id = "
            "(SELECT run_id FROM dup_runs ORDER BY coalesce(updated_at, created_at) DESC, "
            "run_id DESC LIMIT 1) AND meme_id IN (SELECT unnest(?::VARCHAR[]))", [ids])
    except duckdb.Error:
        return {}
    return dict(rows)


def image_cluster_labels(store, ids: list[str], labels: np.ndarray, docs: list[str]
                         ) -> dict[int, dict[str, Any]]:
    """cluster → {"basis", "label" (None for `text`: keep the keyword label), "support"}."""
    templates = _latest_templates(store, ids)
    groups = _latest_groups(store, ids)
    out: dict[int, dict[str, Any]] = {}
    for c in sorted(set(labels.tolist()) - {-1}):
        members = [i for i in np.nonzero(labels == c)[0]]
        n = len(members)
        need = MIN_SHARE * n
        tpl = Counter(templates[ids[i]] for i in members if ids[i] in templates).most_common(1)
        grp = Counter(groups[ids[i]] for i in members if ids[i] in groups).most_common(1)
        n_text = sum(1 for i in members if (docs[i] or "").strip())
        if tpl and tpl[0][1] >= need:
            out[int(c)] = {"basis": "template", "support": tpl[0][1],
                           "label": f"template: {tpl[0][0]} ({tpl[0][1]} of {n})"}
        elif grp and grp[0][1] >= need:
            out[int(c)] = {"basis": "near_duplicates", "support": grp[0][1],
                           "label": f"near-duplicates ({grp[0][1]} of {n})"}
        elif n_text and n_text >= need:
            out[int(c)] = {"basis": "text", "support": n_text, "label": None}
        else:
            out[int(c)] = {"basis": UNLABELLED, "support": n_text,
                           "label": f"{UNLABELLED} ({n_text} of {n} with text)"}
    return out
