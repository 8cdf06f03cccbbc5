"""Configuration and result objects of the cluster, label and assign steps (no heavy imports)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ALGORITHMS = ("hdbscan", "kmeans", "agglomerative", "spectral")
FUSIONS = ("concat", "dynamic")
REPRESENTATIONS = ("ctfidf", "keybert", "mmr")
KNN_METHODS = ("auto", "exact", "ivf", "nndescent")
#: How noise memes (cluster −1) are treated by label/evaluate/report: 'assigned' (memes whose
#: membership is 'assigned' count in their most likely cluster; the default) or 'apart' (only
#: core members are in a cluster).
NOISE_MODES = ("assigned", "apart")
#: A meme's place in a run (`cluster_assignments.membership`): a core member of its HDBSCAN
#: cluster, assigned from noise to its most likely cluster (its soft membership there is at
#: least the run's assign floor), or noise (in no cluster).
MEMBERSHIPS = ("core", "assigned", "noise")
#: The default floor: a noise meme is assigned only when its best soft membership is at least
#: this (`cluster --assign-floor`; recorded in the run's params as `assign_floor`). HDBSCAN's
#: memberships over k clusters average 1/k, so a floor near 1/k would assign near-uniform
#: (meaningless) memberships: MIN_ASSIGN_FLOOR keeps every floor at or above 0.1.
ASSIGN_FLOOR = 0.1
MIN_ASSIGN_FLOOR = 0.1


def member_cluster_sql(noise: str) -> str:
    """The SQL expression, over the view `cluster_membership`, for the cluster a meme counts in
    under a NOISE_MODES mode: 'assigned' = the run's one membership (core and assigned memes in
    their cluster, noise −1); 'apart' = core members only, every other meme −1."""
    return "cluster" if noise == "assigned" else \
        "CASE WHEN membership = 'core' THEN cluster ELSE -1 END"
ENGINES = ("cpu", "cuml")  # memeatlas.cluster.engines
#: Recorded in a CPU run's params: which optimiser made its UMAP coordinates (umap_sgd.py). A
#: change of algorithm changes the name, and so the fingerprint of new runs.
UMAP_OPTIMIZER = "memeatlas-reproducible-parallel-sgd/3"
#: Epochs of the clustered reduction when `umap_epochs` is not given: umap-learn's 200, and
#: REDUCE_EPOCHS_LARGE above REDUCE_LARGE_N memes. On 50,000 real caption vectors the
#: clusters were as good after 100 epochs as after 200 (mean ARI against the templates over
#: four seeds 0.316 vs 0.308), for half the time; at 200,000, 50 epochs were clearly worse
#: (benchmarks/results/scale.md). The 2-D map keeps 200, whose neighbourhoods fewer epochs
#: lose. Up to 30,000 memes nothing changes, so
#: the defaults tuned on the shared data (results/cluster_defaults.md) still hold.
DEFAULT_EPOCHS = 200
REDUCE_EPOCHS_LARGE = 100
REDUCE_LARGE_N = 30_000


def reduce_epochs(n: int, epochs: int | None) -> int:
    """Epochs of the clustered UMAP reduction of n memes (`epochs` when given)."""
    if epochs is not None:
        return int(epochs)
    return REDUCE_EPOCHS_LARGE if n > REDUCE_LARGE_N else DEFAULT_EPOCHS


@dataclass
class ClusterConfig:
    """What `memeatlas cluster` does.

    spaces: one or more embedding spaces; several are fused (`fusion`, `weights`).
    algorithm: hdbscan (default, on a UMAP reduction) or a baseline: kmeans, agglomerative
      (Ward), spectral, each with `k` clusters.
    sweep: {param: [values]} writes one run per value (e.g. {"min_cluster_size": [25, 50]}).
    reassign_noise: also write a second run (kind 'reassign_noise', parent = the first) in which
      HDBSCAN noise points are moved to their most likely cluster; the original is kept.
    assign_floor: a noise meme's membership is 'assigned' (to its most likely cluster) only
      when its soft membership there is at least this (MIN_ASSIGN_FLOOR … 1); else 'noise'.
    min_cluster_size: HDBSCAN's; "auto" (or None, the default) chooses it per run from the data
      (memeatlas.cluster.granularity): candidates, criterion values and the choice go into the
      run's params and `cluster_granularity`.
    stability: N ≥ 2 re-runs the whole clustering with seeds seed+1 … seed+N−1 and stores the
      mean pairwise ARI (`cluster_runs.stability`) and per-cluster stability
      (`cluster_stability`); `consensus` also writes a co-association consensus run.
    umap_dims: dimensions of the reduction that is clustered (0 clusters the vectors directly).
    knn: how UMAP's neighbour graph is built: 'exact' (blocked cosine top-k with numpy),
      'ivf' (inverted-file search as matrix products + a neighbour-of-neighbour pass,
      approximate; knn.ivf_knn), 'nndescent' (pynndescent, approximate; ~30 s of
      uncacheable compilation per process) or 'auto' (exact up to `exact_knn_max` points,
      ivf above).
    umap_epochs: epochs of the reduction and the 2-D map; None: DEFAULT_EPOCHS, and for the
      reduction of more than REDUCE_LARGE_N memes REDUCE_EPOCHS_LARGE (`reduce_epochs`).
    """

    spaces: list[str]
    weights: list[float] | None = None
    fusion: str = "concat"
    fusion_k: int = 15
    algorithm: str = "hdbscan"
    min_cluster_size: int | str | None = None  # None or "auto": chosen from the data
    granularity_criterion: str = "persistence"
    min_samples: int | None = None
    cluster_selection_method: str = "eom"
    k: int | None = None
    umap_dims: int = 5
    umap_neighbors: int = 15
    umap_min_dist: float = 0.0
    umap_epochs: int | None = None
    layout: bool = True
    knn: str = "auto"
    exact_knn_max: int = 20_000
    seed: int = 42
    name: str | None = None
    where: str | None = None
    sweep: dict[str, list[Any]] = field(default_factory=dict)
    reassign_noise: bool = False
    assign_floor: float = ASSIGN_FLOOR
    stability: int = 0
    consensus: bool = False
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
    noise: 'assigned' (default): memes assigned from noise (membership 'assigned') count in
      their cluster (size, keywords); 'apart': core members only, every other meme is noise.
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
    noise: str = "assigned"
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
    n_name_failed: int = 0            # clusters the LLM was asked to name but did not
    name_error: str | None = None     # why the first of them failed
    n_name_refused: int = 0           # of those, names refused for breaking the name schema


@dataclass
class AssignSummary:
    """What `assign` placed."""

    run_id: str
    n_assigned: int
    n_noise: int
    method: str
    seconds: float
