-- One membership per meme and run, told the same everywhere; labellings that derive instead
-- of overwrite; the meme's source beside it (issue 22).

-- A meme's place in a run: 'core' (the clustering put it in a cluster), 'assigned' (noise whose
-- best soft membership is at least the run's assign floor, params.assign_floor; it joins its
-- soft_cluster) or 'noise' (in no cluster). Rows stored before this migration get the rule
-- at floor 0.1 (the first floor; older runs assigned every noise meme); a --reassign-noise
-- run's moved memes are 'assigned'.
ALTER TABLE cluster_assignments ADD COLUMN membership VARCHAR;
UPDATE cluster_assignments SET membership = CASE
    WHEN cluster >= 0 AND assigned_by = 'reassign' THEN 'assigned'
    WHEN cluster >= 0 THEN 'core'
    WHEN soft_cluster >= 0 AND soft_probability >= 0.1 THEN 'assigned'
    ELSE 'noise' END;

-- The one definition every reader uses (report, label, evaluate, trends, cluster_members):
-- `cluster` is the meme's cluster (core or assigned; -1 = noise), `hard_cluster` the label
-- as fitted, `probability` the membership of `cluster` (soft membership for assigned memes).
-- Only 'assigned' is taken from the stored column: any other row (none stored, or a cluster
-- edited by hand) is core when clustered, else noise.
CREATE VIEW cluster_membership AS
SELECT run_id, meme_id,
       CASE kind WHEN 'noise' THEN -1
                 WHEN 'assigned' THEN CASE WHEN cluster >= 0 THEN cluster ELSE soft_cluster END
                 ELSE cluster END AS cluster,
       kind AS membership,
       cluster AS hard_cluster,
       CASE WHEN kind = 'assigned' AND cluster < 0 THEN soft_probability
            ELSE probability END AS probability,
       soft_cluster, soft_probability, x, y, assigned_by
FROM (SELECT *, CASE WHEN membership = 'assigned' AND (cluster >= 0 OR soft_cluster >= 0)
                      THEN 'assigned'
                      WHEN cluster >= 0 THEN 'core' ELSE 'noise' END AS kind
      FROM cluster_assignments);

-- Every labelling of a run is kept: `label --force` adds rows (a new `labeling`) instead of
-- replacing them, so the key gains created_at. The table is rebuilt because DuckDB cannot
-- change a primary key in place.
ALTER TABLE cluster_labels RENAME TO cluster_labels_0012;
CREATE TABLE cluster_labels (
    run_id          VARCHAR NOT NULL,
    cluster         INTEGER NOT NULL,
    size            INTEGER,             -- memes in the cluster as this labelling counted them (its params.noise)
    keywords        VARCHAR[],
    keyword_scores  DOUBLE[],
    label           VARCHAR,             -- short human-readable name (keywords joined, or LLM-written)
    representatives VARCHAR[],           -- meme_ids, most representative first
    representation  VARCHAR,             -- ctfidf | keybert | mmr
    labeler         VARCHAR,             -- 'bertopic' or 'bertopic+<llm model>'
    text_annotator  VARCHAR,             -- whose annotation text the keywords come from
    params          JSON,
    created_at      TIMESTAMP NOT NULL DEFAULT current_timestamp,
    labeling        VARCHAR,             -- id shared by the rows one `label` call wrote (NULL: older rows)
    PRIMARY KEY (run_id, cluster, created_at)
);
INSERT INTO cluster_labels (run_id, cluster, size, keywords, keyword_scores, label,
                            representatives, representation, labeler, text_annotator, params,
                            created_at)
SELECT run_id, cluster, size, keywords, keyword_scores, label, representatives, representation,
       labeler, text_annotator, params, created_at FROM cluster_labels_0012;
DROP TABLE cluster_labels_0012;

-- The labels in force: the newest row of every (run, cluster). Older labellings stay in
-- cluster_labels.
CREATE VIEW latest_cluster_labels AS
SELECT * FROM cluster_labels
QUALIFY row_number() OVER (PARTITION BY run_id, cluster
                           ORDER BY created_at DESC, labeling DESC NULLS LAST) = 1;

-- Where a meme comes from, when its corpus says (import / manifest fields kept in memes.meta):
-- a title and a link (the first of url, post_url, permalink, link; any scheme: readers decide
-- what they link to). NULL where the corpus has none.
CREATE VIEW meme_links AS
SELECT meme_id, meta->>'title' AS source_title,
       coalesce(meta->>'url', meta->>'post_url', meta->>'permalink', meta->>'link') AS source_url
