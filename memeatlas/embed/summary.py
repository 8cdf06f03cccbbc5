"""What every way of filling a space shares: the text recipe's version and the run's summary.

Used by the sentence-transformers loop (run.py), TF-IDF + LSA (tfidf.py) and the Ray job.
"""

from __future__ import annotations

import time

from memeatlas.corpus.spaces import get_space
from memeatlas.embed.config import EmbedSummary

# Bumped when the way texts are built from annotations changes (stored in the space recipe,
# so a space built the old way is not silently mixed with the new).
TEXT_RECIPE_VERSION = 1


def finish(summary: EmbedSummary, store, t0: float) -> EmbedSummary:
    """Fill in the summary's timing, throughput and the space's size after a run."""
    summary.seconds = time.perf_counter() - t0
    work = summary.seconds - summary.load_seconds
    summary.items_per_s = summary.embedded / work if work > 0 and summary.embedded else 0.0
    info = get_space(store, summary.space)
    summary.total_in_space = info.n if info else 0
    if info and not summary.dim:
        summary.dim = info.dim
    return summary
