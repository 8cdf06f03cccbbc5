-- The study workflow: meme timestamps and cluster trends, hand curation as derived runs
-- (with an edit log), and cluster hierarchies.

-- When a meme was posted/seen, from a source the user named (never guessed).
CREATE TABLE meme_times (
    meme_id     VARCHAR PRIMARY KEY,
    ts          TIMESTAMP NOT NULL,    -- UTC (offsets in the source value are converted)
    source      VARCHAR NOT NULL,      -- 'meta:<key>' (a manifest column / import field / metadata key)
    raw         VARCHAR,               -- the value as given
    time_format VARCHAR,               -- iso | epoch | epoch_ms | a strptime pattern
    set_at      TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- One `memeatlas trends` computation: a run binned by day, week or month.
CREATE TABLE trend_runs (
    trend_id    VARCHAR PRIMARY KEY,
    run_id      VARCHAR NOT NULL,
    period      VARCHAR NOT NULL,      -- day | week | month
    params      JSON,                  -- comparison windows, interval method, level
    n_memes     INTEGER,               -- memes of the run
    n_timed     INTEGER,               -- of them with a timestamp
    n_untimed   INTEGER,               -- without one (counted per cluster below, never dropped)
    n_periods   INTEGER,
    software    JSON,
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- Counts and shares per cluster per period (period_start NULL: the cluster's untimed memes).
CREATE TABLE cluster_trends (
    trend_id      VARCHAR NOT NULL,
    run_id        VARCHAR NOT NULL,
    cluster       INTEGER NOT NULL,    -- -1 is noise
    period_start  DATE,                -- first day of the day/ISO week/month; NULL for untimed
    n             INTEGER NOT NULL,    -- the cluster's memes in the period
    period_total  INTEGER NOT NULL,    -- all timed memes of the run in the period
    share         DOUBLE               -- n / period_total (NULL for the untimed row)
);

-- Rising / fading: share of the cluster in the late window minus the early window, with a
-- Newcombe (Wilson score) interval for a difference of two proportions (level in trend_runs.params).
CREATE TABLE cluster_trend_flags (
    trend_id     VARCHAR NOT NULL,
    run_id       VARCHAR NOT NULL,
    cluster      INTEGER NOT NULL,
    trend        VARCHAR NOT NULL,     -- rising | fading | steady
    share_early  DOUBLE,
    share_late   DOUBLE,
    delta        DOUBLE,               -- share_late - share_early
    ci_low       DOUBLE,
    ci_high      DOUBLE,
    n_early      INTEGER,              -- the cluster's memes in the early window
    n_late       INTEGER,
    early_total  INTEGER,              -- all timed memes in the early window
    late_total   INTEGER,
    PRIMARY KEY (trend_id, cluster)
);

-- One row per edit of a curated run (kind 'curated', parent_run = the edited run).
CREATE TABLE curation_edits (
    run_id      VARCHAR NOT NULL,      -- the curated run this edit produced
    seq         INTEGER NOT NULL,      -- order of the edit within the run (1, 2, ...)
    parent_run  VARCHAR NOT NULL,
    op          VARCHAR NOT NULL,      -- merge | split | move | rename | discard
    args        JSON NOT NULL,         -- the edit as written in the edit file
    result      JSON,                  -- what it did: new cluster ids, memes moved, ...
    n_changed   INTEGER,               -- memes whose cluster changed
    editor      VARCHAR,
    note        VARCHAR,
    edited_at   TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (run_id, seq)
);

-- A cluster tree per run: leaves are the run's clusters, inner nodes their merges.
CREATE TABLE cluster_tree (
    run_id      VARCHAR NOT NULL,
    node        INTEGER NOT NULL,      -- leaves: the cluster id; inner nodes: 100000 + k
    parent      INTEGER,               -- NULL at the root
    level       INTEGER NOT NULL,      -- depth from the root (root = 0)
    is_leaf     BOOLEAN NOT NULL,
    cluster     INTEGER,               -- the run's cluster for a leaf, NULL for inner nodes
    size        INTEGER NOT NULL,      -- memes under the node
    height      DOUBLE,                -- merge distance (centroid) or 1/lambda (condensed tree)
    keywords    VARCHAR[],
    label       VARCHAR,
    method      VARCHAR NOT NULL,      -- condensed_tree | centroid_ward
    params      JSON,
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (run_id, node)
);

-- Memes of every run with their timestamp and period starts, untimed memes included (ts NULL).
CREATE VIEW meme_timeline AS
SELECT ca.run_id, ca.meme_id, ca.cluster, t.ts,
       CAST(date_trunc('day', t.ts) AS DATE)   AS day,
       CAST(date_trunc('week', t.ts) AS DATE)  AS week,
       CAST(date_trunc('month', t.ts) AS DATE) AS month
FROM cluster_assignments ca LEFT JOIN meme_times t USING (meme_id);

-- The newest trends of each run and period, with cluster labels and flags.
CREATE VIEW latest_cluster_trends AS
WITH latest AS (
    SELECT * FROM trend_runs
    QUALIFY row_number() OVER (PARTITION BY run_id, period ORDER BY created_at DESC, trend_id DESC) = 1)
SELECT l.trend_id, l.run_id, l.period, ct.cluster, cl.label, ct.period_start, ct.n,
       ct.period_total, ct.share, f.trend, f.delta, f.ci_low, f.ci_high
FROM latest l
JOIN cluster_trends ct USING (trend_id)
LEFT JOIN cluster_labels cl ON cl.run_id = ct.run_id AND cl.cluster = ct.cluster
LEFT JOIN cluster_trend_flags f ON f.trend_id = ct.trend_id AND f.cluster = ct.cluster;
