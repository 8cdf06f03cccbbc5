-- Clustering runs, their assignments and 2-D layouts, cluster labels, and the
-- fitted models that `assign` reuses.

CREATE TABLE cluster_runs (
    run_id          VARCHAR PRIMARY KEY,
    name            VARCHAR,
    space           VARCHAR NOT NULL,    -- one space, or 'fused:<s1>+<s2>' for fusions
    spaces          JSON,                -- [{"space":..., "weight":...}, ...]
    algorithm       VARCHAR NOT NULL,    -- hdbscan | kmeans | agglomerative | spectral
    params          JSON,
    seed            INTEGER,
    n_items         INTEGER,
    n_clusters      INTEGER,
    noise_fraction  DOUBLE,
    fingerprint     VARCHAR,             -- hash of input ids+vectors+params: same fingerprint, same result
    parent_run      VARCHAR,             -- e.g. the run a --reassign-noise run was derived from
    kind            VARCHAR NOT NULL DEFAULT 'cluster',  -- cluster | reassign_noise
    software        JSON,
    timings         JSON,
    created_at      TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE cluster_assignments (
    run_id       VARCHAR NOT NULL,
    meme_id      VARCHAR NOT NULL,
    cluster      INTEGER NOT NULL,       -- -1 is noise
    probability  DOUBLE,
    x            DOUBLE,
    y            DOUBLE,
    assigned_by  VARCHAR NOT NULL DEFAULT 'fit',   -- fit | assign:hdbscan | assign:knn | reassign
    assigned_at  TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (run_id, meme_id)
);

CREATE TABLE cluster_labels (
    run_id          VARCHAR NOT NULL,
    cluster         INTEGER NOT NULL,
    size            INTEGER,
    keywords        VARCHAR[],
    keyword_scores  DOUBLE[],
    label           VARCHAR,             -- short human-readable name (keywords joined, or LLM-written)
    representatives VARCHAR[],           -- meme_ids, most representative first
    representation  VARCHAR,             -- ctfidf | keybert | mmr
    labeler         VARCHAR,             -- 'bertopic' or 'bertopic+<llm model>'
    text_annotator  VARCHAR,             -- whose annotation text the keywords come from
    params          JSON,
    created_at      TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (run_id, cluster)
);

CREATE TABLE cluster_models (
    run_id      VARCHAR PRIMARY KEY,
    format      VARCHAR NOT NULL,        -- e.g. 'pickle:umap+hdbscan'
    model       BLOB NOT NULL,
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- Assignments with cluster labels, the meme's path, and the annotation text the labels were
-- computed from (the labelled run's annotator; NULL until `memeatlas label` has run).
CREATE VIEW cluster_members AS
SELECT ca.run_id, ca.meme_id, ca.cluster, ca.probability, ca.x, ca.y, ca.assigned_by,
       cl.label, cl.keywords, m.path, m.source_id,
       a.annotator, a.description, a.intent, a.ocr_text, a.template, a.tone
FROM cluster_assignments ca
LEFT JOIN cluster_labels cl ON cl.run_id = ca.run_id AND cl.cluster = ca.cluster
LEFT JOIN memes m ON m.meme_id = ca.meme_id
LEFT JOIN latest_annotations a ON a.meme_id = ca.meme_id AND a.annotator = cl.text_annotator;
