"""Configuration and result objects of the cluster, label and assign steps (no heavy imports)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ALGORITHMS = ("hdbscan", "kmeans", "agglomerative", "spectral")
FUSIONS = ("concat", "dynamic")
REPRESENTATIONS = ("ctfidf", "keybert", "mmr")
KNN_METHODS = ("auto", "exact", "nndescent")
ENGINES = ("cpu", "cuml")  # memeatlas.cluster.engines


@dataclass
class ClusterConfig:
    """What `memeatlas cluster` does.

    spaces: one or more embedding spaces; several are fused (`fusion`, `weights`).
    algorithm: hdbscan (default, on a UMAP reduction) or a baseline: kmeans, agglomerative
      (Ward), spectral, each with `k` clusters.
    sweep: {param: [values]} writes one run per value (e.g. {"min_cluster_size": [25, 50]}).
    reassign_noise: also write a second run (kind 'reassign_noise', parent = the first) in which
      HDBSCAN noise points are moved to their most likely cluster; the original is kept.
    umap_dims: dimensions of the reduction that is clustered (0 clusters the vectors directly).
    knn: how UMAP's neighbour graph is built: 'exact' (blocked cosine top-k with numpy),
      'nndescent' (pynndescent, approximate) or 'auto' (exact up to `exact_knn_max` points,
      where it is faster than NN-descent's ~25 s of uncacheable compilation).
    """

    spaces: list[str]
    weights: list[float] | None = None
    fusion: str = "concat"
    fusion_k: int = 15
    algorithm: str = "hdbscan"
    min_cluster_size: int | None = None  # None: max(5, min(50, n // 100))
    min_samples: int | None = None
    cluster_selection_method: str = "eom"
    k: int | None = None
    umap_dims: int = 5
    umap_neighbors: int = 15
    umap_min_dist: float = 0.0
    umap_epochs: int | None = 200
    layout: bool = True
    knn: str = "auto"
    exact_knn_max: int = 20_000
    seed: int = 42
    name: str | None = None
    where: str | None = None
    sweep: dict[str, list[Any]] = field(default_factory=dict)
    reassign_noise: bool = False
    force: bool = False
    engine: str = "cpu"  # cpu (umap-learn + hdbscan) | cuml (GPU; memeatlas.cluster.engines)
    # Where the 2-D layout starts: 'spectral' (its own spectral embedding, as umap-learn does)
    # or 'reduction' (principal components of the clustered UMAP reduction; see
    # reduce.init_from). Measured at 20k points the spectral solve is ~1 s of a ~30 s layout,
    # so 'spectral' stays the default (docs/SCALE.md).
    layout_init: str = "spectral"


@dataclass
class LabelConfig:
    """What `memeatlas label` does.

    run_id: the clustering to label (default: the newest run).
    representation: ctfidf (BERTopic's c-TF-IDF keywords), keybert or mmr (re-ranked with the
      stored embeddings / the MiniLM text model).
    annotator / fields: the annotation text labelled; default: what the run's text space
      embedded, else description, intent and ocr_text of the newest annotator.
    llm_backend / llm_model: optionally a caption backend that writes a short name per cluster.
    """

    run_id: str | None = None
    representation: str = "ctfidf"
    n_keywords: int = 10
    n_representatives: int = 5
    annotator: str | None = None
    fields: list[str] | None = None
    embedding_model: str | None = None
    llm_backend: str | None = None
    llm_model: str | None = None
    llm_options: dict[str, Any] = field(default_factory=dict)
    llm_max_new_tokens: int = 16
    seed: int = 42
    force: bool = False


@dataclass
class LabelSummary:
    """What `label` stored."""

    run_id: str
    n_clusters: int
    n_labelled: int
    n_named: int
    representation: str
    labeler: str
    annotator: str | None
    seconds: float
    skipped: bool = False


@dataclass
class AssignSummary:
    """What `assign` placed."""

    run_id: str
    n_assigned: int
    n_noise: int
    method: str
    seconds: float