FROM memes;

-- Members of every run under the one membership, with labels in force, the meme's path and
-- source (title and link, when its corpus has them: memes.meta title / url), and the
-- annotation text the labels were computed from (NULL until `memeatlas label` has run).
-- Earlier columns keep their place; membership, hard_cluster and the source come last.
CREATE OR REPLACE VIEW cluster_members AS
SELECT cm.run_id, cm.meme_id, cm.cluster, cm.probability, cm.x, cm.y, cm.assigned_by,
       cl.label, cl.keywords, m.path, m.source_id,
       a.annotator, a.description, a.intent, a.ocr_text, a.template, a.tone,
       cm.membership, cm.hard_cluster,
       ml.source_title, ml.source_url
FROM cluster_membership cm
LEFT JOIN latest_cluster_labels cl ON cl.run_id = cm.run_id AND cl.cluster = cm.cluster
LEFT JOIN memes m ON m.meme_id = cm.meme_id
LEFT JOIN meme_links ml ON ml.meme_id = cm.meme_id
LEFT JOIN latest_annotations a ON a.meme_id = cm.meme_id AND a.annotator = cl.text_annotator;

-- Kept for queries written before 0013: the same rows as cluster_members.
CREATE OR REPLACE VIEW cluster_members_assigned AS SELECT * FROM cluster_members;

-- Timelines and trends count memes where cluster_members does.
CREATE OR REPLACE VIEW meme_timeline AS
SELECT cm.run_id, cm.meme_id, cm.cluster, t.ts,
       CAST(date_trunc('day', t.ts) AS DATE)   AS day,
       CAST(date_trunc('week', t.ts) AS DATE)  AS week,
       CAST(date_trunc('month', t.ts) AS DATE) AS month,
       cm.membership
FROM cluster_membership cm LEFT JOIN meme_times t USING (meme_id);

CREATE OR REPLACE VIEW latest_cluster_trends AS
WITH latest AS (
    SELECT * FROM trend_runs
    QUALIFY row_number() OVER (PARTITION BY run_id, period ORDER BY created_at DESC, trend_id DESC) = 1)
SELECT l.trend_id, l.run_id, l.period, ct.cluster, cl.label, ct.period_start, ct.n,
       ct.period_total, ct.share, f.trend, f.delta, f.ci_low, f.ci_high
FROM latest l
JOIN cluster_trends ct USING (trend_id)
LEFT JOIN latest_cluster_labels cl ON cl.run_id = ct.run_id AND cl.cluster = ct.cluster
LEFT JOIN cluster_trend_flags f ON f.trend_id = ct.trend_id AND f.cluster = ct.cluster;

-- Cluster trees derive too: `hierarchy --force` adds a tree (a new `tree_id`) and older trees
-- stay. Rebuilt for the key, like cluster_labels.
ALTER TABLE cluster_tree RENAME TO cluster_tree_0012;
CREATE TABLE cluster_tree (
    run_id      VARCHAR NOT NULL,
    node        INTEGER NOT NULL,      -- leaves: the cluster id; inner nodes: 100000 + k
    parent      INTEGER,               -- NULL at the root
    level       INTEGER NOT NULL,      -- depth from the root (root = 0)
    is_leaf     BOOLEAN NOT NULL,
    cluster     INTEGER,               -- the run's cluster for a leaf, NULL for inner nodes
    size        INTEGER NOT NULL,      -- memes under the node (core and assigned members)
    height      DOUBLE,                -- merge distance (centroid) or 1/lambda (condensed tree)
    keywords    VARCHAR[],
    label       VARCHAR,
    method      VARCHAR NOT NULL,      -- condensed_tree | centroid_ward
    params      JSON,
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp,
    tree_id     VARCHAR,               -- id shared by the rows of one `hierarchy` call (NULL: older rows)
    PRIMARY KEY (run_id, node, created_at)
);
INSERT INTO cluster_tree (run_id, node, parent, level, is_leaf, cluster, size, height, keywords,
                          label, method, params, created_at)
SELECT run_id, node, parent, level, is_leaf, cluster, size, height, keywords, label, method,
       params, created_at FROM cluster_tree_0012;
DROP TABLE cluster_tree_0012;

-- The tree in force per run: the rows of its newest tree (rows without a tree_id count as one).
CREATE VIEW latest_cluster_tree AS
SELECT * FROM cluster_tree
QUALIFY coalesce(tree_id, '') = first_value(coalesce(tree_id, '')) OVER (
    PARTITION BY run_id ORDER BY created_at DESC, tree_id DESC NULLS LAST);
