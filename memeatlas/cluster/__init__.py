"""Cluster and label: UMAP + HDBSCAN (and baselines) on text, image and fused spaces.

    from memeatlas.cluster import ClusterConfig, run, get_run, label, LabelConfig, assign
    [run_id] = run(store, ClusterConfig(spaces=["text:description+intent"]))
    df = get_run(store, run_id)      # meme_id, cluster, probability, x, y, assigned_by, label, …
    label(store, LabelConfig(run_id=run_id))
    assign(store, run_id)            # memes embedded after the run

Heavy libraries (umap, hdbscan, sklearn, bertopic) load only when a function runs.
"""

from __future__ import annotations

from typing import Any

from memeatlas.cluster.config import (  # noqa: F401  (light dataclasses)
    AssignSummary,
    ClusterConfig,
    LabelConfig,
    LabelSummary,
)

__all__ = ["AssignSummary", "ClusterConfig", "LabelConfig", "LabelSummary", "assign",
           "get_run", "get_run_info", "label", "latest_run", "list_runs", "run"]


# Thin wrappers (not lazy module attributes): submodule imports can never shadow these names.
def run(store, config: ClusterConfig) -> list[str]:
    """Cluster; one run id per sweep value (+ reassign-noise runs). See `memeatlas.cluster.fit.run`."""
    from memeatlas.cluster.fit import run as _run

    return _run(store, config)


def label(store, config: LabelConfig) -> LabelSummary:
    """BERTopic keywords, representatives and optional LLM names for a run. See `labeling.label`."""
    from memeatlas.cluster.labeling import label as _label

    return _label(store, config)


def assign(store, run_id: str, where: str | None = None, **kwargs: Any) -> AssignSummary:
    """Place memes that are not in a run into its clusters. See `assignment.assign`."""
    from memeatlas.cluster.assignment import assign as _assign

    return _assign(store, run_id, where=where, **kwargs)


def get_run(store, run_id: str):
    """A run as a pandas DataFrame (meme_id, cluster, probability, x, y, assigned_by, label, …)."""
    from memeatlas.corpus.runs import get_run as _get

    return _get(store, run_id)


def get_run_info(store, run_id: str) -> dict:
    """The run's `cluster_runs` row as a dict."""
    from memeatlas.corpus.runs import get_run_info as _info

    return _info(store, run_id)


def latest_run(store, kind: str | None = "cluster") -> str | None:
    """The newest run id, or None."""
    from memeatlas.corpus.runs import latest_run as _latest

    return _latest(store, kind)


def list_runs(store):
    """All runs as a pandas DataFrame, newest first."""
    from memeatlas.corpus.runs import list_runs as _list

    return _list(store)
