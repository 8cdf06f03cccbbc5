-- Automatic granularity, soft noise membership and stability across seeds (issue 10).

-- Soft clustering: for every meme, noise included, its most likely cluster and the membership
-- probability of that cluster (HDBSCAN soft clustering). Clustered memes keep their hard
-- cluster; `cluster` itself (noise = -1) is never changed.
ALTER TABLE cluster_assignments ADD COLUMN soft_cluster INTEGER;
ALTER TABLE cluster_assignments ADD COLUMN soft_probability DOUBLE;

-- Mean pairwise ARI of the run's clustering across `cluster --stability N` seeds (NULL: not measured).
ALTER TABLE cluster_runs ADD COLUMN stability DOUBLE;

-- The automatic choice of min_cluster_size: one row per candidate size tried on the run's
-- (single) UMAP reduction; `chosen` marks the size the run uses.
CREATE TABLE cluster_granularity (
    run_id            VARCHAR NOT NULL,
    min_cluster_size  INTEGER NOT NULL,
    min_samples       INTEGER,
    criterion         VARCHAR NOT NULL,   -- e.g. relative_validity (HDBSCAN's DBCV approximation)
    value             DOUBLE,             -- the criterion (higher is better); NULL: fewer than 2 clusters
    n_clusters        INTEGER,
    noise_fraction    DOUBLE,
    chosen            BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (run_id, min_cluster_size)
);

-- Per-cluster stability across seeds (`cluster --stability N`).
CREATE TABLE cluster_stability (
    run_id     VARCHAR NOT NULL,
    cluster    INTEGER NOT NULL,
    size       INTEGER,
    jaccard    DOUBLE,    -- mean over the other seeds of the best Jaccard match (Hennig 2007)
    together   DOUBLE,    -- mean share of the cluster's member pairs that stay in one cluster
    n_seeds    INTEGER,
    PRIMARY KEY (run_id, cluster)
);

-- cluster_members with noise assigned: `cluster` is the soft cluster (hard where no soft one
-- was stored), `hard_cluster` keeps HDBSCAN's label (-1 = noise).
CREATE VIEW cluster_members_assigned AS
SELECT ca.run_id, ca.meme_id, coalesce(ca.soft_cluster, ca.cluster) AS cluster,
       ca.cluster AS hard_cluster,
       CASE WHEN ca.cluster >= 0 THEN ca.probability
            ELSE coalesce(ca.soft_probability, ca.probability) END AS probability,
       ca.x, ca.y, ca.assigned_by,
       cl.label, cl.keywords, m.path, m.source_id,
       a.annotator, a.description, a.intent, a.ocr_text, a.template, a.tone
FROM cluster_assignments ca
LEFT JOIN cluster_labels cl ON cl.run_id = ca.run_id AND cl.cluster = coalesce(ca.soft_cluster, ca.cluster)
LEFT JOIN memes m ON m.meme_id = ca.meme_id
LEFT JOIN latest_annotations a ON a.meme_id = ca.meme_id AND a.annotator = cl.text_annotator;
